"""pymesos' real MesosSchedulerDriver (implicit acknowledgements) against the devcluster."""

from __future__ import annotations

from tests.helpers.devcluster import Framework, command_task, framework_info, wait_until

ONE_HOUR = {"refuse_seconds": 3600}


def decline_all(fw: Framework, offers: list[dict]) -> None:
    fw.driver.declineOffer([o["id"] for o in offers], ONE_HOUR)


def test_subscribe_gives_a_framework_id_and_offers_from_every_agent(cluster, framework):
    agent_ids = {a.agent_id for a in cluster.agents}
    wait_until(lambda: {o["agent_id"]["value"] for o in framework.offers} >= agent_ids)
    roles = {o["hostname"]: o["allocation_info"]["role"] for o in framework.offers}
    assert roles["public-agent-1"] == "slave_public"
    assert {roles["agent-1"], roles["agent-2"]} <= {"*", "slave_public"}
    assert framework.framework_id.startswith(cluster.master.id)


def test_launched_task_goes_starting_running_finished_and_every_update_is_acknowledged(
    cluster, framework
):
    offer = framework.offer_from(cluster.agents[0].agent_id)
    task = command_task(offer, "once-1", name="calico-cni")
    framework.driver.launchTasks([offer["id"]], [task])
    framework.wait_for_state("once-1", "TASK_FINISHED")
    assert framework.states("once-1") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert all("uuid" in u for u in framework.updates)
    wait_until(lambda: not cluster.state()["frameworks"][0]["tasks"], what="task forgotten")
    assert len(acknowledgements(cluster)) == 3


def acknowledgements(cluster) -> list[dict]:
    return [e for e in cluster.timeline() if e.get("type") == "ACKNOWLEDGE"]


def test_injected_failure_gives_failed(cluster, framework):
    cluster.fail_next_task("^doomed$", "exit status 3")
    offer = framework.offer_from(cluster.agents[0].agent_id)
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "d-1", name="doomed")])
    failed = framework.wait_for_state("d-1", "TASK_FAILED")
    assert failed["message"] == "exit status 3"


def test_declined_agent_is_not_offered_again_under_the_same_role_until_revive(cluster):
    """A filter is per role (hierarchical.cpp `isFiltered`): a private agent declined under
    one role may come back once under the framework's other role, never twice under one."""
    with Framework(cluster, on_offers=decline_all) as fw:
        pairs = lambda: [(o["hostname"], o["allocation_info"]["role"]) for o in fw.offers]  # noqa: E731
        wait_until(lambda: len(set(pairs())) >= 5, what="each agent under each possible role")
        wait_until(lambda: len([e for e in cluster.timeline() if e["event"] == "decline"]) >= 5)
        rounds = cluster.allocator_stats()["rounds"]
        wait_until(lambda: cluster.allocator_stats()["rounds"] >= rounds + 5)
        assert len(pairs()) == len(set(pairs())) == 5
        fw.driver.reviveOffers()
        wait_until(lambda: len(fw.offers) >= 8, what="offers after REVIVE")


def test_short_refuse_seconds_expire(cluster):
    def decline_briefly(fw: Framework, offers: list[dict]) -> None:
        fw.driver.declineOffer([o["id"] for o in offers], {"refuse_seconds": 0.3})

    with Framework(cluster, on_offers=decline_briefly) as fw:
        wait_until(lambda: len(fw.offers) >= 9, what="three rounds of offers")


def test_suppress_stops_offers(cluster):
    with Framework(cluster, on_offers=lambda fw, o: fw.driver.suppressOffers()) as fw:
        wait_until(lambda: fw.offers)
        fw.driver.declineOffer([o["id"] for o in fw.offers], {"refuse_seconds": 0})
        rounds = cluster.allocator_stats()["rounds"]
        wait_until(lambda: cluster.allocator_stats()["rounds"] >= rounds + 5)
        assert len(fw.offers) <= 3


def test_invalid_task_gets_task_error_without_uuid(cluster, framework):
    offer = framework.offer_from(cluster.agents[0].agent_id)
    no_resources = {**command_task(offer, "bad-1"), "resources": []}
    too_big = command_task(offer, "bad-2")
    too_big["resources"][0]["scalar"]["value"] = 1000
    both = {**command_task(offer, "bad-3"), "executor": {"executor_id": {"value": "e"}}}
    framework.driver.launchTasks([offer["id"]], [no_resources, too_big, both])
    for task_id, text in (
        ("bad-1", "Task uses no resources"),
        ("bad-2", "is more than available"),
        ("bad-3", "at least one (but not both)"),
    ):
        error = framework.wait_for_state(task_id, "TASK_ERROR")
        assert error["reason"] == "REASON_TASK_INVALID"
        assert text in error["message"]
        assert "uuid" not in error and error["source"] == "SOURCE_MASTER"


def test_wrong_agent_and_duplicate_id_are_task_errors(cluster, framework):
    first, second = (framework.offer_from(a.agent_id) for a in cluster.agents[:2])
    framework.driver.launchTasks([first["id"]], [command_task(first, "dup", name="daemon")])
    framework.wait_for_state("dup", "TASK_RUNNING")
    wrong_agent = {**command_task(second, "w-1"), "agent_id": first["agent_id"]}
    framework.driver.launchTasks([second["id"]], [command_task(second, "dup"), wrong_agent])
    assert "duplicate ID" in framework.wait_for_state("dup", "TASK_ERROR")["message"]
    assert "invalid agent" in framework.wait_for_state("w-1", "TASK_ERROR")["message"]


def test_used_offer_gives_task_lost_invalid_offers(cluster, framework):
    offer = framework.offer_from(cluster.agents[0].agent_id)
    framework.driver.declineOffer([offer["id"]])
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "late-1")])
    lost = framework.wait_for_state("late-1", "TASK_LOST")
    assert lost["reason"] == "REASON_INVALID_OFFERS"
    assert lost["message"].startswith("Task launched with invalid offers: Offer ")
    assert lost["agent_id"] == offer["agent_id"] and "uuid" not in lost


def test_reconcile_known_and_unknown_tasks(cluster, framework):
    offer = framework.offer_from(cluster.agents[0].agent_id)
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "d-1", name="daemon")])
    framework.wait_for_state("d-1", "TASK_RUNNING")
    framework.driver.reconcileTasks([{"task_id": {"value": "d-1"}}, {"task_id": {"value": "x"}}])
    unknown = framework.wait_for_state("x", "TASK_LOST")
    assert unknown["message"] == "Reconciliation: Task is unknown"
    wait_until(lambda: framework.states("d-1").count("TASK_RUNNING") == 2)
    latest = [u for u in framework.updates if u.get("reason") == "REASON_RECONCILIATION"]
    assert all("uuid" not in u and u["source"] == "SOURCE_MASTER" for u in latest)
    framework.driver.reconcileTasks([])
    wait_until(lambda: framework.states("d-1").count("TASK_RUNNING") == 3, what="implicit")


def test_kill_gives_task_killed(cluster, framework):
    offer = framework.offer_from(cluster.agents[0].agent_id)
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "k-1", name="daemon")])
    framework.wait_for_state("k-1", "TASK_RUNNING")
    framework.driver.killTask({"value": "k-1"})
    framework.wait_for_state("k-1", "TASK_KILLED")


def test_second_subscription_fails_the_first_over_and_keeps_the_framework_id(cluster, framework):
    second = Framework(cluster, framework_info(id={"value": framework.framework_id}))
    with second:
        wait_until(lambda: "Framework failed over" in framework.errors)
        assert second.framework_id == framework.framework_id
        framework.driver.stop(True)
        wait_until(lambda: second.offers, what="offers to the new subscription")


def test_restarted_agent_keeps_tasks_of_a_checkpointing_framework(cluster, framework):
    agent = cluster.agents[0]
    offer = framework.offer_from(agent.agent_id)
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "d-1", name="daemon")])
    framework.wait_for_state("d-1", "TASK_RUNNING")
    # Both updates acknowledged first: an agent resends unacknowledged ones on re-registering.
    wait_until(lambda: len(acknowledgements(cluster)) == 2, what="STARTING, RUNNING acked")
    cluster.restart_agent(agent.agent_id)
    wait_until(lambda: any(e["event"] == "agent_reregistered" for e in cluster.timeline()))
    unit = (agent.host_root / ".devcluster/units/dcos-mesos-slave").read_text().strip()
    assert unit == "active"
    assert [t["id"] for t in cluster.state()["frameworks"][0]["tasks"]] == ["d-1"]
    assert framework.states("d-1") == ["TASK_STARTING", "TASK_RUNNING"]


def test_removed_agent_gives_task_lost_and_agent_lost(cluster, framework):
    agent = cluster.agents[0]
    offer = framework.offer_from(agent.agent_id)
    framework.driver.launchTasks([offer["id"]], [command_task(offer, "d-1", name="daemon")])
    framework.wait_for_state("d-1", "TASK_RUNNING")
    cluster.remove_agent(agent.agent_id)
    lost = framework.wait_for_state("d-1", "TASK_LOST")
    assert lost["reason"] == "REASON_AGENT_REMOVED" and "uuid" not in lost
    wait_until(lambda: framework.lost_agents == [agent.agent_id])
    assert agent.agent_id not in {a.agent_id for a in cluster.agents}
