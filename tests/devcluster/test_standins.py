"""The host stand-ins (`systemctl`, `docker`, `calico-node`) acting on a simulated host root."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from calico_dcos.devcluster.hostroot import (
    STANDINS_DIR,
    Host,
    create_host_root,
    install_standins,
    read_calls,
    set_fault,
    set_unit,
)


def make_host(tmp_path: Path, **kw) -> Host:
    kw.setdefault("agent_id", "0f1e-S1")
    kw.setdefault("hostname", "agent-1")
    kw.setdefault("ip", "127.0.1.1")
    return create_host_root(tmp_path / "host", **kw)


def run(host: Host, *argv: str) -> subprocess.CompletedProcess:
    """Run a stand-in through the fast wrappers the process executor puts on PATH."""
    bin_dir = install_standins(host.root.parent / "bin")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DEVCLUSTER_HOST_ROOT": str(host.root)}
    return subprocess.run(list(argv), env=env, capture_output=True, text=True, timeout=30)


def write_daemon_json(host: Host, text: str) -> None:
    host.daemon_json().write_text(text)


def test_docker_version_reports_the_configured_version(tmp_path):
    host = make_host(tmp_path, docker_version="24.0.7")
    result = run(host, "docker", "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "Docker version 24.0.7, build 0000000"
    server = run(host, "docker", "version", "--format", "{{.Server.Version}}")
    assert server.stdout.strip() == "24.0.7"


def test_docker_info_shows_cluster_store_and_fails_when_docker_is_down(tmp_path):
    host = make_host(tmp_path, daemon_json={"cluster-store": "etcd://127.0.0.1:2379"})
    assert "Cluster Store: etcd://127.0.0.1:2379" in run(host, "docker", "info").stdout
    set_unit(host.root, "docker", "failed")
    result = run(host, "docker", "info")
    assert result.returncode == 1
    assert "Cannot connect to the Docker daemon" in result.stderr


def test_docker_other_commands_are_recorded_and_succeed(tmp_path):
    host = make_host(tmp_path)
    assert run(host, "docker", "ps").stdout.startswith("CONTAINER ID")
    assert run(host, "docker", "network", "create", "calico").returncode == 0
    assert [c["argv"] for c in read_calls(host.root)] == [["ps"], ["network", "create", "calico"]]


def test_every_call_is_a_json_line_with_tool_argv_and_monotonic_time(tmp_path):
    host = make_host(tmp_path)
    run(host, "systemctl", "is-active", "docker")
    run(host, "docker", "--version")
    calls = read_calls(host.root)
    assert [(c["tool"], c["argv"]) for c in calls] == [
        ("systemctl", ["is-active", "docker"]),
        ("docker", ["--version"]),
    ]
    assert calls[0]["t"] <= calls[1]["t"]


def test_is_active_prints_state_and_exits_like_systemd(tmp_path):
    host = make_host(tmp_path)
    active = run(host, "systemctl", "is-active", "docker.service")
    assert (active.returncode, active.stdout.strip()) == (0, "active")
    unknown = run(host, "systemctl", "is-active", "dcos-calico-felix")
    assert (unknown.returncode, unknown.stdout.strip()) == (3, "inactive")
    quiet = run(host, "systemctl", "is-active", "--quiet", "docker")
    assert (quiet.returncode, quiet.stdout) == (0, "")
    several = run(host, "systemctl", "is-active", "dcos-calico-felix", "docker")
    assert (several.returncode, several.stdout) == (0, "inactive\nactive\n")


def test_restart_docker_succeeds_with_valid_daemon_json(tmp_path):
    host = make_host(tmp_path, docker_version="19.03.15")
    write_daemon_json(host, '{"cluster-store": "etcd://127.0.1.1:2379"}')
    result = run(host, "systemctl", "restart", "docker")
    assert result.returncode == 0
    assert host.unit_state("docker") == "active"


def test_restart_docker_fails_on_invalid_daemon_json(tmp_path):
    host = make_host(tmp_path)
    write_daemon_json(host, '{"cluster-store": ')
    result = run(host, "systemctl", "restart", "docker")
    assert result.returncode == 1
    assert "unable to configure the Docker daemon" in result.stderr
    assert host.unit_state("docker") == "failed"


@pytest.mark.parametrize(
    ("version", "starts"), [("19.03.15", True), ("20.10.24", True), ("23.0.0", False)]
)
def test_cluster_store_stops_docker_from_version_23(tmp_path, version, starts):
    host = make_host(tmp_path, docker_version=version)
    write_daemon_json(host, '{"cluster-store": "etcd://127.0.1.1:2379"}')
    result = run(host, "systemctl", "restart", "docker")
    assert (result.returncode == 0) is starts
    if not starts:
        assert "don't match any configuration option: cluster-store" in result.stderr
        assert "don't match" in run(host, "systemctl", "status", "docker").stdout


def test_docker_fails_to_start_fault(tmp_path):
    host = make_host(tmp_path)
    set_fault(host.root, "docker-fails-to-start")
    assert run(host, "systemctl", "restart", "docker").returncode == 1
    assert run(host, "systemctl", "is-active", "docker").stdout.strip() == "failed"
    set_fault(host.root, "docker-fails-to-start", on=False)
    assert run(host, "systemctl", "restart", "docker").returncode == 0


def test_start_limit_fails_docker_until_reset_failed(tmp_path):
    host = make_host(tmp_path, start_limit=(3, 60.0))
    for _ in range(3):
        assert run(host, "systemctl", "restart", "docker").returncode == 0
    limited = run(host, "systemctl", "restart", "docker")
    assert limited.returncode == 1
    assert "Start request repeated too quickly" in limited.stderr
    assert host.unit_state("docker") == "failed"
    assert run(host, "systemctl", "reset-failed", "docker").returncode == 0
    assert host.unit_state("docker") == "inactive"
    assert run(host, "systemctl", "restart", "docker").returncode == 0
    assert host.unit_state("docker") == "active"


def test_start_of_an_active_unit_changes_nothing_and_stop_deactivates(tmp_path):
    host = make_host(tmp_path, start_limit=(1, 60.0))
    assert run(host, "systemctl", "start", "docker").returncode == 0
    assert run(host, "systemctl", "stop", "docker").returncode == 0
    assert host.unit_state("docker") == "inactive"
    assert run(host, "systemctl", "start", "docker").returncode == 0
    assert host.unit_state("docker") == "active"


def test_unknown_unit_is_not_found(tmp_path):
    host = make_host(tmp_path)
    result = run(host, "systemctl", "restart", "dcos-mesos-slave-public")
    assert result.returncode == 5
    assert "not found" in result.stderr


def test_restart_agent_without_devcluster_marks_it_active(tmp_path):
    host = make_host(tmp_path)
    set_unit(host.root, "dcos-mesos-slave", "failed")
    assert run(host, "systemctl", "restart", "dcos-mesos-slave").returncode == 0
    assert host.unit_state("dcos-mesos-slave") == "active"


class ControlEndpoint:
    """Records POSTs like the devcluster's control endpoint (a test double of cluster.py)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                outer.paths.append(self.path)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_restart_public_agent_posts_to_the_devcluster_and_waits_activating(tmp_path):
    endpoint = ControlEndpoint()
    try:
        host = make_host(tmp_path, agent_id="0f1e-S7", public=True, control_url=endpoint.url)
        result = run(host, "systemctl", "restart", "dcos-mesos-slave-public.service")
        assert result.returncode == 0
        assert endpoint.paths == ["/devcluster/agents/0f1e-S7/restart"]
        assert run(host, "systemctl", "is-active", "dcos-mesos-slave-public").returncode == 3
        assert host.unit_state("dcos-mesos-slave-public") == "activating"
    finally:
        endpoint.close()


def test_restart_agent_fails_when_the_devcluster_is_unreachable(tmp_path):
    host = make_host(tmp_path, control_url="http://127.0.0.1:9")
    result = run(host, "systemctl", "restart", "dcos-mesos-slave")
    assert result.returncode == 1
    assert host.unit_state("dcos-mesos-slave") == "failed"


def test_calico_node_readiness_follows_the_fault_toggle(tmp_path):
    host = make_host(tmp_path)
    assert run(host, "calico-node", "-felix-ready", "-bird-ready").returncode == 0
    set_fault(host.root, "calico-node-unready")
    unready = run(host, "calico-node", "-felix-ready", "-bird-ready")
    assert unready.returncode == 1
    assert "not ready" in unready.stderr


def test_dcos_2_host_already_runs_calico(tmp_path):
    host = make_host(tmp_path, dcos_calico=True)
    assert run(host, "systemctl", "is-active", "dcos-calico-felix").returncode == 0
    assert (host.root / "etc/systemd/system/dcos-calico-felix.service").exists()
    assert json.loads((host.meta_dir / "host.json").read_text())["agent_unit"] == (
        "dcos-mesos-slave"
    )


def test_scripts_run_directly_from_path_with_their_own_shebang(tmp_path):
    host = make_host(tmp_path, docker_version="20.10.24")
    env = {"PATH": f"{STANDINS_DIR}:{os.environ['PATH']}", "DEVCLUSTER_HOST_ROOT": str(host.root)}
    result = subprocess.run(
        ["docker", "--version"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.stdout == "Docker version 20.10.24, build 0000000\n"
    for name in ("systemctl", "docker", "calico-node"):
        script = STANDINS_DIR / name
        assert script.read_text().startswith("#!/usr/bin/env python3\n")
        assert os.access(script, os.X_OK)


def test_standins_refuse_to_act_without_a_host_root():
    env = {"PATH": f"{STANDINS_DIR}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["systemctl", "restart", "docker"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "DEVCLUSTER_HOST_ROOT" in result.stderr


def test_concurrent_restarts_count_every_start_against_the_limit(tmp_path):
    host = make_host(tmp_path, start_limit=(4, 60.0))
    env = {"PATH": f"{STANDINS_DIR}:{os.environ['PATH']}", "DEVCLUSTER_HOST_ROOT": str(host.root)}
    restarts = [subprocess.Popen(["systemctl", "restart", "docker"], env=env) for _ in range(6)]
    codes = sorted(p.wait(timeout=30) for p in restarts)
    assert codes == [0, 0, 0, 0, 1, 1]
    assert len(host.history("docker")["starts"]) == 4


UNIT_FILE = """[Unit]
Description=a unit an administrator installed

[Service]
ExecStart=/bin/true

[Install]
WantedBy=multi-user.target other.target
"""


def test_systemctl_knows_a_unit_file_after_daemon_reload_and_enables_it_like_systemd(tmp_path):
    """systemd loads /etc/systemd/system on `daemon-reload`, and `enable` makes one symlink
    per `WantedBy=` target (systemctl(1), systemd.unit(5) [Install]); `disable` removes them."""
    host = make_host(tmp_path)
    unit_dir = host.root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    (unit_dir / "calico-x.service").write_text(UNIT_FILE)

    assert run(host, "systemctl", "start", "calico-x").returncode == 5  # not loaded yet
    assert run(host, "systemctl", "daemon-reload").returncode == 0
    assert run(host, "systemctl", "start", "calico-x.service").returncode == 0
    assert host.unit_state("calico-x") == "active"

    assert run(host, "systemctl", "is-enabled", "calico-x").stdout.strip() == "disabled"
    assert run(host, "systemctl", "enable", "calico-x.service").returncode == 0
    for target in ("multi-user.target", "other.target"):
        link = unit_dir / f"{target}.wants" / "calico-x.service"
        assert os.readlink(link) == "/etc/systemd/system/calico-x.service"
    assert run(host, "systemctl", "enable", "calico-x").returncode == 0  # twice: no change
    enabled = run(host, "systemctl", "is-enabled", "calico-x")
    assert (enabled.returncode, enabled.stdout.strip()) == (0, "enabled")

    assert run(host, "systemctl", "disable", "calico-x").returncode == 0
    assert not [p for p in unit_dir.glob("*.wants/*") if p.name == "calico-x.service"]
    assert run(host, "systemctl", "is-enabled", "calico-x").returncode == 1
    (unit_dir / "calico-x.service").unlink()
    gone = run(host, "systemctl", "disable", "calico-x")
    assert gone.returncode == 1 and "does not exist" in gone.stderr
