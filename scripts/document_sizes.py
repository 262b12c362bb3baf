"""The largest document the scheduler stores, and the largest answer and call it builds, at scale.

    .venv/bin/python scripts/document_sizes.py [--agents 50000]

Builds, in memory, the records a converged rollout leaves (agent IDs as Mesos makes them,
`<uuid>-S<n>`, five steps each) and an uninstall with `--revert-hosts` half-way, every
host's revert task FINISHED; then prints, in bytes: the uninstall's meta document in the
previous layout (every revert in one document) and in this one, the largest agent record,
`/v1/plan` and `/v1/agents` whole and as the API answers them (a page), and the largest
RECONCILE and DECLINE the core builds. ZooKeeper refuses a znode over ~1 MB (jute.maxbuffer).
"""

from __future__ import annotations

import argparse
import json
import uuid

from calico_dcos import plans
from calico_dcos.core import events as ev
from calico_dcos.core import uninstall as un
from calico_dcos.core.deploy import Deploy
from calico_dcos.core.offers import answer_offers
from calico_dcos.core.records import step_record, task_id_for
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
    size["/v1/plan as answered (a page)"] = len(json.dumps(paged_plan(plan, 0, PAGE_LIMIT)))
    listed = sorted(records.values(), key=lambda r: r["hostname"])
    size["/v1/agents whole"] = len(json.dumps({"agents": listed}))
    size["/v1/agents as answered (a page)"] = len(json.dumps({"agents": listed[:PAGE_LIMIT]}))

    subscribed = core.on_subscribed("f" * 36 + "-0001", 0.0)  # the explicit reconciliation
    calls = [d for d in subscribed if isinstance(d, ev.Reconcile)]
    size["largest RECONCILE (task IDs)"] = max(len(c.tasks) for c in calls)
    offers = [{"id": {"value": f"{uuid.uuid4()}-O{i}"}} for i in range(agents)]
    declines = answer_offers(offers, lambda offer, launched, out: 5.0)
    size["largest DECLINE (offer IDs)"] = max(len(d.offer_ids) for d in declines)

    width = max(map(len, size))
    for name, value in size.items():
        print(f"{name:<{width}}  {value:>12,}")


if __name__ == "__main__":
    main()
