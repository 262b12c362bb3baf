"""How long `/v1/plan` takes to build at scale, for the deploy and the uninstall plan.

    .venv/bin/python scripts/plan_view_timing.py [--agents 5000] [--repeat 5]

Builds each core from records: as a converged rollout leaves them (every agent's five steps,
daemons RUNNING and one-shots FINISHED), as a rollout starts (agents known, nothing run),
and the uninstall of the converged one half-way through its kills, with hosts to revert; and
prints the best and median time of `plan_view`, which the scheduler
runs under its lock on every `/v1/plan`, `/v1/status` and `/metrics` request.
"""

from __future__ import annotations

import argparse
import statistics
import time

from calico_dcos import plans
from calico_dcos.core.deploy import Deploy
from calico_dcos.core.records import task_id_for
from calico_dcos.options import load_options

DAEMONS = ("etcd-proxy", "libnetwork", "node")


def converged_records(agents: int, fingerprints: dict[str, str]) -> dict[str, dict]:
    records = {}
    for i in range(agents):
        aid = f"5f1c-S{i}"
        steps = {}
        for step, fingerprint in fingerprints.items():
            state = "TASK_RUNNING" if step in DAEMONS else "TASK_FINISHED"
            steps[step] = {
                "task_id": task_id_for(step, aid, fingerprint, 1),
                "state": state,
                "attempts": 1,
                "fingerprint": fingerprint,
                "healthy": True,
            }
        records[aid] = {"agent_id": aid, "hostname": f"agent-{i}", "steps": steps}
    return records


def timed(view, repeat: int) -> tuple[float, float, float, float]:
    """The first call's CPU time (nothing kept from before), then the best and median wall
    time and the median CPU time of the next calls (what a shared machine's load inflates
    least), in seconds."""
    cpu = time.process_time()
    view()
    first = time.process_time() - cpu
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        view()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return first, min(walls), statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    options = load_options(None, {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": "10%"})
    config = plans.config_from_options(options, "http://scheduler:8080")
    records = converged_records(args.agents, {s.name: s.fingerprint for s in config.steps})

    deploy = Deploy(config, records, "fw-1")
    deploy.on_subscribed("fw-1", 1000.0)
    starting = Deploy(config, {aid: {"hostname": r["hostname"]} for aid, r in records.items()})
    starting.on_subscribed("fw-1", 1000.0)
    uninstall = plans.uninstall_from_options(
        options, "http://scheduler:8080", True, records, "fw-1", None
    )
    uninstall.on_subscribed("fw-1", 1000.0)
    for task_id in list(uninstall.doomed)[::2]:  # half of the kills answered
        uninstall.on_status({"task_id": {"value": task_id}, "state": "TASK_KILLED"}, 1000.0)

    cores = (
        ("deploy, converged", deploy),
        ("deploy, starting", starting),
        ("uninstall, killing", uninstall),
    )
    print(f"plan_view at {args.agents} agents (ms): first call CPU; then wall best, median; CPU")
    for name, core in cores:
        first, best, median, cpu = timed(lambda core=core: core.plan_view(1001.0), args.repeat)
        print(
            f"{name:19} first {first * 1000:6.1f}; then {best * 1000:6.1f} {median * 1000:6.1f}"
            f" {cpu * 1000:6.1f}"
        )


if __name__ == "__main__":
    main()
