"""Command tasks as real processes (the process executor) through pymesos and the master."""

from __future__ import annotations

from tests.helpers.devcluster import Framework, command_task, wait_until


def test_command_task_runs_and_finishes_with_acknowledged_updates(process_cluster):
    agent = process_cluster.agents[0]
    with Framework(process_cluster) as fw:
        offer = fw.offer_from(agent.agent_id)
        command = f'test "$MESOS_TASK_ID" = ok-1 && test "$LIBPROCESS_IP" = {agent.ip}'
        fw.driver.launchTasks([offer["id"]], [command_task(offer, "ok-1", command)])
        fw.wait_for_state("ok-1", "TASK_FINISHED")
        assert fw.states("ok-1") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        wait_until(lambda: not process_cluster.state()["frameworks"][0]["tasks"])


def test_failing_command_gives_failed_with_the_exit_code(process_cluster):
    agent = process_cluster.agents[0]
    with Framework(process_cluster) as fw:
        offer = fw.offer_from(agent.agent_id)
        fw.driver.launchTasks([offer["id"]], [command_task(offer, "bad-1", "exit 3")])
        failed = fw.wait_for_state("bad-1", "TASK_FAILED")
        assert "3" in failed["message"]


def test_systemctl_restart_of_the_agent_unit_restarts_the_agent(process_cluster):
    agent = process_cluster.agents[0]
    with Framework(process_cluster) as fw:
        offer = fw.offer_from(agent.agent_id)
        task = command_task(offer, "cni-1", "systemctl restart dcos-mesos-slave; exit 1")
        fw.driver.launchTasks([offer["id"]], [task])
        fw.wait_for_state("cni-1", "TASK_FAILED")
        timeline = process_cluster.timeline()
        kinds = [e["event"] for e in timeline]
        hostcall = kinds.index("hostcall")
        assert hostcall < kinds.index("agent_disconnected") < kinds.index("agent_reregistered")
        assert timeline[hostcall]["argv"][-2:] == ["restart", "dcos-mesos-slave"]
        unit = agent.host_root / ".devcluster/units/dcos-mesos-slave"
        wait_until(lambda: unit.read_text().strip() == "active")


def test_a_stand_in_started_by_its_environment_is_logged_as_env_with_passwords_redacted(
    process_cluster,
):
    """calico/node's `start_runit` stand-in reads its settings from the environment: the call
    log and the timeline say `env` (not `argv`), and a URL's password never shows."""
    agent = process_cluster.agents[0]
    command = (
        "ETCD_ENDPOINTS=https://calico:s3cret@192.0.2.10:2379 IP=192.0.2.1 start_runit & "
        'until grep -q start_runit "$DEVCLUSTER_HOST_ROOT/.devcluster/calls.log" 2>/dev/null; '
        "do sleep 0.05; done; kill $!"
    )
    with Framework(process_cluster) as fw:
        offer = fw.offer_from(agent.agent_id)
        fw.driver.launchTasks([offer["id"]], [command_task(offer, "node-1", command)])
        fw.wait_for_state("node-1", "TASK_FINISHED")
    calls = [e for e in process_cluster.timeline() if e.get("tool") == "start_runit"]
    assert [(c["argv"], c["env"]) for c in calls] == [
        ([], {"IP": "192.0.2.1", "ETCD_ENDPOINTS": "https://calico:***@192.0.2.10:2379"})
    ]
    assert "s3cret" not in (agent.host_root / ".devcluster" / "calls.log").read_text()
