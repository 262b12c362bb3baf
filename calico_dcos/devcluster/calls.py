"""Scheduler calls other than SUBSCRIBE, as the real master handles them (§2, §6, §7).

Each handler gets the master, the calling framework and the call's body; it returns None for
202 Accepted, or an (HTTP status, text) pair for the few calls that answer otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from calico_dcos.devcluster import protocol, resources
from calico_dcos.devcluster.agent import Agent
from calico_dcos.devcluster.framework import Framework, Offer, Task
from calico_dcos.devcluster.master import Master
from calico_dcos.devcluster.resources import Resources

Reply = tuple[int, str] | None
DEFAULT_KILL_GRACE = 3.0


def accept(master: Master, framework: Framework, body: dict) -> Reply:
    offer_ids = [o.get("value", "") for o in body.get("offer_ids", [])]
    operations = body.get("operations", [])
    tasks = [
        task
        for op in operations
        if op.get("type") == "LAUNCH"
        for task in op.get("launch", {}).get("task_infos", [])
    ]
    error = _offer_error(master, framework, offer_ids)
    if error:
        _reject_invalid_offers(master, framework, offer_ids, tasks, error)
        return None
    offers = [master.offers.pop(oid) for oid in offer_ids]
    for offer in offers:
        framework.offers.pop(offer.offer_id, None)
    remaining = _pool(offers)
    agent = master.agents[offers[0].agent_id]
    for task in tasks:
        _launch_one(master, framework, agent, offers[0], remaining, task)
    _return_unused(master, offers[0], remaining, protocol.refuse_seconds(body.get("filters")))
    return None


def _offer_error(master: Master, framework: Framework, offer_ids: list[str]) -> str | None:
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
    master: Master, framework: Framework, offer_ids: list[str], tasks: list[dict], error: str
) -> None:
    for offer_id in offer_ids:
        offer = master.offers.get(offer_id)
        if offer and offer.framework_id == framework.id:
            master.allocator.recover(offer_id)
    state = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
    for task in tasks:
        status = protocol.master_status(
            task["task_id"]["value"], state, "REASON_INVALID_OFFERS",
            f"Task launched with invalid offers: {error}", task.get("agent_id", {}).get("value"),
        )  # fmt: skip
        framework.send(protocol.update_event(status))


def _pool(offers: list[Offer]) -> dict[str, Resources]:
    pooled: dict[str, Resources] = {}
    for offer in offers:
        for reserved, pool in offer.pools.items():
            pooled.setdefault(reserved, Resources()).add(pool)
    return pooled


def _launch_one(
    master: Master,
    framework: Framework,
    agent: Agent,
    offer: Offer,
    remaining: dict[str, Resources],
    info: dict,
) -> None:
    task_id = info["task_id"]["value"]
    if agent.removed or not agent.connected:
        removed = agent.removed
        state = "TASK_LOST"
        if framework.partition_aware:
            state = "TASK_DROPPED"
        reason = "REASON_AGENT_REMOVED" if removed else "REASON_AGENT_DISCONNECTED"
        message = "Agent removed" if removed else "Agent disconnected"
        status = protocol.master_status(task_id, state, reason, message, agent.agent_id)
        framework.send(protocol.update_event(status))
        return
    info = _with_allocation_info(info, offer.role)
    error, needed = task_error(framework, agent, remaining, info, offer.role)
    if error:
        status = protocol.master_status(
            task_id, "TASK_ERROR", "REASON_TASK_INVALID", error, agent.agent_id
        )
        framework.send(protocol.update_event(status))
        return
    for reserved, pool in needed.items():
        remaining[reserved].subtract(pool)
    master.launch(framework, agent, Task(info, framework.id, agent.agent_id, offer.role, needed))


def _with_allocation_info(info: dict, role: str) -> dict:
    """The master injects the offer's allocation_info into resources that lack it."""

    def inject(items: list[dict]) -> list[dict]:
        return [{"allocation_info": {"role": role}, **item} for item in items]

    info = {**info, "resources": inject(info.get("resources", []))}
    if "executor" in info:
        executor = info["executor"]
        info["executor"] = {**executor, "resources": inject(executor.get("resources", []))}
    return info


def task_error(
    framework: Framework,
    agent: Agent,
    remaining: dict[str, Resources],
    info: dict,
    role: str,
) -> tuple[str | None, dict[str, Resources]]:
    """§7 C: the first failing per-task check, in the real master's order."""
    task_id = info["task_id"]["value"]
    checks: list[Callable[[], str | None]] = [
        lambda: protocol.valid_id(task_id),
        lambda: f"Task has duplicate ID: {task_id}" if task_id in framework.tasks else None,
        lambda: _agent_error(info, agent),
        lambda: _kill_policy_error(info),
        lambda: _command_error(info),
    ]
    for check in checks:
        error = check()
        if error:
            return error, {}
    return _resource_error(info, remaining, role)


def _agent_error(info: dict, agent: Agent) -> str | None:
    given = info["agent_id"].get("value")
    if given != agent.agent_id:
        return f"Task uses invalid agent {given} while agent {agent.agent_id} is expected"
    return None


def _kill_policy_error(info: dict) -> str | None:
    grace = info.get("kill_policy", {}).get("grace_period", {}).get("nanoseconds", 0)
    if int(grace) < 0:
        return "Task's 'kill_policy.grace_period' must be non-negative"
    if int(info.get("max_completion_time", {}).get("nanoseconds", 0)) < 0:
        return "Task's `max_completion_time` must be non-negative"
    return None


def _command_error(info: dict) -> str | None:
    if ("command" in info) == ("executor" in info):
        return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
    executor = info.get("executor")
    if executor is not None and "command" not in executor:
        return "Executor must have a 'command'"
    return None


def _resource_error(
    info: dict, remaining: dict[str, Resources], role: str
) -> tuple[str | None, dict[str, Resources]]:
    items = info.get("resources", [])
    if not items:
        return "Task uses no resources", {}
    items = items + info.get("executor", {}).get("resources", [])
    if any(i.get("allocation_info", {}).get("role", role) != role for i in items):
        return "Task uses resources allocated to more than one role", {}
    try:
        needed = resources.parse(items)
    except (ValueError, KeyError, TypeError) as exc:
        return f"Task uses invalid resources: {exc}", {}
    fits = all(r in remaining and remaining[r].contains(p) for r, p in needed.items())
    if not fits:
        return (
            f"Total resources {resources.describe(needed)} required by task and its executor"
            f" is more than available {resources.describe(remaining)}",
            {},
        )
    return None, needed


def _return_unused(
    master: Master, offer: Offer, remaining: dict[str, Resources], refuse: float
) -> None:
    """Unused resources go back to the agent, filtered for `refuse` seconds."""
    leftover = Offer(offer.offer_id, offer.framework_id, offer.agent_id, offer.role, remaining, {})
    master.offers[offer.offer_id] = leftover
    master.allocator.recover(offer.offer_id, refuse)


def decline(master: Master, framework: Framework, body: dict) -> Reply:
    refuse = protocol.refuse_seconds(body.get("filters"))
    for item in body.get("offer_ids", []):
        offer = master.offers.get(item.get("value", ""))
        if offer and offer.framework_id == framework.id:
            master.allocator.recover(offer.offer_id, refuse)
            master.record("decline", agent_id=offer.agent_id, offer_id=offer.offer_id)
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
    if not protocol.valid_uuid_b64(body.get("uuid")):
        return 400, "Failed to validate scheduler::Call: Not a valid UUID"
    agent = master.agents.get(body["agent_id"]["value"])
    if agent and agent.connected:
        master.acknowledged(framework, agent, body["task_id"]["value"], body["uuid"])
    return None


def acknowledge_operation_status(master: Master, framework: Framework, body: dict) -> Reply:
    if not protocol.valid_uuid_b64(body.get("uuid")):
        return 400, "Failed to validate scheduler::Call: Not a valid UUID"
    return None


def reconcile(master: Master, framework: Framework, body: dict) -> Reply:
    tasks = body.get("tasks", [])
    if tasks:
        reconcile_tasks(master, framework, tasks)
    else:
        for task in list(framework.tasks.values()):
            framework.send(protocol.update_event(latest_status(task)))
    return None


def latest_status(task: Task) -> dict:
    """A reconciliation answer for a known task: its latest state, without uuid."""
    status = protocol.master_status(
        task.task_id, task.status_update_state or task.state, "REASON_RECONCILIATION",
        "Reconciliation: Latest task state", task.agent_id,
    )  # fmt: skip
    if task.status_update_state or task.state != "TASK_STAGING":
        status["executor_id"] = {"value": task.task_id}
    if task.latest and "healthy" in task.latest:
        status["healthy"] = task.latest["healthy"]
    return status


def reconcile_tasks(master: Master, framework: Framework, tasks: list[dict]) -> None:
    """Explicit reconciliation, the table of §6."""
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
    pa = framework.partition_aware
    agent_id = (agent_field or {}).get("value")
    agent = master.agents.get(agent_id or "")
    if agent is None:
        recovering = any(not a.connected and not a.removed for a in master.agents.values())
        if agent_id is None and recovering:
            return None
        state = "TASK_UNKNOWN" if pa else "TASK_LOST"
        return protocol.master_status(
            task_id, state, "REASON_RECONCILIATION", "Reconciliation: Task is unknown"
        )
    if agent.removed:
        state, message = ("TASK_UNREACHABLE" if pa else "TASK_LOST"), "Task is unreachable"
    elif not agent.connected:
        return None
    else:
        state, message = ("TASK_GONE" if pa else "TASK_LOST"), "Task is unknown to the agent"
    return protocol.master_status(
        task_id, state, "REASON_RECONCILIATION", f"Reconciliation: {message}", agent.agent_id
    )


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
