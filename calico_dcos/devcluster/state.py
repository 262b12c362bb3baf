"""`/master/state` in the real master's JSON shape, for people and tests to look at."""

from __future__ import annotations

from calico_dcos.devcluster import protocol, resources
from calico_dcos.devcluster.agent import Agent
from calico_dcos.devcluster.framework import Framework, Task
from calico_dcos.devcluster.master import Master


def master_state(master: Master) -> dict:
    agents = [a for a in master.agents.values() if not a.unreachable and not a.recovering]
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
        "flags": {"allocation_interval": f"{master.allocator.interval}secs"},
        "slaves": [_agent(master, a) for a in agents],
        "frameworks": [_framework(f) for f in master.frameworks.values()],
        "completed_frameworks": [_framework(f) for f in master.removed_frameworks.values()],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }


def _agent(master: Master, agent: Agent) -> dict:
    total = resources.total(agent.total)
    free = resources.total(agent.available)
    offered = resources.total(
        {o.offer_id: resources.total(o.pools) for o in master.offers.values()
         if o.agent_id == agent.agent_id}
    )  # fmt: skip
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
