"""The docker step on a simulated host: every Docker version branch, backups and rollback."""

from __future__ import annotations

import json

import pytest

from calico_dcos.devcluster.hostroot import STANDINS_DIR, read_calls, set_fault
from calico_dcos.installer.hostfs import MARKER_DOCKER_RESTART, STATE_DIR

STORE = "etcd://10.0.0.1:2379,10.0.0.2:2379"
DAEMON_JSON = "/etc/docker/daemon.json"


def daemon_json(agent) -> dict:
    return json.loads(agent.path(DAEMON_JSON).read_text())


@pytest.mark.parametrize("version", ["19.03.15", "20.10.7"])
def test_docker_below_23_gets_the_cluster_store_and_a_restart(make_agent, version):
    agent = make_agent(docker_version=version)

    result = agent.docker(STORE)

    assert result.returncode == 0, result.stderr
    assert daemon_json(agent) == {"cluster-store": STORE}
    assert agent.calls()[-3:] == [
        ["systemctl", "reset-failed", "docker"],
        ["systemctl", "restart", "docker"],
        ["systemctl", "is-active", "docker"],
    ]
    assert agent.unit("docker") == "active"
    assert not agent.path(f"{STATE_DIR}/{MARKER_DOCKER_RESTART}").exists()
    assert ("deprecated" in result.stderr) == version.startswith("20.10")


def test_docker_24_is_left_alone_with_a_clear_message(make_agent):
    agent = make_agent(docker_version="24.0.7", daemon_json={"debug": True})
    before = agent.files()

    result = agent.docker(STORE)

    assert result.returncode == 0, result.stderr
    assert "has no cluster-store" in result.stderr
    assert "refuses to start" not in result.stderr
    assert agent.files() == before
    assert agent.restarts("docker") == 0


def test_docker_24_with_a_leftover_cluster_store_is_told_how_to_undo_it(make_agent):
    agent = make_agent(docker_version="24.0.7")
    agent.path(DAEMON_JSON).write_text('{"cluster-store": "etcd://old:2379", "oops": }')

    result = agent.docker(STORE)

    assert result.returncode == 0, result.stderr
    assert "refuses to start" in result.stderr and "uninstall --docker" in result.stderr
    assert agent.restarts("docker") == 0


def test_other_daemon_json_keys_are_kept(make_agent):
    original = {"debug": True, "log-opts": {"max-size": "10m"}, "insecure-registries": ["r:5000"]}
    agent = make_agent(daemon_json=original)

    assert agent.docker(STORE).returncode == 0

    assert daemon_json(agent) == original | {"cluster-store": STORE}


def test_same_value_already_set_changes_and_restarts_nothing(make_agent):
    agent = make_agent(daemon_json={"cluster-store": STORE})
    before = agent.files()

    result = agent.docker(STORE)

    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stderr
    assert agent.files() == before
    assert agent.restarts("docker") == 0


def test_another_value_is_left_unless_forced(make_agent):
    agent = make_agent(daemon_json={"cluster-store": "consul://other:8500"})

    kept = agent.docker(STORE)
    assert kept.returncode == 0, kept.stderr
    assert "leaving it as it is" in kept.stderr
    assert daemon_json(agent)["cluster-store"] == "consul://other:8500"
    assert agent.restarts("docker") == 0

    forced = agent.docker(STORE, "--force")
    assert forced.returncode == 0, forced.stderr
    assert daemon_json(agent)["cluster-store"] == STORE
    assert agent.restarts("docker") == 1


def test_second_run_changes_nothing_and_restarts_nothing(agent):
    assert agent.docker(STORE).returncode == 0
    after_first, calls = agent.files(), len(agent.calls())

    second = agent.docker(STORE)

    assert second.returncode == 0, second.stderr
    assert agent.files() == after_first
    assert ["systemctl", "restart", "docker"] not in agent.calls()[calls:]


def test_docker_that_does_not_come_back_is_rolled_back_byte_for_byte(make_agent):
    agent = make_agent()
    original = b'{"debug":   true,\n "storage-driver": "overlay2"}   \n'
    agent.path(DAEMON_JSON).write_bytes(original)
    agent.path(DAEMON_JSON).chmod(0o600)
    before = agent.files()
    set_fault(agent.root, "docker-fails-to-start")

    result = agent.docker(STORE)

    assert result.returncode == 1
    assert "rolled back" in result.stderr and "still not back" in result.stderr
    assert agent.files() == before
    assert agent.restarts("docker") == 2


def test_docker_that_fails_once_comes_back_after_the_rollback(make_agent, tmp_path):
    agent = make_agent(daemon_json={"debug": True})
    before = agent.files()
    set_fault(agent.root, "docker-fails-to-start")
    fails_once = tmp_path / "fails-once"
    fails_once.mkdir()
    wrapper = fails_once / "systemctl"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# Test wrapper around the systemctl stand-in: Docker fails its first restart only.\n"
        '"$STANDIN" "$@"; code=$?\n'
        '[ "$1" = restart ] && rm -f "$DEVCLUSTER_HOST_ROOT/.devcluster/faults/'
        'docker-fails-to-start"\n'
        "exit $code\n"
    )
    wrapper.chmod(0o755)
    env = {
        "STANDIN": str(STANDINS_DIR / "systemctl"),
        "PATH": f"{fails_once}:{STANDINS_DIR}:/usr/bin:/bin",
    }

    result = agent.docker(STORE, env=env)

    assert result.returncode == 1
    assert "rolled back and Docker is back" in result.stderr
    assert agent.files() == before
    assert agent.unit("docker") == "active"


def test_reset_failed_lets_a_start_limited_docker_restart(make_agent):
    agent = make_agent(start_limit=(1, 3600.0))
    assert agent.docker("etcd://first:2379").returncode == 0

    result = agent.docker(STORE, "--force")

    assert result.returncode == 0, result.stderr
    assert daemon_json(agent)["cluster-store"] == STORE


def test_invalid_daemon_json_is_left_alone_and_fails(agent):
    agent.path(DAEMON_JSON).write_text("{not json")
    before = agent.files()

    result = agent.docker(STORE)

    assert result.returncode == 1
    assert "not valid JSON" in result.stderr
    assert agent.files() == before
    assert agent.restarts("docker") == 0


def test_docker_counts_as_back_only_once_active_for_the_stability_period(agent):
    result = agent.run("docker", "--cluster-store", STORE, "--stability-seconds", "0.6")

    assert result.returncode == 0, result.stderr
    checks = [
        call["t"] for call in read_calls(agent.root) if call["argv"] == ["is-active", "docker"]
    ]
    assert len(checks) >= 2 and checks[-1] - checks[0] >= 0.6
