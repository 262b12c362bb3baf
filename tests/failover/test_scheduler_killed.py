"""A scheduler SIGKILLed at any point of a 4-agent install resumes from its store: the
install completes and no step runs twice on an agent unless a retry was due."""

from __future__ import annotations

import pytest

from tests.failover.harness import (
    SchedulerProcess,
    every_agent_ran_the_chain,
    first,
    scheduler_env,
    unexplained_relaunches,
)
from tests.helpers.devcluster import running_cluster, wait_until

# Slow enough one-shots that a kill lands while they run, fast enough for a short test.
DURATIONS = {"calico-docker": 0.4, "calico-cni": 0.4}


def launched(name: str):
    return lambda timeline: first(timeline, "launch", task_name=name)


def finished_and_next_offered(timeline: list[dict]) -> bool:
    """A step just finished: the scheduler is deciding (and storing) the next launch."""
    done = first(timeline, "status", task_name="calico-docker", state="TASK_FINISHED")
    return bool(done) and any(e["event"] == "offer" and e["t"] > done["t"] for e in timeline)


KILL_POINTS = {
    "after a launch, before its update": launched("calico-docker"),
    "between a finished step and the next launch": finished_and_next_offered,
    "while the agent-restarting step (cni) runs": launched("calico-cni"),
    "after the second agent's first launch": lambda timeline: (
        len({e["agent_id"] for e in timeline if e["event"] == "launch"}) >= 2
    ),
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_killed_scheduler_resumes_the_install_without_running_a_step_twice(tmp_path, point):
    with running_cluster(agents=3, public_agents=1, synthetic_durations=DURATIONS) as cluster:
        env = scheduler_env(tmp_path, cluster.master_url, rollout_max_concurrent_restarts="100%")
        first_run = SchedulerProcess(env, tmp_path / "scheduler-1.log")
        try:
            wait_until(lambda: KILL_POINTS[point](cluster.timeline()), 20, point)
            first_run.kill()
        finally:
            first_run.kill()

        agents = [a.agent_id for a in cluster.agents]
        second_run = SchedulerProcess(env, tmp_path / "scheduler-2.log")
        try:
            second_run.wait_installed(agents, 40)
        finally:
            second_run.stop()
        timeline = cluster.timeline()

    assert every_agent_ran_the_chain(timeline, agents)
    assert unexplained_relaunches(timeline) == []
