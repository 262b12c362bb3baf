"""`calico-dcos run` and `calico-dcos local` as a user runs them: separate processes."""

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

CLI = [str(Path(sys.executable).with_name("calico-dcos"))]


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_invalid_options_stop_run_before_it_registers_naming_the_option(tmp_path):
    options = tmp_path / "options.yaml"
    options.write_text("rollout:\n  max_concurrent_restarts: 0\n")

    result = cli("run", "--options", str(options), "--master", "127.0.0.1:1", timeout=30)

    assert result.returncode == 2
    assert "rollout.max_concurrent_restarts" in result.stderr


def test_an_invalid_environment_override_stops_run_too(tmp_path):
    env = {"CALICO_ETCD_PROXY_MODE": "v4", "CALICO_SERVICE_STATE": str(tmp_path / "state")}

    result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=30)

    assert result.returncode == 2
    assert "etcd.proxy_mode" in result.stderr


def test_a_corrupt_state_stops_run_with_one_line_naming_the_file(tmp_path):
    record = tmp_path / "state" / "agents" / "S1.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"agent_id": "S1", "steps": ')
    env = {"CALICO_SERVICE_STATE": str(tmp_path / "state"), "CALICO_SERVICE_API_PORT": "0"}

    result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=30)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    reason = [line for line in result.stderr.splitlines() if line.startswith("calico-dcos: ")]
    assert len(reason) == 1 and str(record) in reason[0] and "corrupt" in reason[0]
    assert record.read_text() == '{"agent_id": "S1", "steps": '


def test_local_converges_three_agents_end_to_end(tmp_path):
    env = {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS": "100%"}

    result = cli(
        "local", "--agents", "2", "--public-agents", "1", "--workdir", str(tmp_path), env=env
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "stand-ins" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("3 of 3 agents done in ")
    for host in ("agent-1", "agent-2", "public-agent-1"):
        assert f"{host:<16} node        done" in result.stdout


def test_sigterm_stops_run_with_zero_and_leaves_the_framework_to_mesos(tmp_path):
    from tests.integration.harness import events, options_env, running_cluster, wait_until

    with running_cluster(agents=1, public_agents=0) as cluster:
        env = options_env(tmp_path / "state", cluster.master_url) | {"PORT0": "0"}
        env["CALICO_SERVICE_API_PORT"] = str(free_port())
        run = subprocess.Popen([*CLI, "run"], env={**os.environ, **env}, text=True)
        try:
            wait_until(lambda: events(cluster.timeline(), "launch"), 30, "a launch")
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(30)
        timeline = cluster.timeline()

    assert code == 0
    assert not events(timeline, "framework_removed")
    assert "TEARDOWN" not in {e.get("type") for e in events(timeline, "call")}


def test_run_with_sdk_uninstall_tears_down_wipes_and_stays_up_healthy(tmp_path):
    from calico_dcos.store import open_store
    from tests.integration.harness import events, options_env, running_cluster, wait_until

    with running_cluster(agents=1, public_agents=0) as cluster:
        port = free_port()
        env = options_env(tmp_path / "state", cluster.master_url) | {"SDK_UNINSTALL": "true"}
        env["CALICO_SERVICE_API_PORT"] = str(port)
        run = subprocess.Popen([*CLI, "run"], env={**os.environ, **env}, text=True)
        try:
            wait_until(lambda: events(cluster.timeline(), "framework_removed"), 30, "teardown")
            wait_until(lambda: _get(port, "/v1/plan").status_code == 200, 10, "a COMPLETE plan")
            wait_until(lambda: _get(port, "/v1/health").status_code == 200, 10, "healthy")
            plan = _get(port, "/v1/plan").json()
            still_up = run.poll() is None
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(30)

    assert plan["status"] == "COMPLETE" and still_up and code == 0
    store = open_store(str(tmp_path / "state"))
    assert store.get_framework_id() is None and store.load_agents() == {}


def _get(port: int, path: str):
    import requests

    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except requests.ConnectionError:
        return requests.Response()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Scheduler:
    """Just the read interface `Progress` uses, with a step that moves on."""

    def __init__(self) -> None:
        self.status = "STARTED"

    def plan_view(self) -> dict:
        steps = [{"name": "cni", "status": self.status, "message": ""}]
        return {"phases": [{"name": "agent-1", "steps": steps}]}

    def summary(self) -> dict:
        return {"message": "0 of 1 agents done", "degraded": False, "problems": []}


def test_progress_redraws_in_place_on_a_terminal_and_prints_only_changes_otherwise():
    from calico_dcos.commands.local import Progress

    scheduler, terminal, log = _Scheduler(), _Terminal(), io.StringIO()
    on_tty, in_log = Progress(scheduler, terminal), Progress(scheduler, log)
    for status in ("STARTED", "STARTED", "COMPLETE"):
        scheduler.status = status
        on_tty.show()
        in_log.show()

    assert terminal.getvalue().count("\x1b[2F\x1b[J") == 2
    assert log.getvalue().splitlines() == [
        "agent-1          cni         running",
        "agent-1          cni         done",
    ]


def test_run_under_marathon_refuses_a_state_directory_inside_the_container(tmp_path):
    env = {"CALICO_SERVICE_STATE": str(tmp_path / "state"), "MARATHON_APP_ID": "/calico"}

    result = cli("run", "--master", "127.0.0.1:1", env=env, timeout=30)

    assert result.returncode == 2
    assert "invalid option service.state:" in result.stderr
    assert "Marathon app /calico" in result.stderr and "zk://" in result.stderr
    assert not (tmp_path / "state").exists()
