"""The largest document the scheduler stores, and the largest answer and call it builds, at scale.

    .venv/bin/python scripts/document_sizes.py [--agents 50000]

Builds, in memory, the records a converged rollout leaves (agent IDs as Mesos makes them,
`<uuid>-S<n>`, five steps each) and an uninstall with `--revert-hosts` half-way, every
host's revert task FINISHED; then prints, in bytes: the uninstall's meta document in the
previous layout (every revert in one document) and in this one, the largest agent record,
`/v1/plan` and `/v1/agents` whole and as the API answers them (a page), and the largest
RECONCILE and DECLINE the core builds. ZooKeeper refuses a znode over ~1 MB (jute.maxbuffer).

Then what the scheduler reads from the master after each subscription, as the devcluster
renders it (calico_dcos/devcluster/state.py) for that many agents running our five steps'
tasks, without starting them: one agent's and one agent's five tasks' JSON, times the agents.
Before: `/master/state` (twice). Now: `/master/slaves` and `GET_FRAMEWORKS`. The real master
writes more per task (`container`, `discovery`, each status' `container_status`), so the
`/master/state` figure is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import uuid
from types import SimpleNamespace

from calico_dcos import plans
from calico_dcos.core import events as ev
from calico_dcos.core import uninstall as un
from calico_dcos.core.deploy import Deploy
from calico_dcos.core.offers import answer_offers
from calico_dcos.core.records import step_record, task_id_for
from calico_dcos.devcluster import state as rendered
from calico_dcos.devcluster.authorizer import Authorizer
from calico_dcos.devcluster.framework import Framework, Task
from calico_dcos.devcluster.resources import Resources
from calico_dcos.operator_api import PAGE_LIMIT, paged_plan
from calico_dcos.options import load_options
from calico_dcos.store import encode_document

STEPS = ("etcd-proxy", "docker", "cni", "libnetwork", "node")
DAEMONS = ("etcd-proxy", "libnetwork", "node")


def converged_records(agents: int) -> dict[str, dict]:
    prefix = str(uuid.UUID(int=0x5F1C))
    records = {}
    for i in range(agents):
        aid = f"{prefix}-S{i}"
        steps = {
            step: {
                "task_id": task_id_for(step, aid, "4f2a" * 16, 1),
                "state": "TASK_RUNNING" if step in DAEMONS else "TASK_FINISHED",
                "attempts": 1,
                "fingerprint": "4f2a" * 16,
                "updated": 1764357000.0,
                "message": "Command exited with status 0",
            }
            for step in STEPS
        }
        records[aid] = {"agent_id": aid, "hostname": f"agent-{i}.example", "steps": steps}
    return records


def master_reads(agents: int) -> dict[str, int]:
    """Bytes of `/master/state`, `/master/slaves` and `GET_FRAMEWORKS` (no offers out) for
    `agents` agents each running our five steps' tasks, as the devcluster renders them."""
    framework_id = str(uuid.UUID(int=0xF00D)) + "-0001"
    pools = {
        "*": Resources(
            scalars={"cpus": 4.0, "mem": 14019.0, "disk": 35577.0},
            ranges={
                "ports": [
                    (1025, 2180),
                    (2182, 3887),
                    (3889, 5049),
                    (5052, 8079),
                    (8082, 8180),
                    (8182, 32000),
                ]
            },
        )
    }
    aid = f"{uuid.UUID(int=0x5F1C)}-S{agents - 1}"
    agent = SimpleNamespace(
        agent_id=aid,
        ip="10.0.123.234",
        port=5051,
        hostname="ip-10-0-123-234.us-west-2.compute.internal",
        registered_time=1764357000.0,
        total=pools,
        available={"*": Resources(dict(pools["*"].scalars), dict(pools["*"].ranges))},
        attributes=[],
        connected=True,
    )
    agent.available["*"].subtract(Resources(scalars={"cpus": 0.3, "mem": 192.0}))  # our 3 daemons
    master = SimpleNamespace(offers={}, authorizer=Authorizer())
    tasks = []
    for step in STEPS:
        states = ["TASK_STARTING", "TASK_RUNNING"] + ([] if step in DAEMONS else ["TASK_FINISHED"])
        labels = [
            {"key": "calico-dcos.step", "value": step},
            {"key": "calico-dcos.fingerprint", "value": "4f2a" * 16},
        ]
        info = {
            "name": f"calico-{step}",
            "task_id": {"value": task_id_for(step, aid, "4f2a" * 16, 1)},
            "labels": {"labels": labels},
        }
        task = Task(
            info,
            framework_id,
            aid,
            "*",
            {"*": Resources(scalars={"cpus": 0.1, "mem": 64.0})},
            states[-1],
            statuses=[{"state": s, "timestamp": 1764357000.0} for s in states],
        )
        tasks.append(rendered._task(task))
    by_agent = rendered.offers_by_agent(master)
    per_agent = len(json.dumps(rendered._agent(master, agent, by_agent))) + 2  # ", " between
    per_tasks = sum(len(json.dumps(t)) + 2 for t in tasks)
    full = {**rendered._agent(master, agent, by_agent), **rendered._agent_full(agent, by_agent)}
    ours = Framework(
        framework_id,
        {
            "name": "calico",
            "user": "root",
            "role": "slave_public",
            "checkpoint": True,
            "failover_timeout": 604800.0,
            "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
        },
        "calico",
    )
    listed = SimpleNamespace(frameworks={framework_id: ours}, removed_frameworks={},
                             authorizer=Authorizer())  # fmt: skip
    return {
        "/master/state (before; twice when registered anew)": agents * (per_agent + per_tasks),
        "/master/slaves (now)": agents * (len(json.dumps(full)) + 2),
        "GET_FRAMEWORKS, our framework (now)": len(json.dumps(rendered.get_frameworks(listed))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50_000)
    agents = parser.parse_args().agents
    options = load_options(None, {})
    records = converged_records(agents)
    size = {"largest agent record": max(len(encode_document(r)) for r in records.values())}

    revert = un.StepState(state="TASK_FINISHED", attempts=1, updated=1764357000.0,
                          message="Command exited with status 0")  # fmt: skip
    reverts = {aid: {**step_record(revert), "task_id": task_id_for("uninstall", aid, "d6e3", 1)}
               for aid in records}  # fmt: skip
    legacy = {"revert_hosts": True, "stage": un.REVERT, "reverts": reverts}
    size["uninstall meta document, previous layout"] = len(encode_document(legacy))
    migrated, meta = un.migrated(records, legacy)
    size["uninstall meta document, this layout"] = len(encode_document(meta or {}))
    size["largest agent record with its revert"] = max(
        len(encode_document(r)) for r in migrated.values()
    )

    core = Deploy(plans.config_from_options(options, "http://scheduler:8080"), records)
    plan = core.plan_view(0.0)
    size["/v1/plan whole"] = len(json.dumps(plan))
    page = paged_plan(plan, 0, PAGE_LIMIT, core.summary(0.0))
    size["/v1/plan as answered (a page)"] = len(json.dumps(page))
    listed = sorted(records.values(), key=lambda r: r["hostname"])
    size["/v1/agents whole"] = len(json.dumps({"agents": listed}))
    size["/v1/agents as answered (a page)"] = len(json.dumps({"agents": listed[:PAGE_LIMIT]}))

    subscribed = core.on_subscribed("f" * 36 + "-0001", 0.0)  # the explicit reconciliation
    calls = [d for d in subscribed if isinstance(d, ev.Reconcile)]
    size["largest RECONCILE (task IDs)"] = max(len(c.tasks) for c in calls)
    offers = [{"id": {"value": f"{uuid.uuid4()}-O{i}"}} for i in range(agents)]
    declines = answer_offers(offers, lambda offer, launched, out: 5.0)
    size["largest DECLINE (offer IDs)"] = max(len(d.offer_ids) for d in declines)

    size.update(master_reads(agents))

    width = max(map(len, size))
    for name, value in size.items():
        print(f"{name:<{width}}  {value:>12,}")


if __name__ == "__main__":
    main()
