"""Scheduler calls other than SUBSCRIBE, as the real master handles them (§2, §6, §7).

Each handler gets the master, the calling framework and the call's body; it returns None for
202 Accepted, or an (HTTP status, text) pair for the few calls that answer otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from calico_dcos.devcluster import protocol, resources, task_validation
from calico_dcos.devcluster.agent import Agent
from calico_dcos.devcluster.authorizer import launch_refusal
from calico_dcos.devcluster.framework import Framework, Offer, Task
from calico_dcos.devcluster.master import Master
from calico_dcos.devcluster.resources import Resources

Reply = tuple[int, str] | None
DEFAULT_KILL_GRACE = 3.0


LAUNCHES = {"LAUNCH": ("launch", "REASON_TASK_INVALID"),
            "LAUNCH_GROUP": ("launch_group", "REASON_TASK_GROUP_INVALID")}  # fmt: skip


def _operation_tasks(operation: dict) -> list[dict]:
    if operation.get("type") == "LAUNCH":
        return operation.get("launch", {}).get("task_infos", [])
    if operation.get("type") == "LAUNCH_GROUP":
        return operation.get("launch_group", {}).get("task_group", {}).get("tasks", [])
    return []


def accept(master: Master, framework: Framework, body: dict) -> Reply:
    """`Master::accept` (apache/mesos src/master/master.cpp): offers checked first, then each
    operation in order against what is left of the offers."""
    offer_ids = [o["value"] for o in body.get("offer_ids", [])]
    operations = body.get("operations", [])
    error = _offer_error(master, framework, offer_ids)
    if error:
        _reject_invalid_offers(master, framework, offer_ids, operations, error)
        return None
    offers = [master.offers.pop(oid) for oid in offer_ids]
    for offer in offers:
        framework.offers.pop(offer.offer_id, None)
    remaining = _pool(offers)
    agent = master.agents[offers[0].agent_id]
    for operation in operations:
        kind = operation.get("type", "UNKNOWN")
        if kind in LAUNCHES and "id" in operation:
            message = f"The `id` field cannot be set on {kind} operations"
            _task_errors(framework, agent, _operation_tasks(operation), LAUNCHES[kind][1], message)
        elif kind == "LAUNCH":
            for task in _operation_tasks(operation):
                _launch_one(master, framework, agent, offers[0], remaining, task)
        elif kind == "LAUNCH_GROUP":
            _launch_group(master, framework, agent, offers[0], remaining, operation)
        elif kind == "UNKNOWN":
            master.record("operation_ignored", framework_id=framework.id, message="UNKNOWN")
        else:
            _unsupported_operation(master, framework, agent, operation)
    refuse = protocol.refuse_seconds(body.get("filters"))
    master.record(
        "accept", agent_id=agent.agent_id, offer_ids=offer_ids, framework_id=framework.id,
        refuse_seconds=refuse,
    )  # fmt: skip
    _return_unused(master, offers[0], remaining, refuse)
    return None


def _task_errors(
    framework: Framework, agent: Agent, tasks: list[dict], reason: str, message: str
) -> None:
    for task in tasks:
        status = protocol.master_status(
            task["task_id"]["value"], "TASK_ERROR", reason, message, agent.agent_id
        )
        framework.send(protocol.update_event(status))


def drop_operation(master: Master, framework: Framework, operation: dict, message: str) -> None:
    """`Master::drop(Framework*, const Offer::Operation&, ...)`: OPERATION_ERROR for an
    operation that asked for feedback (`id`), nothing otherwise (the master only logs)."""
    kind = operation.get("type", "UNKNOWN")
    master.record("operation_dropped", framework_id=framework.id, type=kind, message=message)
    if "id" in operation:
        status = {
            "operation_id": operation["id"],
            "state": "OPERATION_ERROR",
            "message": message,
            "uuid": {"value": protocol.new_uuid_b64()},
        }
        framework.send({"type": "UPDATE_OPERATION_STATUS",
                        "update_operation_status": {"status": status}})  # fmt: skip


def _unsupported_operation(
    master: Master, framework: Framework, agent: Agent, operation: dict
) -> None:
    """RESERVE, UNRESERVE, CREATE, DESTROY, ...: with an `id`, refused exactly as the master
    refuses feedback from an agent without the RESOURCE_PROVIDER capability (devcluster
    agents have none). Without one the real master would apply the operation; the devcluster
    does not implement reservations or volumes, so it drops it and says so in the timeline
    (`operation_dropped`), never silently."""
    if "id" in operation:
        message = (
            f"Operation requested feedback, but agent {agent.agent_id} does not have the"
            " required RESOURCE_PROVIDER capability"
        )
    else:
        message = f"devcluster does not implement {operation.get('type')} operations"
    drop_operation(master, framework, operation, message)


def _offer_error(master: Master, framework: Framework, offer_ids: list[str]) -> str | None:
    """`validation::offer::validate`."""
    if not offer_ids:
        return "No offers specified"
    if len(set(offer_ids)) != len(offer_ids):
        return "Duplicate offer ID in the list of offers"
    offers: list[Offer] = []
    for offer_id in offer_ids:
        offer = master.offers.get(offer_id)
        if offer is None:
            return f"Offer {offer_id} is no longer valid"
        if offer.framework_id != framework.id:
            return f"Offer {offer_id} has invalid framework {offer.framework_id}"
        offers.append(offer)
    if len({o.role for o in offers}) > 1:
        return "Aggregated offers must be allocated to the same role"
    if len({o.agent_id for o in offers}) > 1:
        return "Aggregated offers must belong to one single agent"
    return None


def _reject_invalid_offers(
    master: Master, framework: Framework, offer_ids: list[str], operations: list[dict], error: str
) -> None:
    for offer_id in offer_ids:
        offer = master.offers.get(offer_id)
        if offer and offer.framework_id == framework.id:
            master.allocator.recover(offer_id)
    state = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
    for operation in operations:
        if operation.get("type") not in LAUNCHES:
            drop_operation(
                master, framework, operation, f"Operation attempted with invalid offers: {error}"
            )
            continue
        for task in _operation_tasks(operation):
            status = protocol.master_status(
                task["task_id"]["value"], state, "REASON_INVALID_OFFERS",
                f"Task launched with invalid offers: {error}", task["agent_id"]["value"],
            )  # fmt: skip
            framework.send(protocol.update_event(status))


def _pool(offers: list[Offer]) -> dict[str, Resources]:
    pooled: dict[str, Resources] = {}
    for offer in offers:
        for reserved, pool in offer.pools.items():
            pooled.setdefault(reserved, Resources()).add(pool)
    return pooled


def _agent_gone(framework: Framework, agent: Agent, task_id: str) -> bool:
    """A task for an agent that went away after the offer: TASK_LOST / TASK_DROPPED."""
    gone = agent.removed or agent.unreachable
    if not gone and agent.connected:
        return False
    state = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
    reason = "REASON_AGENT_REMOVED" if gone else "REASON_AGENT_DISCONNECTED"
    message = "Agent removed" if gone else "Agent disconnected"
    status = protocol.master_status(task_id, state, reason, message, agent.agent_id)
    framework.send(protocol.update_event(status))
    return True


def _launch_one(
    master: Master,
    framework: Framework,
    agent: Agent,
    offer: Offer,
    remaining: dict[str, Resources],
    info: dict,
) -> None:
    task_id = info["task_id"]["value"]
    if _agent_gone(framework, agent, task_id):
        return
    if not master.authorizer.allows(framework.principal, "RUN_TASK"):  # before validation
        message = launch_refusal(framework.principal, info, framework.id, framework.info)
        _task_errors(framework, agent, [info], "REASON_TASK_UNAUTHORIZED", message)
        return
    info = _with_allocation_info(info, offer.role)
    error, needed = task_validation.task_error(
        info, agent.agent_id, framework.tasks, framework.unreachable_tasks,
        remaining, offer.role,
    )  # fmt: skip
    if error:
        status = protocol.master_status(
            task_id, "TASK_ERROR", "REASON_TASK_INVALID", error, agent.agent_id
        )
        framework.send(protocol.update_event(status))
        return
    for reserved, pool in needed.items():
        remaining[reserved].subtract(pool)
    master.launch(framework, agent, Task(info, framework.id, agent.agent_id, offer.role, needed))


def _launch_group(
    master: Master,
    framework: Framework,
    agent: Agent,
    offer: Offer,
    remaining: dict[str, Resources],
    operation: dict,
) -> None:
    """LAUNCH_GROUP: validated as `task::group::validate` does (the parts that apply here),
    then each task runs as its own task on the agent, all or none."""
    group = operation.get("launch_group", {})
    tasks = [_with_allocation_info(t, offer.role) for t in _operation_tasks(operation)]
    if not agent.connected or agent.removed or agent.unreachable:
        for task in tasks:
            _agent_gone(framework, agent, task["task_id"]["value"])
        return
    if tasks and not master.authorizer.allows(framework.principal, "RUN_TASK"):  # all or none
        message = launch_refusal(framework.principal, tasks[0], framework.id, framework.info)
        _task_errors(framework, agent, tasks, "REASON_TASK_UNAUTHORIZED", message)
        return
    executor = group.get("executor", {})
    executor = {**executor, "resources": _with_allocation_info(executor, offer.role)["resources"]}
    error, needed = _group_error(framework, agent, offer, remaining, tasks, executor)
    if error:
        reason = "REASON_TASK_GROUP_INVALID"
        _task_errors(framework, agent, tasks, reason, error)
        return
    for reserved, pool in needed.items():
        remaining[reserved].subtract(pool)
    share = {r: p.copy() for r, p in needed.items()}
    for index, info in enumerate(tasks):
        pools = share if index == 0 else {}
        task = Task(info, framework.id, agent.agent_id, offer.role, pools)
        master.launch(framework, agent, task)


def _group_error(
    framework: Framework,
    agent: Agent,
    offer: Offer,
    remaining: dict[str, Resources],
    tasks: list[dict],
    executor: dict,
) -> tuple[str | None, dict[str, Resources]]:
    known = framework.tasks  # looked up, never copied: a copy per launch grows with the cluster
    for info in tasks:
        for check in task_validation.task_checks(
            info, agent.agent_id, known, framework.unreachable_tasks
        ):
            error = check()
            if error:
                return f"Task '{info['task_id']['value']}' is invalid: {error}", {}
        if "executor" in info and info["executor"] != executor:
            return "The `ExecutorInfo` of task '" + info["task_id"]["value"] + "' is different", {}
    if "type" not in executor:
        return "'ExecutorInfo.type' must be set", {}
    if executor["type"] == "UNKNOWN":
        return "Unknown executor type", {}
    if executor["type"] != "DEFAULT":
        return "devcluster runs task groups only with the DEFAULT executor", {}
    items = executor.get("resources", []) + [r for t in tasks for r in t.get("resources", [])]
    error = task_validation.resources_error(items)
    if error:
        return f"Task group and executor use invalid resources: {error}", {}
    needed = resources.parse(items)
    fits = all(r in remaining and remaining[r].contains(p) for r, p in needed.items())
    if not fits:
        return (
            f"Total resources {resources.describe(needed, offer.role)} required by task group"
            f" and its executor are more than available"
            f" {resources.describe(remaining, offer.role)}",
            {},
        )
    return None, needed


def _with_allocation_info(info: dict, role: str) -> dict:
    """`protobuf::injectAllocationInfo`: the offer's allocation_info into resources that
    lack it."""

    def inject(items: list[dict]) -> list[dict]:
        return [{"allocation_info": {"role": role}, **item} for item in items]

    info = {**info, "resources": inject(info.get("resources", []))}
    if "executor" in info:
        executor = info["executor"]
        info["executor"] = {**executor, "resources": inject(executor.get("resources", []))}
    return info


def _return_unused(
    master: Master, offer: Offer, remaining: dict[str, Resources], refuse: float
) -> None:
    """Unused resources go back to the agent, filtered for `refuse` seconds."""
    leftover = Offer(offer.offer_id, offer.framework_id, offer.agent_id, offer.role, remaining, {})
    master.offers[offer.offer_id] = leftover
    master.allocator.recover(offer.offer_id, refuse)


def decline(master: Master, framework: Framework, body: dict) -> Reply:
    """Each of the framework's offers goes back, filtered for `Filters.refuse_seconds` as the
    master applies it (`protocol.refuse_seconds`: apache/mesos include/mesos/v1/mesos.proto
    `Filters.refuse_seconds`, default 5 s when unset); the timeline's `decline` entry says
    which filter it got."""
    refuse = protocol.refuse_seconds(body.get("filters"))
    for item in body.get("offer_ids", []):
        offer = master.offers.get(item.get("value", ""))
        if offer and offer.framework_id == framework.id:
            master.allocator.recover(offer.offer_id, refuse)
            master.record(
                "decline", agent_id=offer.agent_id, offer_id=offer.offer_id,
                framework_id=framework.id, refuse_seconds=refuse,
            )  # fmt: skip
    return None


def _roles(framework: Framework, body: dict | None) -> list[str] | None:
    """The roles a REVIVE/SUPPRESS names (all when none), or None to drop the call."""
    roles = (body or {}).get("roles") or framework.roles
    return roles if set(roles) <= set(framework.roles) else None


def revive(master: Master, framework: Framework, body: dict | None) -> Reply:
    roles = _roles(framework, body)
    if roles is not None:
        framework.revive(roles)
        master.allocator.request()
    return None


def suppress(master: Master, framework: Framework, body: dict | None) -> Reply:
    roles = _roles(framework, body)
    if roles is not None:
        framework.suppressed.update(roles)
    return None


def kill(master: Master, framework: Framework, body: dict) -> Reply:
    task_id = body["task_id"]["value"]
    task = framework.tasks.get(task_id)
    if task is None:
        reconcile_tasks(master, framework, [body])
        return None
    given = body.get("agent_id", {}).get("value")
    agent = master.agents.get(task.agent_id)
    if (given and given != task.agent_id) or agent is None:
        return None
    policy = body.get("kill_policy") or task.info.get("kill_policy") or {}
    nanos = policy.get("grace_period", {}).get("nanoseconds")
    grace = int(nanos) / 1e9 if nanos is not None else DEFAULT_KILL_GRACE
    master.kill(agent, task_id, grace)
    return None


def acknowledge(master: Master, framework: Framework, body: dict) -> Reply:
    """(The uuid was validated with the call, scheduler_api.call_error.)"""
    agent = master.agents.get(body["agent_id"]["value"])
    if agent and agent.connected:
        master.acknowledged(framework, agent, body["task_id"]["value"], body["uuid"])
    return None


def acknowledge_operation_status(master: Master, framework: Framework, body: dict) -> Reply:
    return None


def reconcile(master: Master, framework: Framework, body: dict) -> Reply:
    tasks = body.get("tasks", [])
    # on the timeline: how many tasks were asked about (0: implicit), the first few by ID
    named = [(t.get("task_id", {}).get("value"), t.get("agent_id", {}).get("value"))
             for t in tasks[:RECONCILE_NAMED]]  # fmt: skip
    master.record("reconcile", framework_id=framework.id, tasks=len(tasks), named=named)
    if tasks:
        reconcile_tasks(master, framework, tasks)
    else:
        for task in list(framework.tasks.values()):
            framework.send(protocol.update_event(latest_status(task)))
    return None


RECONCILE_NAMED = 10  # tasks of a RECONCILE the timeline names


def latest_status(task: Task) -> dict:
    """A reconciliation answer for a known task (`Master::reconcile`): its latest state
    (`status_update_state` when set), without uuid, `executor_id` only for a task with its own
    executor (`Task.executor_id` is unset for command tasks), health as last reported."""
    status = protocol.master_status(
        task.task_id, task.status_update_state or task.state, "REASON_RECONCILIATION",
        "Reconciliation: Latest task state", task.agent_id,
    )  # fmt: skip
    if "executor" in task.info:
        status["executor_id"] = task.info["executor"]["executor_id"]
    if task.latest and "healthy" in task.latest:
        status["healthy"] = task.latest["healthy"]
    return status


def reconcile_tasks(master: Master, framework: Framework, tasks: list[dict]) -> None:
    """Explicit reconciliation, `Master::reconcile`'s table."""
    for item in tasks:
        task_id = item["task_id"]["value"]
        task = framework.tasks.get(task_id)
        if task:
            framework.send(protocol.update_event(latest_status(task)))
            continue
        status = _unknown_task_status(master, framework, task_id, item.get("agent_id"))
        if status:
            framework.send(protocol.update_event(status))


def _unknown_task_status(
    master: Master, framework: Framework, task_id: str, agent_field: dict | None
) -> dict | None:
    """A task the master does not know. No answer while its agent (or, without an agent ID,
    any agent) has not re-registered with a new master; TASK_GONE for an agent that is
    registered (connected or not); TASK_UNREACHABLE (with `unreachable_time`) for an
    unreachable one; TASK_UNKNOWN otherwise. Not PARTITION_AWARE: TASK_LOST for all."""
    pa = framework.partition_aware
    agent_id = (agent_field or {}).get("value")
    agent = master.agents.get(agent_id or "")
    recovering = any(a.recovering for a in master.agents.values())
    if (agent is not None and agent.recovering) or (agent_id is None and recovering):
        return None
    if agent is not None and not agent.unreachable:
        state, message = ("TASK_GONE" if pa else "TASK_LOST"), "Task is unknown to the agent"
    elif agent is not None:
        state, message = ("TASK_UNREACHABLE" if pa else "TASK_LOST"), "Task is unreachable"
    else:
        state, message = ("TASK_UNKNOWN" if pa else "TASK_LOST"), "Task is unknown"
    status = protocol.master_status(
        task_id, state, "REASON_RECONCILIATION", f"Reconciliation: {message}", agent_id
    )
    if agent is not None and agent.unreachable_time is not None:
        status["unreachable_time"] = {"nanoseconds": int(agent.unreachable_time * 1e9)}
    return status


def teardown(master: Master, framework: Framework, body: dict | None) -> Reply:
    master.remove_framework(framework, "TEARDOWN")
    return None


def ignored(master: Master, framework: Framework, body: dict | None) -> Reply:
    """Calls the built-in allocator and this master accept and then do nothing with."""
    return None


def update_framework(master: Master, framework: Framework, body: dict) -> Reply:
    info = body.get("framework_info", {})
    if info.get("id", {}).get("value") != framework.id:
        return 400, "'framework_info.id' differs from the framework's ID"
    framework.update_info(info)
    framework.suppressed = set(body.get("suppressed_roles", []))
    return 200, ""


HANDLERS: dict[str, Callable[[Master, Framework, dict], Reply]] = {
    "TEARDOWN": teardown,
    "ACCEPT": accept,
    "DECLINE": decline,
    "ACCEPT_INVERSE_OFFERS": ignored,
    "DECLINE_INVERSE_OFFERS": ignored,
    "REVIVE": revive,
    "SUPPRESS": suppress,
    "KILL": kill,
    "SHUTDOWN": ignored,
    "ACKNOWLEDGE": acknowledge,
    "ACKNOWLEDGE_OPERATION_STATUS": acknowledge_operation_status,
    "RECONCILE": reconcile,
    "RECONCILE_OPERATIONS": ignored,
    "MESSAGE": ignored,
    "REQUEST": ignored,
    "UPDATE_FRAMEWORK": update_framework,
}
