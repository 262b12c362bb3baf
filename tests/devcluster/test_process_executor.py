"""The process executor runs TaskInfos as real processes and reports like Mesos' executor.

The agent is a test double of `calico_dcos.devcluster.agent.Agent` that records updates.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from calico_dcos.devcluster.hostroot import create_host_root, set_fault
from calico_dcos.devcluster.process_executor import ProcessExecutor
from tests.helpers.wait import wait_until_async


class RecordingAgent:
    """Stands for the devcluster's Agent: identity, host root, and recorded status updates."""

    def __init__(self, tmp_path: Path, agent_id: str = "0f1e-S1") -> None:
        self.agent_id = agent_id
        self.hostname = "agent-1"
        self.ip = "127.0.1.1"
        self.port = 5051
        self.host_root = tmp_path / "host"
        create_host_root(self.host_root, agent_id=agent_id, hostname=self.hostname, ip=self.ip)
        self.updates: list[dict] = []

    def framework_id_of(self, task_id: str) -> str:
        return "fw-0001"

    def send_status(
        self, task_id, state, *, message=None, reason=None, healthy=None, source="SOURCE_EXECUTOR"
    ):
        self.updates.append(
            {
                "task_id": task_id,
                "state": state,
                "message": message,
                "reason": reason,
                "healthy": healthy,
                "source": source,
            }
        )

    def killing(self, task_id: str) -> None:
        """Agent.killing: the framework here has no TASK_KILLING_STATE, so nothing is sent."""

    def states(self, task_id: str) -> list[str]:
        return [u["state"] for u in self.updates if u["task_id"] == task_id]

    def last(self, task_id: str) -> dict:
        return [u for u in self.updates if u["task_id"] == task_id][-1]


TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"}


async def run_to_end(executor, agent, task, timeout: float = 10.0) -> dict:
    await executor.launch(agent, task)
    task_id = task["task_id"]["value"]
    await wait_until_async(lambda: TERMINAL & set(agent.states(task_id)), timeout)
    return agent.last(task_id)


def task(task_id: str, value: str = "", **command) -> dict:
    return {
        "name": task_id.split("__")[0],
        "task_id": {"value": task_id},
        "agent_id": {"value": "0f1e-S1"},
        "command": {"value": value, **command},
    }


def scenario(test: Callable[[ProcessExecutor, RecordingAgent], Awaitable[None]]):
    """A test taking `tmp_path` that runs `async test(executor, agent)` on a fresh pair."""

    def run(tmp_path: Path) -> None:
        asyncio.run(test(*make(tmp_path)))

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


def make(tmp_path: Path) -> tuple[ProcessExecutor, RecordingAgent]:
    return ProcessExecutor(tmp_path / "work"), RecordingAgent(tmp_path)


@scenario
async def test_shell_command_goes_starting_running_finished_with_output_in_sandbox(executor, agent):
    final = await run_to_end(executor, agent, task("hello", "echo hello; echo oops >&2"))
    assert agent.states("hello") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert final["message"] == "Command exited with status 0"
    sandbox = executor.sandbox_of(agent.agent_id, "hello")
    assert sandbox == executor.workdir / "agents/0f1e-S1/sandboxes/hello"
    assert (sandbox / "stdout").read_text() == "hello\n"
    command_output, executor_line = (sandbox / "stderr").read_text().splitlines()
    assert command_output == "oops"  # then the command executor's own glog line, as Mesos'
    assert re.fullmatch(
        r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ executor\.cpp:1041\] "
        r"Command exited with status 0 \(pid: \d+\)",
        executor_line,
    )


@scenario
async def test_failing_command_reports_its_exit_status(executor, agent):
    final = await run_to_end(executor, agent, task("bad", "exit 7"))
    assert final["state"] == "TASK_FAILED"
    assert final["message"] == "Command exited with status 7"


@scenario
async def test_argv_form_execs_value_with_arguments_as_argv(executor, agent):
    code = "import sys; open('argv.json', 'w').write(__import__('json').dumps(sys.argv))"
    argv_task = task(
        "argv", sys.executable, shell=False, arguments=["python3", "-c", code, "a b", "$HOME"]
    )
    final = await run_to_end(executor, agent, argv_task)
    assert final["state"] == "TASK_FINISHED"
    sandbox = executor.sandbox_of(agent.agent_id, "argv")
    assert json.loads((sandbox / "argv.json").read_text()) == ["-c", "a b", "$HOME"]


@scenario
async def test_environment_has_mesos_variables_task_variables_and_standins_first(executor, agent):
    env_task = task(
        "calico-cni__0f1e-S1__4f2a__1",
        "env > env.txt",
        environment={"variables": [{"name": "ETCD_ENDPOINTS", "value": "http://127.0.1.1:2379"}]},
    )
    await run_to_end(executor, agent, env_task)
    sandbox = executor.sandbox_of(agent.agent_id, "calico-cni__0f1e-S1__4f2a__1")
    env = dict(
        line.split("=", 1) for line in (sandbox / "env.txt").read_text().splitlines() if "=" in line
    )
    assert env["MESOS_SANDBOX"] == str(sandbox)
    assert env["MESOS_TASK_ID"] == "calico-cni__0f1e-S1__4f2a__1"
    assert env["MESOS_FRAMEWORK_ID"] == "fw-0001"
    assert env["MESOS_EXECUTOR_ID"] == "calico-cni__0f1e-S1__4f2a__1"
    assert env["MESOS_AGENT_ENDPOINT"] == "127.0.1.1:5051"
    assert env["HOST"] == "agent-1"
    assert env["LIBPROCESS_IP"] == env["MESOS_CONTAINER_IP"] == "127.0.1.1"
    assert env["DEVCLUSTER_HOST_ROOT"] == str(agent.host_root)
    assert env["DEVCLUSTER_AGENT_ID"] == "0f1e-S1"
    assert env["ETCD_ENDPOINTS"] == "http://127.0.1.1:2379"
    assert env["PATH"].split(os.pathsep)[0] == str(executor.bin_dir)


@scenario
async def test_task_uses_the_host_standins(executor, agent):
    final = await run_to_end(executor, agent, task("restart", "systemctl restart docker"))
    assert final["state"] == "TASK_FINISHED"
    log = (agent.host_root / ".devcluster/calls.log").read_text().splitlines()
    assert json.loads(log[0])["argv"] == ["restart", "docker"]


@scenario
async def test_kill_sends_sigterm_and_reports_killed(executor, agent):
    await executor.launch(agent, task("daemon", "exec sleep 30"))
    await wait_until_async(lambda: "TASK_RUNNING" in agent.states("daemon"))
    await executor.kill(agent, "daemon", 5.0)
    await wait_until_async(lambda: TERMINAL & set(agent.states("daemon")))
    final = agent.last("daemon")
    assert final["state"] == "TASK_KILLED"
    assert final["message"] == "Command terminated with signal Terminated"


@scenario
async def test_kill_escalates_to_sigkill_after_the_grace_period(executor, agent):
    stubborn = (
        f"exec {sys.executable} -c 'import signal, time; "
        'signal.signal(signal.SIGTERM, signal.SIG_IGN); open("up", "w"); '
        "time.sleep(60)'"
    )
    await executor.launch(agent, task("stubborn", stubborn))
    sandbox = executor.sandbox_of(agent.agent_id, "stubborn")
    await wait_until_async(lambda: (sandbox / "up").exists())
    started = time.monotonic()
    await executor.kill(agent, "stubborn", 0.5)
    await wait_until_async(lambda: TERMINAL & set(agent.states("stubborn")))
    assert time.monotonic() - started >= 0.5
    assert agent.last("stubborn")["state"] == "TASK_KILLED"
    assert agent.last("stubborn")["message"] == "Command terminated with signal Killed"


def health(command: str, **timing) -> dict:
    spec = {
        "delay_seconds": 0,
        "interval_seconds": 0.05,
        "timeout_seconds": 5,
        "consecutive_failures": 2,
        "grace_period_seconds": 0,
    }
    return {"type": "COMMAND", "command": {"value": command}, **spec, **timing}


@scenario
async def test_healthy_check_reports_healthy_once(executor, agent):
    checked = task("node", "exec sleep 30")
    checked["health_check"] = health("echo x >> checks; true")
    await executor.launch(agent, checked)
    sandbox = executor.sandbox_of(agent.agent_id, "node")
    await wait_until_async(
        lambda: (sandbox / "checks").exists() and len((sandbox / "checks").read_text().split()) >= 4
    )
    health_updates = [u for u in agent.updates if u["healthy"] is not None]
    assert [(u["state"], u["healthy"]) for u in health_updates] == [("TASK_RUNNING", True)]
    await executor.kill(agent, "node", 1.0)


@scenario
async def test_container_health_check_follows_calico_node_and_kills_when_unhealthy(executor, agent):
    node = task("calico-node__0f1e-S1__4f2a__1", shell=False)
    node["container"] = {
        "type": "DOCKER",
        "docker": {"image": "calico/node:v3.27.0", "network": "HOST", "privileged": True},
    }
    node["health_check"] = health("calico-node -felix-ready -bird-ready")
    task_id = node["task_id"]["value"]
    await executor.launch(agent, node)
    await wait_until_async(lambda: any(u["healthy"] for u in agent.updates))
    set_fault(agent.host_root, "calico-node-unready")
    await wait_until_async(lambda: TERMINAL & set(agent.states(task_id)))
    healths = [
        u["healthy"]
        for u in agent.updates
        if u["state"] == "TASK_RUNNING" and u["healthy"] is not None
    ]
    assert healths == [True, False]
    final = agent.last(task_id)
    assert (final["state"], final["healthy"]) == ("TASK_KILLED", False)


@scenario
async def test_container_task_is_recorded_and_runs_until_killed(executor, agent):
    libnetwork = task(
        "calico-libnetwork__0f1e-S1__9a9a__1",
        shell=False,
        environment={"variables": [{"name": "ETCD_ENDPOINTS", "value": "http://127.0.1.1:2379"}]},
    )
    libnetwork["container"] = {
        "type": "DOCKER",
        "docker": {
            "image": "calico/libnetwork-plugin:v1.1.3",
            "network": "HOST",
            "privileged": True,
            "port_mappings": [{"host_port": 9000, "container_port": 9000}],
        },
        "volumes": [
            {
                "host_path": "/run/docker/plugins",
                "container_path": "/run/docker/plugins",
                "mode": "RW",
            }
        ],
    }
    task_id = libnetwork["task_id"]["value"]
    await executor.launch(agent, libnetwork)
    await wait_until_async(lambda: "TASK_RUNNING" in agent.states(task_id))
    record_path = agent.host_root / f".devcluster/containers/{task_id}.json"
    record = json.loads(record_path.read_text())
    assert record["image"] == "calico/libnetwork-plugin:v1.1.3"
    assert record["env"] == {"ETCD_ENDPOINTS": "http://127.0.1.1:2379"}
    assert record["network"] == "HOST" and record["privileged"] is True
    assert record["volumes"][0]["host_path"] == "/run/docker/plugins"
    assert record["port_mappings"] == [{"host_port": 9000, "container_port": 9000}]
    assert not TERMINAL & set(agent.states(task_id))
    await executor.kill(agent, task_id, 1.0)
    await wait_until_async(lambda: "TASK_KILLED" in agent.states(task_id))
    assert json.loads(record_path.read_text())["running"] is False


@scenario
async def test_mesos_container_with_docker_image_and_a_command_runs_the_command(executor, agent):
    proxy = task("calico-etcd-proxy", "echo proxied")
    proxy["container"] = {
        "type": "MESOS",
        "mesos": {"image": {"type": "DOCKER", "docker": {"name": "quay.io/coreos/etcd"}}},
    }
    final = await run_to_end(executor, agent, proxy)
    assert final["state"] == "TASK_FINISHED"
    record = json.loads(
        (agent.host_root / ".devcluster/containers/calico-etcd-proxy.json").read_text()
    )
    assert (record["type"], record["image"]) == ("MESOS", "quay.io/coreos/etcd")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@scenario
async def test_agent_restart_keeps_checkpointed_tasks_and_kills_the_others(executor, agent):
    await executor.launch(agent, task("kept", "echo $$ > pid; exec sleep 30"))
    pid_file = executor.sandbox_of(agent.agent_id, "kept") / "pid"
    await wait_until_async(lambda: pid_file.exists() and pid_file.read_text().strip())
    pid = int(pid_file.read_text())
    await executor.agent_stopping(agent, keep_tasks=True)
    assert process_alive(pid)
    await executor.agent_stopping(agent, keep_tasks=False)
    await wait_until_async(lambda: not process_alive(pid))
    assert agent.states("kept") == ["TASK_STARTING", "TASK_RUNNING"]


@scenario
async def test_shutdown_kills_every_task(executor, agent):
    await executor.launch(agent, task("a", "echo $$ > pid; exec sleep 30"))
    pid_file = executor.sandbox_of(agent.agent_id, "a") / "pid"
    await wait_until_async(lambda: pid_file.exists() and pid_file.read_text().strip())
    await executor.shutdown()
    assert not process_alive(int(pid_file.read_text()))
