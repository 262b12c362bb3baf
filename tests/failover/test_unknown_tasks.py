"""A task Mesos runs but the store does not know (launched just before a crash whose record
was lost) is adopted when it matches the step's current options, and killed otherwise."""

from __future__ import annotations

import pytest

from calico_dcos.store import open_store
from tests.failover.harness import SchedulerProcess, launches_by_step, scheduler_env
from tests.helpers.devcluster import running_cluster, wait_until


def stored_task(tmp_path, agent_id: str) -> str | None:
    """The node task the store records for the agent, once there is one (read through a
    store of its own, beside the running scheduler's)."""
    store = open_store(str(tmp_path / "state"))
    try:
        record = store.load_agents()[agent_id]
    finally:
        store.close()
    return record["steps"].get("node", {}).get("task_id")


def forget_step(state_dir, agent_id: str, step: str) -> None:
    """Drop one step from an agent's record, as if its launch was never stored (the
    scheduler that wrote it is dead)."""
    store = open_store(str(state_dir))
    try:
        record = store.load_agents()[agent_id]
        del record["steps"][step]
        store.put_agent(agent_id, record)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("new_options", "adopted"),
    [({}, True), ({"node_image": "calico/node:v2.6.99"}, False)],
    ids=["same options: adopted", "changed options: killed"],
)
def test_a_running_task_unknown_to_the_store_is_adopted_or_killed(tmp_path, new_options, adopted):
    with running_cluster(agents=1, public_agents=0) as cluster:
        (agent_id,) = [a.agent_id for a in cluster.agents]
        env = scheduler_env(tmp_path, cluster.master_url)
        before = SchedulerProcess(env, tmp_path / "before.log")
        before.wait_installed([agent_id], 30)
        before.kill()
        (stray,) = launches_by_step(cluster.timeline())[(agent_id, "node")]
        forget_step(tmp_path / "state", agent_id, "node")

        after = SchedulerProcess(
            scheduler_env(tmp_path, cluster.master_url, **new_options), tmp_path / "after.log"
        )
        try:
            expected = {stray} if adopted else {None, stray}
            wait_until(lambda: (stored_task(tmp_path, agent_id) in expected) == adopted, 30)
            after.wait_installed([agent_id], 30)
        finally:
            after.stop()
        timeline = cluster.timeline()

    killed = [e["task_id"] for e in timeline if e["event"] == "kill"]
    node_launches = launches_by_step(timeline)[(agent_id, "node")]
    if adopted:
        assert (killed, node_launches) == ([], [stray])
    else:
        assert set(killed) == {stray}, killed  # a kill may be repeated until it is answered
        assert len(node_launches) == 2, node_launches
