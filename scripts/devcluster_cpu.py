"""CPU of the embedded master's per-offer and per-call work, alone (no sockets, no scheduler).

    .venv/bin/python scripts/devcluster_cpu.py [--agents 1000] [--rounds 20]

`calico-dcos bench` gives the devcluster's CPU per agent at scale (`mesos ms/ag`), but on a
shared machine a figure for one part is easier to compare alone. On one `Master` with
`--agents` agents (their host roots made as the bench's are) and one framework subscribed
with the roles, capabilities and checkpointing the scheduler asks for, this measures in
the process' CPU (user + system):

- per offer: a REVIVE and the allocation round it asks for (every agent offered), the
  OFFERS event encoded as its stream writes it (`protocol.recordio`), and a DECLINE of
  every offer for an hour (each offer recovered and filtered), `--rounds` times;
- `/master/slaves` built once with an offer out for every agent (what the scheduler reads
  after the first round);
- per call: the scheduler's own ACCEPT, DECLINE and ACKNOWLEDGE bodies (the shapes
  `calico_dcos.sender` sends) through `wire.call_json`, as `POST /api/v1/scheduler`
  parses them after `json.loads`.

The figures vary with the machine's load: compare them within one run, or one tree's run
against another's moments apart.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import tempfile
import time
from pathlib import Path

from calico_dcos.devcluster import calls, protocol, wire
from calico_dcos.devcluster.master import Master
from calico_dcos.devcluster.state import master_slaves

FRAMEWORK_INFO = {
    "name": "calico",
    "user": "nobody",
    "roles": ["*", "slave_public"],
    "capabilities": [{"type": t} for t in ("MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE")],
    "checkpoint": True,
    "failover_timeout": 60.0,
}


def task_info(agent_id: str) -> dict:
    """A TaskInfo of the shape the scheduler launches (calico_dcos/core): a command task
    with scalar resources, labels and a cached URI."""
    return {
        "name": "calico-etcd-proxy",
        "task_id": {"value": f"calico-etcd-proxy__{agent_id}__5196a03a__1"},
        "agent_id": {"value": agent_id},
        "resources": [
            {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": "*",
             "allocation_info": {"role": "*"}}
            for name, value in (("cpus", 0.1), ("mem", 128.0))
        ],
        "labels": {"labels": [{"key": "calico_dcos.step", "value": "etcd-proxy"},
                              {"key": "calico_dcos.fingerprint", "value": "5196a03a" * 8}]},
        "command": {"shell": True, "value": "exec ./etcd --proxy=on",
                    "uris": [{"value": "https://example.invalid/etcd-v3.5.17.tar.gz",
                              "extract": True, "executable": False, "cache": True}]},
    }  # fmt: skip


def call_bodies(framework_id: str, agent_id: str) -> dict[str, bytes]:
    fid = {"value": framework_id}
    accept = {
        "type": "ACCEPT",
        "framework_id": fid,
        "accept": {
            "offer_ids": [{"value": f"{framework_id}-O1"}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task_info(agent_id)]}}],
            "filters": {"refuse_seconds": 5.0},
        },
    }
    decline = {
        "type": "DECLINE",
        "framework_id": fid,
        "decline": {
            "offer_ids": [{"value": f"{framework_id}-O{n}"} for n in range(100)],
            "filters": {"refuse_seconds": 3600.0},
        },
    }
    acknowledge = {
        "type": "ACKNOWLEDGE",
        "framework_id": fid,
        "acknowledge": {
            "agent_id": {"value": agent_id},
            "task_id": {"value": f"calico-node__{agent_id}__2eb0a867__1"},
            "uuid": protocol.new_uuid_b64(),
        },
    }
    return {
        name: json.dumps(body).encode()
        for name, body in (("ACCEPT", accept), ("DECLINE of 100", decline),
                           ("ACKNOWLEDGE", acknowledge))
    }  # fmt: skip


def cpu() -> float:
    return time.process_time()


async def measure(agents: int, rounds: int, workdir: Path) -> None:
    master = Master(workdir, allocation_seed=1)
    for _ in range(agents):
        master.add_agent()
    subscription = master.subscribe(dict(FRAMEWORK_INFO), None, [])
    framework = master.frameworks[subscription.framework_id]
    # As the bench's devcluster child does: start-up's objects frozen, fewer collections.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    spent = {"allocate": 0.0, "encode": 0.0, "decline": 0.0}
    offers = 0
    for _ in range(rounds + 1):
        started = cpu()
        framework.revive(framework.roles)
        made = master.allocator.allocate()
        allocated = cpu()
        while not subscription.queue.empty():
            protocol.recordio(subscription.queue.get_nowait())
        encoded = cpu()
        body = {"offer_ids": [{"value": o} for o in framework.offers],
                "filters": {"refuse_seconds": 3600.0}}  # fmt: skip
        calls.decline(master, framework, body)
        declined = cpu()
        if _:  # the first round warms up
            offers += made
            spent["allocate"] += allocated - started
            spent["encode"] += encoded - allocated
            spent["decline"] += declined - encoded
    framework.revive(framework.roles)
    master.allocator.allocate()  # an offer out for every agent, as at the first round
    started = cpu()
    master_slaves(master)
    slaves_cpu = cpu() - started
    total = sum(spent.values())
    parts = ", ".join(f"{name} {seconds / offers * 1e6:.1f}" for name, seconds in spent.items())
    print(f"per offer ({offers} offers): {total / offers * 1e6:.1f} µs of CPU ({parts})")
    print(f"/master/slaves with {len(master.offers)} offers out: {slaves_cpu:.3f} s of CPU")
    agent_id = next(iter(master.agents))
    for name, body in call_bodies(framework.id, agent_id).items():
        count = 2000
        started = cpu()
        for _ in range(count):
            wire.call_json(json.loads(body))
        print(f"{name} ({len(body)} bytes) parsed: {(cpu() - started) / count * 1e6:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="devcluster-cpu-"))
    try:
        asyncio.run(measure(args.agents, args.rounds, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
