"""SIGKILL the scheduler at many points of an install: a restart finishes it, and Mesos never
sees a step launched twice on an agent (no step fails here, so no retry is due)."""

import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import (
    events,
    launch_counts,
    launches,
    running_cluster,
    wait_until,
)

HELPER = Path(__file__).with_name("scheduler_process.py")
SLOW_RESTARTS = {"calico-docker": 0.3, "calico-cni": 0.3}


def start(cluster, workdir: Path, **options: str) -> subprocess.Popen:
    """The scheduler in its own process, once it serves its API and has subscribed."""
    argv = [sys.executable, str(HELPER), cluster.master_url, str(workdir)]
    options = {"rollout_max_concurrent_restarts": "2", **options}
    argv.extend(f"{name}={value}" for name, value in options.items())
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "started"
    return process


def done(cluster, agents: int) -> bool:
    """Every daemon of the chain RUNNING on every agent, as Mesos sees it."""
    timeline = cluster.timeline()
    running = {e["task_id"] for e in events(timeline, "status") if e["state"] == "TASK_RUNNING"}
    nodes = [e for e in launches(timeline) if e["task_name"] == "calico-node"]
    return len(nodes) == agents and all(e["task_id"] in running for e in nodes)


def test_sigkill_at_many_points_of_a_four_agent_install(tmp_path):
    with running_cluster(agents=3, public_agents=1, synthetic_durations=SLOW_RESTARTS) as cluster:
        for kill_after in (1, 4, 7, 9, 12):
            scheduler = start(cluster, tmp_path)
            wait_until(lambda n=kill_after: len(launches(cluster.timeline())) >= n, 30, "launches")
            scheduler.send_signal(signal.SIGKILL)
            scheduler.wait(10)
        scheduler = start(cluster, tmp_path)
        try:
            wait_until(lambda: done(cluster, 4), 60, "the install finished")
        finally:
            scheduler.terminate()
            scheduler.wait(10)
        timeline = cluster.timeline()

    assert len(events(timeline, "framework_subscribed")) == 6
    assert len({e["framework_id"] for e in events(timeline, "framework_subscribed")}) == 1
    counts = launch_counts(timeline)
    assert len(counts) == 4 * 4
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v > 1}
