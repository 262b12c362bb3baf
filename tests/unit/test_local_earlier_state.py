"""`calico-dcos local` restarted on the same --workdir: the state of the earlier embedded
cluster (same agent names, new agent IDs) is moved aside and the run starts a fresh plan,
with a line saying so, instead of a plan listing "agent-1 WAITING" beside "agent-1: gone".

A real file store (SQLite in the work dir); the agent IDs are written as Mesos makes them
(`<master ID>-S<n>`, apache/mesos src/master/master.cpp `newSlaveId`)."""

from __future__ import annotations

from calico_dcos.commands.local import earlier_cluster, set_aside_earlier_state
from calico_dcos.store import open_store

OLD = ["0b3f-old-master-S0", "0b3f-old-master-S1"]
NEW = ["77aa-new-master-S0", "77aa-new-master-S1"]


def test_a_state_is_an_earlier_clusters_when_none_of_its_agents_is_in_this_one():
    assert earlier_cluster(OLD, NEW)
    assert not earlier_cluster(OLD, [OLD[0], NEW[1]])  # the same cluster, one agent new
    assert not earlier_cluster([], NEW)  # nothing to resume either way


def write_state(path, agent_ids):
    store = open_store(str(path))
    for number, agent_id in enumerate(agent_ids):
        store.put_agent(agent_id, {"hostname": f"agent-{number + 1}"})
    store.close()


def test_the_trials_restart_moves_the_earlier_state_aside_with_a_line(tmp_path):
    write_state(tmp_path / "state", OLD)
    line = set_aside_earlier_state(str(tmp_path / "state"), tmp_path, NEW)
    assert line.startswith(f"  state: {tmp_path / 'state'} held the plan of an earlier embedded")
    assert "(2 agents, none in this one" in line and "this run starts a fresh plan" in line
    [aside] = tmp_path.glob("state.earlier-*")
    assert f"moved to {aside.name}" in line
    assert not (tmp_path / "state").exists()
    kept = open_store(str(aside))
    assert sorted(kept.load_agents()) == OLD  # moved, not lost
    kept.close()


def test_the_same_clusters_state_and_a_state_the_user_chose_are_left_alone(tmp_path):
    write_state(tmp_path / "state", OLD)
    assert set_aside_earlier_state(str(tmp_path / "state"), tmp_path, OLD) == ""
    elsewhere = tmp_path / "mine"
    write_state(elsewhere, OLD)
    assert set_aside_earlier_state(str(elsewhere), tmp_path, NEW) == ""
    assert (tmp_path / "state").exists() and elsewhere.exists()


def test_a_state_a_running_scheduler_holds_is_left_to_its_start_to_refuse(tmp_path):
    write_state(tmp_path / "state", OLD)
    holder = open_store(str(tmp_path / "state"))
    assert holder.try_acquire_leadership(lambda: None)
    try:
        assert set_aside_earlier_state(str(tmp_path / "state"), tmp_path, NEW) == ""
        assert (tmp_path / "state").exists()
    finally:
        holder.close()
