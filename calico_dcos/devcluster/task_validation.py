"""Per-task validation of LAUNCH, in the real master's order and with its messages.

Source: apache/mesos `src/master/validation.cpp` (`task::validate`, `task::internal::
validateTask`, `validateExecutor`, `validateTaskAndExecutorResources`, `resource::validate`,
`validateAllocatedToSingleRole`), `src/common/validation.cpp` (`validateEnvironment`,
`validateHealthCheck`, `validateContainerInfo`, `validateVolume`) and
`src/common/resources.cpp` (`Resources::validate(const Resource&)`). The first failing check
gives the TASK_ERROR / REASON_TASK_INVALID message.

The task JSON here has already been parsed against `TaskInfo` (wire.py), so required fields
are present and every value has its field's type (64-bit integers as strings).
"""

from __future__ import annotations

from collections.abc import Callable, Container

from calico_dcos.devcluster import protocol, resources
from calico_dcos.devcluster.resources import Resources

Pools = dict[str, Resources]
Check = Callable[[], str | None]


def resource_text(item: dict) -> str:
    """`operator<<(ostream&, const Resource&)`, enough to name a resource in a message."""
    text = item.get("name", "")
    if "allocation_info" in item:
        text += f"(allocated: {item['allocation_info'].get('role', '')})"
    reserved = resources.reserved_role(item)
    if reserved != "*":
        text += f"(reservations: [(STATIC,{reserved})])"
    kind = item.get("type")
    if kind == "SCALAR":
        return f"{text}:{item.get('scalar', {}).get('value', 0):g}"
    if kind == "RANGES":
        ranges = item.get("ranges", {}).get("range", [])
        spans = ", ".join(f"{r['begin']}-{r['end']}" for r in ranges)
        return f"{text}:[{spans}]"
    if kind == "SET":
        return f"{text}:{{{', '.join(item.get('set', {}).get('item', []))}}}"
    return f"{text}:{kind}"


def resource_error(item: dict) -> str | None:
    """`Resources::validate(const Resource&)`."""
    if not item.get("name"):
        return "Empty resource name"
    kind = item.get("type")
    has = {key: key in item for key in ("scalar", "ranges", "set")}
    if kind == "SCALAR":
        if not has["scalar"] or has["ranges"] or has["set"]:
            return "Invalid scalar resource"
        value = float(item["scalar"].get("value", 0.0))
        if value != 0 and round(value * 1000) <= 0:  # `Value::Scalar` compares at 3 decimals
            return "Invalid scalar resource: value <= 0"
    elif kind == "RANGES":
        if has["scalar"] or not has["ranges"] or has["set"]:
            return "Invalid ranges resource"
        spans = [(int(r["begin"]), int(r["end"])) for r in item["ranges"].get("range", [])]
        for i, (begin, end) in enumerate(spans):
            if begin > end:
                return "Invalid ranges resource: begin > end"
            if any(begin <= other <= end for other, _ in spans[i + 1 :]):
                return "Invalid ranges resource: overlapping ranges"
    elif kind == "SET":
        if has["scalar"] or has["ranges"] or not has["set"]:
            return "Invalid set resource"
        values = item["set"].get("item", [])
        if len(set(values)) != len(values):
            return "Invalid set resource: duplicated elements"
    else:
        return "Unsupported resource type"
    if "disk" in item and item["name"] != "disk":
        return f"DiskInfo should not be set for {item['name']} resource"
    return None


def resources_error(items: list[dict]) -> str | None:
    """`resource::validate`: "Invalid resources: Resource '...' is invalid: ..."."""
    for item in items:
        error = resource_error(item)
        if error:
            return f"Invalid resources: Resource '{resource_text(item)}' is invalid: {error}"
    return None


def single_role_error(items: list[dict]) -> str | None:
    """`validateAllocatedToSingleRole`."""
    role: str | None = None
    for item in items:
        this = item.get("allocation_info", {}).get("role")
        if this is None:
            return "The resources are not allocated to a role"
        if role is None:
            role = this
        elif this != role:
            return (
                f"The resources have multiple allocation roles ('{this}' and '{role}')"
                " but only one allocation role is allowed"
            )
    return None


def environment_error(environment: dict) -> str | None:
    """`validateEnvironment`."""
    for variable in environment.get("variables", []):
        name = variable.get("name", "")
        kind = variable.get("type", "VALUE")
        if kind == "SECRET":
            if "secret" not in variable:
                return f"Environment variable '{name}' of type 'SECRET' must have a secret set"
            if "value" in variable:
                return f"Environment variable '{name}' of type 'SECRET' must not have a value set"
        elif kind == "VALUE":
            if "value" not in variable:
                return f"Environment variable '{name}' of type 'VALUE' must have a value set"
            if "secret" in variable:
                return f"Environment variable '{name}' of type 'VALUE' must not have a secret set"
        else:
            return "Environment variable of type 'UNKNOWN' is not allowed"
    return None


def health_check_error(check: dict) -> str | None:
    """`validateHealthCheck`."""
    kind = check.get("type")
    if kind is None:
        return "HealthCheck must specify 'type'"
    if kind == "COMMAND":
        if "command" not in check:
            return "Expecting 'command' to be set for COMMAND health check"
        command = check["command"]
        if "value" not in command:
            what = "'shell command'" if command.get("shell", True) else "'executable path'"
            return f"Command health check must contain {what}"
        error = environment_error(command.get("environment", {}))
        if error:
            return f"Health check's `CommandInfo` is invalid: {error}"
    elif kind == "HTTP":
        if "http" not in check:
            return "Expecting 'http' to be set for HTTP health check"
        http = check["http"]
        if "scheme" in http and http["scheme"] not in ("http", "https"):
            return f"Unsupported HTTP health check scheme: '{http['scheme']}'"
        if "path" in http and not http["path"].startswith("/"):
            return f"The path '{http['path']}' of HTTP health check must start with '/'"
    elif kind == "TCP":
        if "tcp" not in check:
            return "Expecting 'tcp' to be set for TCP health check"
    else:
        return f"'{kind}' is not a valid health check type"
    for key in ("delay_seconds", "grace_period_seconds", "interval_seconds", "timeout_seconds"):
        if key in check and float(check[key]) < 0.0:
            return f"Expecting '{key}' to be non-negative"
    return None


def container_error(container: dict) -> str | None:
    """`validateContainerInfo` (with `validateVolume`)."""
    for volume in container.get("volumes", []):
        count = sum(1 for key in ("host_path", "image", "source") if key in volume)
        if count != 1:
            return (
                "Invalid volume: Only one of them should be set: 'host_path', 'image' and 'source'"
            )
    if container.get("type") == "DOCKER":
        if "docker" not in container:
            return "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"
        for parameter in container["docker"].get("parameters", []):
            if parameter.get("key") == "name":
                return "Parameter in DockerInfo must not be 'name'"
    return None


def _prefixed(prefix: str, error: str | None) -> str | None:
    return f"{prefix}{error}" if error else None


def task_checks(
    info: dict, agent_id: str, known: Container[str], unreachable: Container[str]
) -> list[Check]:
    """`task::internal::validateTask`, in order."""
    task_id = info["task_id"]["value"]
    grace = info.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds", 0)
    completion = info.get("max_completion_time", {}).get("nanoseconds", 0)
    items = info.get("resources", [])
    return [
        lambda: protocol.valid_id(task_id),
        lambda: f"Task has duplicate ID: {task_id}" if task_id in known else None,
        lambda: (
            f"Task reuses the ID of an unreachable task: {task_id}"
            if task_id in unreachable
            else None
        ),
        lambda: (
            f"Task uses invalid agent {info['agent_id']['value']} while agent {agent_id}"
            " is expected"
            if info["agent_id"]["value"] != agent_id
            else None
        ),
        lambda: (
            "Task's 'kill_policy.grace_period' must be non-negative" if int(grace) < 0 else None
        ),
        lambda: (
            "Task's `max_completion_time` must be non-negative" if int(completion) < 0 else None
        ),
        lambda: _prefixed(
            "Task uses invalid health check: ",
            health_check_error(info["health_check"]) if "health_check" in info else None,
        ),
        lambda: "Task uses no resources" if not items else None,
        lambda: _prefixed("Task uses invalid resources: ", resources_error(items)),
        lambda: _prefixed("Invalid task resources: ", single_role_error(items)),
        lambda: _prefixed(
            "Task's `CommandInfo` is invalid: ",
            environment_error(info.get("command", {}).get("environment", {})),
        ),
        lambda: _prefixed(
            "Task's `ContainerInfo` is invalid: ",
            container_error(info["container"]) if "container" in info else None,
        ),
    ]


def executor_error(info: dict) -> str | None:
    """The part of `validateExecutor` that does not depend on the offer."""
    if ("executor" in info) == ("command" in info):
        return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
    executor = info.get("executor")
    if executor is not None:
        if executor.get("type", "CUSTOM") != "CUSTOM":
            return "'ExecutorInfo.type' must be 'CUSTOM'"
        if "command" not in executor:
            return "'ExecutorInfo.command' must be set"
    return None


def _overlap(task_items: list[dict], executor_items: list[dict]) -> bool:
    """`detectOverlappingSetAndRangeResources` for ranges (the only kind offered here)."""
    try:
        mine = resources.parse(task_items)
        theirs = resources.parse(executor_items)
    except (ValueError, KeyError, TypeError):
        return False
    for reserved, pool in mine.items():
        other = theirs.get(reserved)
        if other is None:
            continue
        for name, spans in pool.ranges.items():
            for begin, end in spans:
                if any(b <= end and begin <= e for b, e in other.ranges.get(name, [])):
                    return True
    return False


def task_error(
    info: dict,
    agent_id: str,
    known: Container[str],
    unreachable: Container[str],
    remaining: Pools,
    offer_role: str,
) -> tuple[str | None, Pools]:
    """`task::validate`: the first error, or (None, the resources the task takes)."""
    for check in task_checks(info, agent_id, known, unreachable):
        error = check()
        if error:
            return error, {}
    error = executor_error(info)
    if error:
        return error, {}
    executor_items = info.get("executor", {}).get("resources", [])
    items = info["resources"] + executor_items
    error = resources_error(executor_items)
    if error:
        return f"Task and its executor use invalid resources: {error}", {}
    if executor_items and _overlap(info["resources"], executor_items):
        return (
            "There are overlapping resources in the task resources"
            f" {_describe(info['resources'])} and executor resources {_describe(executor_items)}",
            {},
        )
    needed = resources.parse(items)
    roles = {i.get("allocation_info", {}).get("role") for i in items}
    fits = roles == {offer_role} and all(
        r in remaining and remaining[r].contains(p) for r, p in needed.items()
    )
    if not fits:
        return (
            f"Total resources {_describe(items)} required by task and its executor is more"
            f" than available {resources.describe(remaining, offer_role)}",
            {},
        )
    return None, needed


def _describe(items: list[dict]) -> str:
    return "; ".join(resource_text(i) for i in items)
