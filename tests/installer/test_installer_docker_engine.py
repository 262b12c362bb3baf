"""The docker step against a REAL Docker engine (Debian's docker.io, 20.10.x).

Each simulated host runs its own real dockerd (its daemon.json, data and exec roots, socket
and the flags its docker unit would pass) through the stand-ins' `real_docker` mode: only
systemd is stood in for (`systemctl start|stop|restart|is-active docker` and `journalctl`,
see calico_dcos/devcluster/standins/realdocker.py); `docker` is the real CLI pointed at that
host's dockerd. The installer zipapp runs under the agents' Python, as in the other tests.

Docker >= 23 (no `cluster-store` at all) cannot be installed here beside 20.10, so that branch
stays modelled: test_installer_docker.py::test_docker_24_is_left_alone_with_a_clear_message.

Every test starts its own daemons and the `engine` fixture stops them, whatever happened,
and fails if anything they started is still running.

Cluster stores point at loopback ports where nothing listens: dockerd 20.10 accepts them at
start-up and reports them in `docker info` (an unreachable address would cost each start
~15 s of libkv connection attempts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from calico_dcos.devcluster.hostroot import (
    real_docker_available,
    start_real_docker,
    stop_real_docker,
)
from calico_dcos.devcluster.standins.hostsim import Host
from calico_dcos.devcluster.standins.realdocker import RealDocker, processes_mentioning
from calico_dcos.installer.cli import EXIT_HOST

WANTED = "etcd://127.0.0.1:23791,127.0.0.1:23792"
OTHER = "etcd://127.0.0.1:23799"
DAEMON_JSON = "/etc/docker/daemon.json"
FLAG_CONFLICT = (
    "the following directives are specified both as a flag and in the configuration file: "
    "cluster-store: (from flag: {flag}, from file: {file})"
)


@pytest.fixture
def engine(make_agent):
    """Factory of hosts whose docker unit is a real dockerd; all of them stopped at the end."""
    missing = real_docker_available()
    if missing:
        pytest.fail(f"the real-engine tests need Docker: {missing} (scripts/system-deps.sh)")
    if os.geteuid() != 0:
        pytest.fail("the real-engine tests need root: dockerd runs as root only")
    made = []

    def make(flags=(), daemon_json=None, running=True):
        agent = make_agent(real_docker=True, docker_flags=list(flags), daemon_json=daemon_json)
        made.append(agent)
        if running:
            start_real_docker(agent.root)
        return agent

    try:
        yield make
    finally:
        left = {}
        for agent in made:
            run_dir = str(RealDocker(Host(agent.root)).run_dir)
            stop_real_docker(agent.root)
            if processes_mentioning(run_dir):
                left[str(agent.root)] = processes_mentioning(run_dir)
        assert not left, f"daemons left running: {left}"


def info(agent, template: str) -> str:
    """`docker info --format TEMPLATE` with the real CLI, against this host's dockerd."""
    result = subprocess.run(
        ["docker", "info", "--format", template],
        capture_output=True,
        text=True,
        env=agent.environ(None, None),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def dockerd_pid(agent) -> int | None:
    return RealDocker(Host(agent.root)).main_pid()


def host_files(agent) -> dict:
    """Every file of the host but the engine's own state below its data root."""
    return {k: v for k, v in agent.files().items() if not k.startswith("var/lib/docker/")}


def reason(result) -> str:
    """The installer's one-line reason, its last stderr line."""
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("calico-installer: failed: "), result.stderr
    return lines[-1]


def test_cluster_store_is_written_with_the_other_keys_and_reported_by_docker_info(engine):
    original = {"debug": True, "labels": ["zone=a"], "log-opts": {"max-size": "10m"}}
    agent = engine(daemon_json=original)
    pid = dockerd_pid(agent)

    result = agent.docker(WANTED)

    assert result.returncode == 0, result.stderr
    assert "deprecated since 20.10" in result.stderr
    assert json.loads(agent.path(DAEMON_JSON).read_text()) == original | {"cluster-store": WANTED}
    assert info(agent, "{{.ClusterStore}}") == WANTED
    assert info(agent, "{{.Debug}} {{json .Labels}}") == 'true ["zone=a"]'
    assert agent.restarts("docker") == 1
    assert dockerd_pid(agent) not in (None, pid)

    again = agent.docker(WANTED)

    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr
    assert agent.restarts("docker") == 1


def test_a_conflicting_dockerd_flag_leaves_the_file_alone_and_restarts_nothing(engine):
    agent = engine(flags=["--cluster-store", OTHER], daemon_json={"debug": True})
    before, pid = host_files(agent), dockerd_pid(agent)

    kept = agent.docker(WANTED)
    forced = agent.docker(WANTED, "--force")
    same = agent.docker(OTHER)

    assert kept.returncode == 0, kept.stderr
    assert f"Docker uses cluster-store {OTHER}, set by a dockerd flag" in kept.stderr
    assert forced.returncode == EXIT_HOST
    assert "remove the flag from the docker unit" in reason(forced)
    assert same.returncode == 0, same.stderr
    assert "set by a dockerd flag: nothing to do" in same.stderr
    assert host_files(agent) == before
    assert agent.restarts("docker") == 0
    assert dockerd_pid(agent) == pid
    assert info(agent, "{{.ClusterStore}}") == OTHER


@pytest.mark.parametrize(
    ("content", "installer_says", "dockerd_says"),
    [
        (
            b'\xef\xbb\xbf{"debug": true}',
            "starts with a UTF-8 byte order mark",
            "invalid character 'ï' looking for beginning of value",
        ),
        (b"", "is empty", ": EOF"),
        (b'{"debug": true,}', "is not valid JSON", "invalid character '}'"),
    ],
    ids=["bom", "empty", "invalid-json"],
)
def test_a_daemon_json_dockerd_refuses_is_refused_before_any_restart(
    engine, content, installer_says, dockerd_says
):
    agent = engine(daemon_json={"debug": True})
    pid = dockerd_pid(agent)
    agent.path(DAEMON_JSON).write_bytes(content)  # the operator's edit, not yet loaded
    before = host_files(agent)

    result = agent.docker(WANTED)

    assert result.returncode == EXIT_HOST
    assert installer_says in reason(result) and "leaving it alone" in reason(result)
    assert host_files(agent) == before
    assert agent.restarts("docker") == 0
    assert dockerd_pid(agent) == pid
    # The real engine refuses the very same file, in the words the test expects.
    restart = subprocess.run(
        ["systemctl", "restart", "docker"], env=agent.environ(None, None), capture_output=True
    )
    assert restart.returncode == 1
    assert dockerd_says in Host(agent.root).journal_lines("docker")[-1]


def test_a_daemon_refusing_the_edit_is_rolled_back_byte_for_byte_and_comes_back(engine):
    """The real engine refuses a cluster store whose backend it does not know; the installer
    cannot know every engine's backends, so this is the rollback's case."""
    agent = engine()
    original = b'{"debug":   true,\n "labels": ["zone=a"]}   \n'
    agent.path(DAEMON_JSON).write_bytes(original)
    agent.path(DAEMON_JSON).chmod(0o600)
    subprocess.run(["systemctl", "restart", "docker"], env=agent.environ(None, None), check=True)
    before = host_files(agent)

    result = agent.docker("zookeeper-like://127.0.0.1:23793")

    assert result.returncode == EXIT_HOST
    assert reason(result).endswith("daemon.json rolled back and Docker is back")
    assert "dockerd: failed to start daemon: Error initializing network controller" in reason(
        result
    )
    assert host_files(agent) == before
    assert agent.restarts("docker") == 3  # the test's own, the failed one, the rollback's
    assert agent.unit("docker") == "active" and dockerd_pid(agent) is not None
    assert info(agent, "{{.Debug}} {{json .Labels}} [{{.ClusterStore}}]") == 'true ["zone=a"] []'


def test_the_engines_words_reach_the_failure_reason(engine):
    """Docker was down, so `docker info` could not tell of the unit's --cluster-store flag:
    the edit makes dockerd refuse to start, in its own words, and the rollback brings it back."""
    agent = engine(flags=["--cluster-store", OTHER], daemon_json={"debug": True}, running=False)
    before = host_files(agent)

    result = agent.docker(WANTED)

    assert result.returncode == EXIT_HOST
    assert "no Docker daemon answered" in result.stderr
    words = FLAG_CONFLICT.format(flag=OTHER, file=WANTED)
    assert words in reason(result)
    assert reason(result).endswith("daemon.json rolled back and Docker is back")
    assert host_files(agent) == before
    assert info(agent, "{{.ClusterStore}}") == OTHER


def test_a_daemon_json_docker_has_not_loaded_is_loaded_by_a_restart(engine):
    """daemon.json got the wanted store behind Docker's back: restart it, write nothing."""
    agent = engine()
    agent.path(DAEMON_JSON).write_text(json.dumps({"cluster-store": WANTED}))
    before = host_files(agent)

    result = agent.docker(WANTED)

    assert result.returncode == 0, result.stderr
    assert "Docker runs without one: restarting Docker to load it" in result.stderr
    assert host_files(agent) == before
    assert info(agent, "{{.ClusterStore}}") == WANTED


def test_uninstall_puts_back_the_file_it_found_and_docker_loads_it(engine):
    original = b'{"debug": true}\n'
    agent = engine()
    agent.path(DAEMON_JSON).write_bytes(original)
    subprocess.run(["systemctl", "restart", "docker"], env=agent.environ(None, None), check=True)
    assert agent.docker(WANTED).returncode == 0

    result = agent.run("uninstall", "--docker", "--stability-seconds", "0")

    assert result.returncode == 0, result.stderr
    assert agent.path(DAEMON_JSON).read_bytes() == original
    assert info(agent, "{{.Debug}} [{{.ClusterStore}}]") == "true []"


def test_a_dockerd_that_dies_is_failed_for_systemctl_and_restarts(engine):
    """The stand-in's side: systemd sees a unit whose main process died as `failed`; a restart
    after a SIGKILL (pidfile and socket left behind, containerd orphaned) works."""
    agent = engine()
    os.kill(dockerd_pid(agent), signal.SIGKILL)
    env = agent.environ(None, None)

    state = subprocess.run(["systemctl", "is-active", "docker"], env=env, capture_output=True)
    restart = subprocess.run(["systemctl", "restart", "docker"], env=env, capture_output=True)

    assert (state.returncode, state.stdout) == (3, b"failed\n")
    assert restart.returncode == 0, restart.stderr
    assert info(agent, "{{.Driver}}") == "vfs"
