"""Agents partitioned, restarting, and a master failing over, against apache/mesos
src/master/master.cpp (`markUnreachable`, `__removeSlave`, `_reregisterSlave`, `reconcile`,
`exited`, `kill`, `removeFramework`) and src/master/http.cpp (503 during recovery).

All through real sockets: pymesos' driver, or plain `requests` (tests/helpers/raw_client.py).
"""

from __future__ import annotations

import pytest
import requests

from tests.helpers.devcluster import (
    Framework,
    command_task,
    framework_info,
    running_cluster,
    wait_until,
)
from tests.helpers.raw_client import RawScheduler, SubscriptionRefused

PARTITION_AWARE = framework_info(capabilities=[{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}])


def launch_daemon(cluster, fw: Framework, task_id: str, agent_index: int = 0) -> dict:
    offer = fw.offer_from(cluster.agents[agent_index].agent_id)
    fw.driver.launchTasks([offer["id"]], [command_task(offer, task_id, name="daemon")])
    return fw.wait_for_state(task_id, "TASK_RUNNING")


def reconcile(fw: Framework, task_id: str) -> None:
    """Explicit reconciliation through pymesos (which sends the task ID only)."""
    fw.driver.reconcileTasks([{"task_id": {"value": task_id}}])


def test_a_partitioned_agent_is_unreachable_only_after_the_ping_timeout_then_comes_back():
    with (
        running_cluster(agent_ping_timeout=1.0) as cluster,
        Framework(cluster, PARTITION_AWARE) as fw,
    ):
        launch_daemon(cluster, fw, "d-1")
        agent_id = cluster.agents[0].agent_id
        cluster.partition_agent(agent_id)
        partitioned = [e["t"] for e in cluster.timeline() if e["event"] == "agent_partitioned"]
        unreachable = fw.wait_for_state("d-1", "TASK_UNREACHABLE", timeout=5)
        marked = [e["t"] for e in cluster.timeline() if e["event"] == "agent_unreachable"]
        assert marked[0] - partitioned[0] >= 1.0
        assert unreachable["reason"] == "REASON_AGENT_REMOVED"
        assert int(unreachable["unreachable_time"]["nanoseconds"]) > 0
        assert agent_id in fw.lost_agents
        assert cluster.state()["unreachable_slaves"] == 1
        listed = requests.get(f"{cluster.base_url}/master/slaves", timeout=5).json()
        assert agent_id not in [a["id"] for a in listed["slaves"] + listed["recovered_slaves"]]
        cluster.heal_agent(agent_id)
        back = wait_until(
            lambda: [u for u in fw.updates if u.get("reason") == "REASON_SLAVE_REREGISTERED"],
            what="the master's update for the re-registered agent's task",
        )[0]
        assert (back["task_id"]["value"], back["state"]) == ("d-1", "TASK_RUNNING")
        assert (back["source"], back["message"]) == (
            "SOURCE_MASTER",
            "Unreachable agent re-reregistered",
        )
        assert "uuid" not in back, "forwarded unreliably: nothing to acknowledge"
        wait_until(lambda: cluster.state()["frameworks"][0]["tasks"], what="task re-added")
        task = cluster.state()["frameworks"][0]["tasks"][0]
        assert (task["id"], task["state"]) == ("d-1", "TASK_RUNNING")
        before = len(fw.updates)
        reconcile(fw, "d-1")
        wait_until(lambda: len(fw.updates) > before)
        assert fw.updates[-1]["state"] == "TASK_RUNNING"


def test_an_unreachable_agent_s_filters_go_so_it_is_offered_at_once_when_back():
    """`allocator->removeSlave` drops the agent's offer filters (apache/mesos
    src/master/allocator/mesos/hierarchical.cpp, `removeFilters`): declined for an hour
    before the partition, it is offered again as soon as it re-registers."""
    one_role = {**PARTITION_AWARE, "roles": ["*"]}  # every offer of the agent is filtered
    with (
        running_cluster(agent_ping_timeout=0.5) as cluster,
        Framework(cluster, one_role) as fw,
    ):
        agent_id = cluster.agents[0].agent_id
        offer = fw.offer_from(agent_id)
        fw.driver.declineOffer([offer["id"]], {"refuse_seconds": 3600.0})
        wait_until(lambda: offer["id"]["value"] not in cluster.master.offers, what="declined")
        cluster.partition_agent(agent_id)
        wait_until(lambda: agent_id in fw.lost_agents, 5, "the agent unreachable")
        with fw.lock:
            fw.offers.clear()
        cluster.heal_agent(agent_id)
        role = offer["allocation_info"]["role"]
        again = wait_until(
            lambda: [o for o in list(fw.offers) if o["agent_id"]["value"] == agent_id
                     and o["allocation_info"]["role"] == role],  # fmt: skip
            5, f"an offer of the agent to {role}, declined for an hour before",
        )  # fmt: skip
    assert again[0]["id"] != offer["id"]


def test_not_partition_aware_tasks_are_lost_and_a_launch_into_a_partition_never_arrives():
    with running_cluster(agent_ping_timeout=30.0) as cluster, Framework(cluster) as fw:
        agent_id = cluster.agents[0].agent_id
        offer = fw.offer_from(agent_id)
        cluster.partition_agent(agent_id)
        fw.driver.launchTasks([offer["id"]], [command_task(offer, "x-1", name="daemon")])
        wait_until(lambda: [e for e in cluster.timeline() if e["event"] == "launch"])
        assert fw.states("x-1") == []
        cluster.heal_agent(agent_id)
        lost = fw.wait_for_state("x-1", "TASK_LOST")
    assert (lost["source"], lost["reason"], lost["message"]) == (
        "SOURCE_AGENT",
        "REASON_RECONCILIATION",
        "Reconciliation: task unknown to the agent",
    )


def test_partition_and_heal_over_http(cluster, framework):
    agent_id = cluster.agents[1].agent_id
    for fault in ("partition", "heal"):
        url = f"{cluster.base_url}/devcluster/agents/{agent_id}/{fault}"
        assert requests.post(url, timeout=5).status_code == 202
    events = [e["event"] for e in cluster.timeline() if e.get("agent_id") == agent_id]
    assert events[-3:] == ["agent_partitioned", "agent_healed", "agent_reregistered"]


def test_reconciliation_while_an_agent_restarts_follows_the_master_s_table():
    """A known task: its latest state. An unknown task on the registered (if disconnected)
    agent: TASK_GONE ("unknown to the agent"), never silence; without an agent: TASK_UNKNOWN.
    Sent by a client that keeps the agent IDs (pymesos drops them)."""
    with (
        running_cluster(agent_restart_delay=5.0) as cluster,
        RawScheduler(cluster.base_url, PARTITION_AWARE) as raw,
    ):
        offer = raw.wait_for(lambda e: e["type"] == "OFFERS")["offers"]["offers"][0]
        agent_id = offer["agent_id"]["value"]
        assert raw.call("ACCEPT", accept(offer, "r-1")).status_code == 202
        for state in ("TASK_STARTING", "TASK_RUNNING"):
            raw.acknowledge(raw.wait_for_update("r-1", state))
        cluster.restart_agent(agent_id)
        raw.reconcile(("r-1", agent_id), ("never-launched", agent_id), ("nowhere", None))
        gone = raw.wait_for_update("never-launched", "TASK_GONE")
        unknown = raw.wait_for_update("nowhere", "TASK_UNKNOWN")
        latest = raw.wait_for(lambda e: e["type"] == "UPDATE" and e["update"]["status"].get(
            "reason") == "REASON_RECONCILIATION")["update"]["status"]  # fmt: skip
    assert gone["message"] == "Reconciliation: Task is unknown to the agent"
    assert gone["agent_id"] == {"value": agent_id}
    assert unknown["message"] == "Reconciliation: Task is unknown"
    assert (latest["task_id"]["value"], latest["state"]) == ("r-1", "TASK_RUNNING")
    assert "executor_id" not in latest, "a command task has no executor ID in the master"


def accept(offer: dict, task_id: str) -> dict:
    task = command_task(offer, task_id, name="daemon")
    return {"offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}  # fmt: skip


def test_a_kill_for_a_disconnected_agent_is_sent_when_it_comes_back():
    with running_cluster(agent_restart_delay=0.5) as cluster, Framework(cluster) as fw:
        launch_daemon(cluster, fw, "k-1")
        cluster.restart_agent(cluster.agents[0].agent_id)
        fw.driver.killTask({"value": "k-1"})
        fw.wait_for_state("k-1", "TASK_KILLED")
        events = [e["event"] for e in cluster.timeline()]
        assert events.index("agent_reregistered") < len(events) - 1
        killed_at = [e["t"] for e in cluster.timeline() if e.get("state") == "TASK_KILLED"]
        back_at = [e["t"] for e in cluster.timeline() if e["event"] == "agent_reregistered"]
        assert killed_at[0] > back_at[0]


def test_removed_framework_s_tasks_are_killed_framework_removed_in_the_state(cluster):
    with Framework(cluster) as fw:
        launch_daemon(cluster, fw, "t-1")
    state = cluster.state()
    task = state["completed_frameworks"][0]["completed_tasks"][0]
    assert task["state"] == "TASK_KILLED"
    assert task["statuses"][-1]["state"] == "TASK_KILLED"


def test_a_new_master_answers_503_then_rebuilds_frameworks_and_tasks_from_agents():
    """Until the agent re-registers, explicit reconciliation of its task gets no answer
    (a later answer for another agent's task shows the master went past it) and implicit
    reconciliation leaves it out; then the task is back, RUNNING."""
    with running_cluster(master_recovery_seconds=1.0, agent_reregister_window=600) as cluster:
        with RawScheduler(cluster.base_url, PARTITION_AWARE) as raw:
            offer = raw.wait_for(lambda e: e["type"] == "OFFERS")["offers"]["offers"][0]
            assert raw.call("ACCEPT", accept(offer, "m-1")).status_code == 202
            for state in ("TASK_STARTING", "TASK_RUNNING"):
                raw.acknowledge(raw.wait_for_update("m-1", state))
            framework_id = raw.framework_id
        agent_id = offer["agent_id"]["value"]
        other = next(a.agent_id for a in cluster.agents if a.agent_id != agent_id)
        new_url = cluster.failover_master()
        assert cluster.state()["frameworks"] == []
        info = {**PARTITION_AWARE, "id": {"value": framework_id}}
        raw = RawScheduler(f"http://{new_url}", info)
        first = requests.post(
            f"http://{new_url}/api/v1/scheduler", timeout=5,
            json={"type": "SUBSCRIBE", "framework_id": {"value": framework_id},
                  "subscribe": {"framework_info": info}},
        )  # fmt: skip
        assert (first.status_code, first.text) == (503, "Master has not finished recovery")
        wait_until(lambda: _subscribes(raw), timeout=5, what="the end of recovery")
        try:
            assert raw.framework_id == framework_id
            cluster.reregister_agent_now(other)
            listed = requests.get(f"http://{new_url}/master/slaves", timeout=5).json()
            recovered = [a["id"] for a in listed["recovered_slaves"]]
            assert agent_id in recovered and other not in recovered
            assert other in [a["id"] for a in listed["slaves"]]
            before = len(raw.events)
            raw.call("RECONCILE", {"tasks": []})
            raw.reconcile(("m-1", agent_id), ("elsewhere", other))
            raw.wait_for_update("elsewhere", "TASK_GONE")
            answered = [e for e in raw.events[before:] if e["type"] == "UPDATE"]
            assert [u["update"]["status"]["task_id"]["value"] for u in answered] == ["elsewhere"]
            cluster.reregister_agent_now(agent_id)
            raw.reconcile(("m-1", agent_id))
            back = raw.wait_for_update("m-1", "TASK_RUNNING")
            assert back["reason"] == "REASON_RECONCILIATION"
        finally:
            raw.close()


def _subscribes(raw: RawScheduler) -> bool:
    try:
        raw.subscribe()
    except requests.HTTPError as exc:
        assert exc.response.status_code == 503
        return False
    return True


def test_a_torn_down_framework_id_is_forgotten_by_a_new_master(cluster):
    with RawScheduler(cluster.base_url) as raw:
        framework_id = raw.framework_id
        assert raw.call("TEARDOWN").status_code == 202
    info = framework_info(id={"value": framework_id})
    with pytest.raises(SubscriptionRefused, match="Framework has been removed"):
        RawScheduler(cluster.base_url, info).subscribe()
    cluster.failover_master()
    again = RawScheduler(cluster.base_url, info)
    wait_until(lambda: _subscribes(again), timeout=5, what="a subscription")
    again.close()
    assert again.framework_id == framework_id
