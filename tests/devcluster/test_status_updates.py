"""Status updates as the agent and the command executor send them: pending updates resent at
once when the framework re-subscribes (apache/mesos src/slave/task_status_update_manager.cpp
`resume`, run on the master's UpdateFrameworkMessage), and TASK_KILLING before TASK_KILLED
for frameworks with TASK_KILLING_STATE (src/launcher/executor.cpp)."""

from __future__ import annotations

from tests.helpers.devcluster import (
    Framework,
    command_task,
    framework_info,
    running_cluster,
    wait_until,
)


def test_a_pending_update_is_resent_when_the_framework_resubscribes_not_on_the_timer():
    """The retry timer is a minute away; the re-subscription brings the update at once."""
    with (
        running_cluster(status_retry_interval=60.0) as cluster,
        Framework(cluster, implicit_acknowledgements=False) as fw,
    ):
        offer = fw.offer_from(cluster.agents[0].agent_id)
        fw.driver.launchTasks([offer["id"]], [command_task(offer, "p-1", name="daemon")])
        fw.wait_for_state("p-1", "TASK_STARTING")
        cluster.disconnect_framework(fw.framework_id)
        wait_until(lambda: fw.registrations >= 2, what="re-subscription")
        wait_until(lambda: fw.states("p-1").count("TASK_STARTING") >= 2, timeout=5)
        starting = [u for u in fw.updates if u["state"] == "TASK_STARTING"]
    assert len({u["uuid"] for u in starting}) == 1


def test_killing_comes_before_killed_for_frameworks_that_take_it():
    capable = framework_info(capabilities=[{"type": "MULTI_ROLE"}, {"type": "TASK_KILLING_STATE"}])
    with running_cluster() as cluster:
        for info, task_id, expected in (
            (capable, "k-1", ["TASK_KILLING", "TASK_KILLED"]),
            (framework_info(), "k-2", ["TASK_KILLED"]),
        ):
            with Framework(cluster, info) as fw:
                offer = fw.offer_from(cluster.agents[0].agent_id)
                fw.driver.launchTasks([offer["id"]], [command_task(offer, task_id, name="daemon")])
                fw.wait_for_state(task_id, "TASK_RUNNING")
                fw.driver.killTask({"value": task_id})
                fw.wait_for_state(task_id, "TASK_KILLED")
                assert fw.states(task_id)[2:] == expected
