"""A scheduler that dies between a group's durable write and its acknowledgements: the
agents still hold the updates (unacknowledged), send them again to the next scheduler,
which finishes the install without running a step twice.

The scheduler exits with os._exit right after the group commit (tests/failover/
scheduler_process.py, TEST_EXIT_AFTER_GROUP): nothing of the group's calls or
acknowledgements has left, as after a SIGKILL at that instant.
"""

from __future__ import annotations

import pytest

from calico_dcos.store import open_store
from tests.failover.harness import (
    SchedulerProcess,
    every_agent_ran_the_chain,
    scheduler_env,
    unexplained_relaunches,
)
from tests.helpers.devcluster import running_cluster, wait_until

DURATIONS = {"calico-docker": 0.2, "calico-cni": 0.2}


def unacknowledged_heads(cluster) -> dict[str, str]:
    """Task ID -> state of the update each task's agent is waiting to have acknowledged."""

    def heads() -> dict[str, str]:
        return {
            task_id: stream[0]["state"]
            for agent in cluster.master.agents.values()
            for task_id, stream in agent._streams.items()
            if stream
        }

    return cluster.call(heads)


def stored_states(state_dir) -> dict[str, str]:
    store = open_store(str(state_dir))
    try:
        return {
            step["task_id"]: step["state"]
            for record in store.load_agents().values()
            for step in record.get("steps", {}).values()
            if step.get("task_id")
        }
    finally:
        store.close()


# A 4-agent install is 6-7 groups of updates since the committer gathers (pipeline.py:
# GATHER_SECONDS): one crash early, one in its second half.
@pytest.mark.parametrize("group", [2, 5])
def test_a_scheduler_dying_after_a_group_write_before_its_acks_loses_nothing(tmp_path, group):
    with running_cluster(agents=3, public_agents=1, synthetic_durations=DURATIONS) as cluster:
        env = scheduler_env(tmp_path, cluster.master_url, rollout_max_concurrent_restarts="100%")
        env["TEST_EXIT_AFTER_GROUP"] = str(group)
        first_run = SchedulerProcess(env, tmp_path / "scheduler-1.log")
        try:
            assert first_run.process.wait(timeout=30) == 137
        finally:
            first_run.kill()
        # The group's effect is durable and its update still unacknowledged at the agent.
        heads, stored = unacknowledged_heads(cluster), stored_states(tmp_path / "state")
        assert any(stored.get(task) == state for task, state in heads.items()), (heads, stored)

        del env["TEST_EXIT_AFTER_GROUP"]
        agents = [a.agent_id for a in cluster.agents]
        second_run = SchedulerProcess(env, tmp_path / "scheduler-2.log")
        try:
            second_run.wait_installed(agents, 40)
            wait_until(lambda: not unacknowledged_heads(cluster), 20, "every update acknowledged")
        finally:
            second_run.stop()
        timeline = cluster.timeline()

    assert every_agent_ran_the_chain(timeline, agents)
    assert unexplained_relaunches(timeline) == []
