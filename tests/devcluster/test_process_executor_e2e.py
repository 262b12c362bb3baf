"""The process executor behind the embedded master, driven by pymesos' real driver."""

from __future__ import annotations

import json
from pathlib import Path

from calico_dcos.devcluster.hostroot import Host
from tests.helpers.devcluster import Framework, command_task, wait_until


class Launcher:
    """Launches each task on a fresh offer from the agent (an offer can be used once)."""

    def __init__(self, framework: Framework) -> None:
        self.framework = framework
        self.used: set[str] = set()

    def launch(self, agent_id: str, task_id: str, command: str) -> None:
        offer = wait_until(lambda: self._fresh_offer(agent_id), what=f"an offer from {agent_id}")
        self.used.add(offer["id"]["value"])
        task = command_task(offer, task_id, command)
        # refuse_seconds 0: the agent's unused resources come back at the next allocation.
        self.framework.driver.launchTasks([offer["id"]], [task], {"refuse_seconds": 0})

    def _fresh_offer(self, agent_id: str) -> dict | None:
        with self.framework.lock:
            gone = self.used | set(self.framework.rescinded)
            fresh = [
                o
                for o in self.framework.offers
                if o["agent_id"]["value"] == agent_id and o["id"]["value"] not in gone
            ]
        return fresh[-1] if fresh else None


def test_command_task_runs_in_its_sandbox_with_the_mesos_environment(process_cluster):
    agent = process_cluster.agents[0]
    with Framework(process_cluster) as framework:
        check = 'test "$MESOS_TASK_ID" = env-task && systemctl is-active docker'
        Launcher(framework).launch(agent.agent_id, "env-task", check)
        framework.wait_for_state("env-task", "TASK_FINISHED")
        assert framework.states("env-task") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    sandbox = Path(process_cluster.workdir) / "agents" / agent.agent_id / "sandboxes" / "env-task"
    assert (sandbox / "stdout").read_text() == "active\n"
    argv = [c["argv"] for c in Host(agent.host_root).calls()]
    assert argv == [["is-active", "docker"]]


def test_failing_command_and_kill_reach_the_scheduler(process_cluster):
    agent_id = process_cluster.agents[0].agent_id
    with Framework(process_cluster) as framework:
        launcher = Launcher(framework)
        launcher.launch(agent_id, "exit-3", "exit 3")
        failed = framework.wait_for_state("exit-3", "TASK_FAILED")
        assert failed["message"] == "Command exited with status 3"
        launcher.launch(agent_id, "sleeper", "exec sleep 30")
        framework.wait_for_state("sleeper", "TASK_RUNNING")
        framework.driver.killTask({"value": "sleeper"})
        killed = framework.wait_for_state("sleeper", "TASK_KILLED")
        assert killed["message"] == "Command terminated with signal Terminated"


def test_fail_next_task_fails_only_the_next_matching_process_task(process_cluster):
    agent_id = process_cluster.agents[0].agent_id
    process_cluster.fail_next_task("^doomed", "Injected: docker step fails")
    with Framework(process_cluster) as framework:
        launcher = Launcher(framework)
        for task_id in ("other-1", "doomed-1", "doomed-2"):
            launcher.launch(agent_id, task_id, "true")
        framework.wait_for_state("other-1", "TASK_FINISHED")
        failed = framework.wait_for_state("doomed-1", "TASK_FAILED")
        framework.wait_for_state("doomed-2", "TASK_FINISHED")
    assert failed["message"] == "Injected: docker step fails"
    assert framework.states("doomed-1") == ["TASK_STARTING", "TASK_FAILED"]


def test_systemctl_restart_of_the_agent_restarts_it_and_checkpointed_tasks_survive(
    process_cluster,
):
    agent = process_cluster.agents[0]
    host = Host(agent.host_root)
    with Framework(process_cluster) as framework:
        launcher = Launcher(framework)
        launcher.launch(agent.agent_id, "daemon", "exec sleep 30")
        framework.wait_for_state("daemon", "TASK_RUNNING")
        launcher.launch(agent.agent_id, "restarter", "systemctl restart dcos-mesos-slave")
        framework.wait_for_state("restarter", "TASK_FINISHED")
        wait_until(
            lambda: any(e["event"] == "agent_reregistered" for e in process_cluster.timeline()),
            what="re-registration",
        )
        wait_until(lambda: host.unit_state("dcos-mesos-slave") == "active", what="unit active")
        assert framework.states("daemon") == ["TASK_STARTING", "TASK_RUNNING"]
        framework.driver.killTask({"value": "daemon"})
        framework.wait_for_state("daemon", "TASK_KILLED")
    restart = [c for c in host.calls() if c["tool"] == "systemctl"]
    assert json.dumps(restart[0]["argv"]) == '["restart", "dcos-mesos-slave"]'
