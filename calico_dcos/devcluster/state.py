"""`/master/state` in the real master's JSON shape, for people and tests to look at."""

from __future__ import annotations

from calico_dcos.devcluster import protocol, resources
from calico_dcos.devcluster.agent import Agent
from calico_dcos.devcluster.framework import Framework, Offer, Task
from calico_dcos.devcluster.master import Master
from calico_dcos.mesos import format_duration


def master_state(master: Master) -> dict:
    agents = [a for a in master.agents.values() if not a.unreachable and not a.recovering]
    by_agent = offers_by_agent(master)
    return {
        "version": protocol.MESOS_VERSION,
        "git_sha": "devcluster",
        "build_user": "devcluster",
        "start_time": master.start_time,
        "elected_time": master.elected_time,
        "id": master.id,
        "pid": f"master@{master.host}:{master.port}",
        "hostname": master.host,
        "leader": f"master@{master.host}:{master.port}",
        "leader_info": master.master_info(),
        "activated_slaves": sum(1 for a in agents if a.connected),
        "deactivated_slaves": sum(1 for a in agents if not a.connected),
        "unreachable_slaves": sum(1 for a in master.agents.values() if a.unreachable),
        "recovered_slaves": sum(1 for a in master.agents.values() if a.recovering),
        "flags": master_flags(master),
        "slaves": [_agent(master, a, by_agent) for a in agents],
        "frameworks": [_framework(f) for f in master.frameworks.values()],
        "completed_frameworks": [_framework(f) for f in master.removed_frameworks.values()],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }


def offers_by_agent(master: Master) -> dict[str, list[Offer]]:
    """The outstanding offers by agent ID, each agent's in the master's order: made once per
    document (looking through every offer for each agent took ~7 s at 5,000 agents, with an
    offer out for every agent, for the one `/master/slaves` a subscription reads)."""
    out: dict[str, list[Offer]] = {}
    for offer in master.offers.values():
        out.setdefault(offer.agent_id, []).append(offer)
    return out


def _agent(master: Master, agent: Agent, by_agent: dict[str, list[Offer]]) -> dict:
    total = resources.total(agent.total)
    free = resources.total(agent.available)
    offered = resources.total(
        {o.offer_id: resources.total(o.pools) for o in by_agent.get(agent.agent_id, ())}
    )
    used = total.copy()
    used.subtract(free)
    used.subtract(offered)
    return {
        "id": agent.agent_id,
        "pid": f"slave(1)@{agent.ip}:{agent.port}",
        "hostname": agent.hostname,
        "port": agent.port,
        "registered_time": agent.registered_time,
        "resources": total.summary(),
        "used_resources": used.summary(),
        "offered_resources": offered.summary(),
        "reserved_resources": {r: p.summary() for r, p in agent.total.items() if r != "*"},
        "unreserved_resources": agent.total.get("*", resources.Resources()).summary(),
        "attributes": {a["name"]: _attribute_value(a) for a in agent.attributes},
        "active": agent.connected,
        "version": protocol.MESOS_VERSION,
    }


def _attribute_value(attribute: dict) -> object:
    if attribute.get("type") == "SCALAR":
        return attribute["scalar"]["value"]
    return attribute.get("text", {}).get("value", "")


def _framework(framework: Framework) -> dict:
    info = framework.info
    return {
        "id": framework.id,
        "name": info.get("name", ""),
        "user": info.get("user", ""),
        "hostname": info.get("hostname", ""),
        "webui_url": info.get("webui_url", ""),
        "principal": framework.principal,
        "role": info.get("role", "*"),
        "roles": framework.roles,
        "checkpoint": framework.checkpoint,
        "failover_timeout": framework.failover_timeout,
        "capabilities": sorted(framework.capabilities - {""}),
        "active": framework.connected,
        "connected": framework.connected,
        "recovered": False,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time,
        "tasks": [_task(t) for t in framework.tasks.values()],
        "completed_tasks": [_task(t) for t in framework.completed_tasks],
        "offers": [
            {
                "id": o.offer_id,
                "slave_id": o.agent_id,
                "framework_id": framework.id,
                "allocation_info": {"role": o.role},
                "resources": resources.total(o.pools).summary(),
            }
            for o in framework.offers.values()
        ],  # fmt: skip
        "executors": [],
    }


def _task(task: Task) -> dict:
    return {
        "id": task.task_id,
        "name": task.info.get("name", ""),
        "framework_id": task.framework_id,
        "executor_id": task.info.get("executor", {}).get("executor_id", {}).get("value", ""),
        "slave_id": task.agent_id,
        "state": task.state,
        "role": task.role,
        "resources": resources.total(task.pools).summary(),
        "statuses": task.statuses,
        "labels": task.info.get("labels", {}).get("labels", []),
    }


def master_slaves(master: Master, slave_id: str | None = None) -> dict:
    """`/master/slaves` (apache/mesos src/master/http.cpp, `Master::Http::slaves` and its
    `SlavesWriter`; `ReadOnlyHandler::slaves` in src/master/readonly_handler.cpp from 1.8):
    `slaves`, the registered agents as `/master/state` has them plus the resources in full
    (`reserved_resources_full`, `unreserved_resources_full`, `used_resources_full`,
    `offered_resources_full`), and `recovered_slaves`, the agents recovered from the registry
    after a master failover that have not re-registered yet (`id`, `hostname`, `port`,
    `attributes`). Unreachable agents are in neither. `slave_id` (a query parameter since
    Mesos 1.4) keeps one agent."""

    def wanted(agent: Agent) -> bool:
        return slave_id is None or agent.agent_id == slave_id

    by_agent = offers_by_agent(master)
    registered = [
        a for a in master.agents.values() if not a.unreachable and not a.recovering and wanted(a)
    ]
    recovered = [a for a in master.agents.values() if a.recovering and wanted(a)]
    return {
        "slaves": [{**_agent(master, a, by_agent), **_agent_full(a, by_agent)} for a in registered],
        "recovered_slaves": [
            {
                "id": a.agent_id,
                "hostname": a.hostname,
                "port": a.port,
                "attributes": {at["name"]: _attribute_value(at) for at in a.attributes},
            }
            for a in recovered
        ],
    }


def _agent_full(agent: Agent, by_agent: dict[str, list[Offer]]) -> dict:
    """The `*_full` fields: `Resource` objects, reservations in the post-refinement shape."""
    offered: dict[str, resources.Resources] = {}
    for offer in by_agent.get(agent.agent_id, ()):
        for role, pool in offer.pools.items():
            offered.setdefault(role, resources.Resources()).add(pool)
    used: dict[str, resources.Resources] = {}
    for role, pool in agent.total.items():
        left = pool.copy()
        left.subtract(agent.available.get(role, resources.Resources()))
        left.subtract(offered.get(role, resources.Resources()))
        used[role] = left

    def full(pools: dict[str, resources.Resources]) -> list[dict]:
        out = []
        for role, pool in pools.items():
            for item in pool.to_json(role, role, True):
                item.pop("allocation_info", None)
                out.append(item)
        return out

    return {
        "reserved_resources_full": {r: full({r: p}) for r, p in agent.total.items() if r != "*"},
        "unreserved_resources_full": full({"*": agent.total.get("*", resources.Resources())}),
        "used_resources_full": full(used),
        "offered_resources_full": full(offered),
    }


def get_frameworks(master: Master, principal: str | None = None) -> dict:
    """The operator API's `GET_FRAMEWORKS` answer in JSON (apache/mesos src/master/http.cpp,
    `Master::Http::getFrameworks`/`_getFrameworks`; include/mesos/v1/master/master.proto
    `Response.GetFrameworks`): every registered framework (connected, disconnected or
    recovered) and the completed ones, each with its whole `framework_info` (`id`, `name`,
    `principal`, …), `active`, `connected`, `recovered`, its outstanding `offers`, and no
    tasks (those are `GET_TASKS`). None for a `principal` without VIEW_FRAMEWORK
    (`Master.authorizer`): `_getFrameworks` leaves out each framework the approver denies."""

    def one(framework: Framework) -> dict:
        out: dict = {
            "framework_info": framework.info,
            "active": framework.connected,
            "connected": framework.connected,
            "recovered": False,
            "registered_time": {"nanoseconds": int(framework.registered_time * 1e9)},
            "offers": [o.json for o in framework.offers.values()],
        }
        if framework.unregistered_time:
            out["unregistered_time"] = {"nanoseconds": int(framework.unregistered_time * 1e9)}
        return out

    if not master.authorizer.allows(principal, "VIEW_FRAMEWORK"):
        return {"type": "GET_FRAMEWORKS", "get_frameworks": {}}
    return {
        "type": "GET_FRAMEWORKS",
        "get_frameworks": {
            "frameworks": [one(f) for f in master.frameworks.values()],
            "completed_frameworks": [one(f) for f in master.removed_frameworks.values()],
        },
    }


def master_flags(master: Master) -> dict[str, str]:
    """The master's flags that the devcluster has, by name, each value written as Mesos
    writes it (apache/mesos src/master/http.cpp `Master::Http::__flags`: `flag.stringify`, a
    duration by stout's `operator<<`, `mesos.format_duration`; an `Option` flag left unset,
    such as `offer_timeout`, is left out)."""
    allocator = master.allocator
    flags = {"allocation_interval": format_duration(allocator.interval)}
    if allocator.offer_timeout is not None:
        flags["offer_timeout"] = format_duration(allocator.offer_timeout)
    return flags


def get_flags(master: Master) -> dict:
    """The operator API's `GET_FLAGS` answer in JSON (apache/mesos src/master/http.cpp
    `Master::Http::getFlags`; src/internal/evolve.cpp `evolve<GET_FLAGS>`: one `Flag`
    `{"name", "value"}` per flag, include/mesos/v1/master/master.proto `Response.GetFlags`)."""
    flags = [{"name": name, "value": value} for name, value in master_flags(master).items()]
    return {"type": "GET_FLAGS", "get_flags": {"flags": flags}}
