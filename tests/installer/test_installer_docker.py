"""The docker step on a simulated host with a modelled dockerd: every Docker version branch,
backups and rollback, the modelled dockerd flag and the failure report. The same behaviour
against a real engine: test_installer_docker_engine.py."""

from __future__ import annotations

import json

import pytest

from calico_dcos.devcluster.hostroot import STANDINS_DIR, read_calls, set_fault
from calico_dcos.installer.cli import EXIT_HOST
from calico_dcos.installer.hostfs import MARKER_DOCKER_RESTART, STATE_DIR
from calico_dcos.installer.report import REPORT_TOKEN_ENV, REPORT_URL_ENV
from tests.installer.installer_host import FAST

STORE = "etcd://10.0.0.1:2379,10.0.0.2:2379"
DAEMON_JSON = "/etc/docker/daemon.json"


def last_line(result) -> str:
    """The installer's reason: its last stderr line, which must be the only one saying it."""
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("calico-installer: failed: "), result.stderr
    return lines[-1]


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
    """Modelled, not the real engine: Docker >= 23 cannot be installed here (Debian 12 ships
    docker.io 20.10), so this branch stays on the stand-in's model of it."""
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

    assert result.returncode == EXIT_HOST
    reason = last_line(result)
    assert "rolled back" in reason and "still not back" in reason
    assert "dockerd: dockerd exited (fault docker-fails-to-start)" in reason
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

    assert result.returncode == EXIT_HOST
    assert last_line(result).endswith("rolled back and Docker is back")
    assert agent.files() == before
    assert agent.unit("docker") == "active"


def test_reset_failed_lets_a_start_limited_docker_restart(make_agent):
    agent = make_agent(start_limit=(1, 3600.0))
    assert agent.docker("etcd://first:2379").returncode == 0

    result = agent.docker(STORE, "--force")

    assert result.returncode == 0, result.stderr
    assert daemon_json(agent)["cluster-store"] == STORE


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "is not valid JSON"),
        (b"", "is empty"),
        (b" \n", "is empty"),
        (b'\xef\xbb\xbf{"debug": true}', "byte order mark"),
        (b'{"debug": NaN}', "NaN is not JSON"),
        (b'["debug"]', "is not a JSON object"),
        (b'{"labels": "\xff"}', "is not valid JSON"),
    ],
    ids=["invalid", "empty", "blank", "bom", "nan", "array", "not-utf8"],
)
def test_a_daemon_json_dockerd_refuses_is_left_alone_and_fails_as_the_hosts(agent, content, words):
    agent.path(DAEMON_JSON).write_bytes(content)
    before = agent.files()

    result = agent.docker(STORE)

    assert result.returncode == EXIT_HOST
    assert words in last_line(result) and "leaving it alone" in last_line(result)
    assert agent.files() == before
    assert agent.restarts("docker") == 0


def test_docker_counts_as_back_only_once_active_for_the_stability_period(agent):
    result = agent.run("docker", "--cluster-store", STORE, "--stability-seconds", "0.6")

    assert result.returncode == 0, result.stderr
    checks = [
        call["t"] for call in read_calls(agent.root) if call["argv"] == ["is-active", "docker"]
    ]
    assert len(checks) >= 2 and checks[-1] - checks[0] >= 0.6


# The modelled dockerd flag (host.json `docker_flags`); the real engine's answer to the same
# cases is in test_installer_docker_engine.py.


def test_a_cluster_store_set_by_a_dockerd_flag_is_done_when_it_is_the_wanted_one(make_agent):
    agent = make_agent(docker_flags=["--cluster-store", STORE])
    before = agent.files()

    result = agent.docker(STORE)

    assert result.returncode == 0, result.stderr
    assert "set by a dockerd flag: nothing to do" in result.stderr
    assert agent.files() == before
    assert agent.restarts("docker") == 0


def test_another_cluster_store_set_by_a_dockerd_flag_is_left_with_a_warning(make_agent):
    agent = make_agent(docker_flags=["--cluster-store=etcd://192.0.2.5:2379"])
    before = agent.files()

    result = agent.docker(STORE)

    assert result.returncode == 0, result.stderr
    assert "WARNING Docker uses cluster-store etcd://192.0.2.5:2379, set by a dockerd flag" in (
        result.stderr
    )
    assert agent.files() == before
    assert agent.restarts("docker") == 0


def test_force_cannot_replace_a_flag_and_says_it_is_the_hosts_to_fix(make_agent):
    agent = make_agent(docker_flags=["--cluster-store", "etcd://192.0.2.5:2379"])
    before = agent.files()

    result = agent.docker(STORE, "--force")

    assert result.returncode == EXIT_HOST
    assert "remove the flag from the docker unit" in last_line(result)
    assert agent.files() == before
    assert agent.restarts("docker") == 0


def test_the_failure_reason_is_reported_to_the_scheduler(make_agent, report_url):
    """The installer POSTs its one-line reason to $CALICO_DCOS_REPORT_URL (a real HTTP server
    here) with the agent's token, for the task ID Mesos gave it; Mesos itself only says
    "Command exited with status 3"."""
    agent = make_agent()
    agent.path(DAEMON_JSON).write_bytes(b"\xef\xbb\xbf{}")
    url, bodies, authorizations = report_url
    task_id = "calico-docker__5f1c-S0__4f2a91c0__1"
    env = {REPORT_URL_ENV: url, REPORT_TOKEN_ENV: "t0ken", "MESOS_TASK_ID": task_id}

    result = agent.docker(STORE, env=env)

    assert result.returncode == EXIT_HOST
    assert authorizations == ["Bearer t0ken"]
    assert "t0ken" not in result.stderr
    assert bodies == [
        {
            "agent_id": "5f1c-S0",
            "task_id": task_id,
            "step": "docker",
            "failed": True,
            "exit_code": EXIT_HOST,
            "host_caused": True,
            "reason": last_line(result).removeprefix("calico-installer: failed: "),
        }
    ]


def test_a_docker_that_does_not_answer_is_not_waited_for_forever(agent):
    """`docker info` hangs when dockerd accepts and never answers: the installer gives up after
    its timeout, decides from daemon.json alone, and its restart brings Docker back."""
    set_fault(agent.root, "docker-hangs")

    result = agent.docker(STORE, "--timeout-seconds", "2")  # after FAST's: it wins

    assert result.returncode == 0, result.stderr
    assert "`docker info` did not answer within 2 s" in result.stderr
    assert daemon_json(agent) == {"cluster-store": STORE}
    assert agent.restarts("docker") == 1


def test_an_unexpected_file_system_error_is_one_line_not_a_traceback(agent):
    docker_dir = agent.path("/etc/docker")
    docker_dir.rmdir()
    docker_dir.write_text("a file where a directory should be")

    result = agent.docker(STORE)

    assert result.returncode == 1
    assert "Not a directory" in last_line(result) and "Traceback" not in result.stderr


def test_a_password_in_a_reason_is_redacted_on_stderr_and_in_the_report(make_agent, report_url):
    agent = make_agent(docker_flags=["--cluster-store", "etcd://root:s3cret@192.0.2.5:2379"])
    url, bodies, _ = report_url

    result = agent.docker(STORE, "--force", env={REPORT_URL_ENV: url})

    assert result.returncode == EXIT_HOST
    assert "etcd://root:***@192.0.2.5:2379" in last_line(result)
    assert "s3cret" not in result.stderr and "s3cret" not in json.dumps(bodies)
    assert "root:***@" in bodies[0]["reason"]


NEW = "etcd://10.0.0.9:2379"
OTHER = "etcd://192.0.2.5:2379"
WRITTEN = f"{STATE_DIR}/backups/docker/written/etc/docker/daemon.json.json"


def test_a_value_this_installer_wrote_is_replaced_when_the_option_changes(make_agent):
    """The trial's case: an install wrote the cluster store, the operator changed the etcd
    endpoints, and the step left daemon.json as it was, calling its own value foreign."""
    agent = make_agent(daemon_json={"debug": True})
    original = agent.path(DAEMON_JSON).read_bytes()
    assert agent.docker(STORE).returncode == 0

    result = agent.docker(NEW)

    assert result.returncode == 0, result.stderr
    assert "which this installer wrote" in result.stderr
    assert "WARNING" not in result.stderr
    assert daemon_json(agent) == {"debug": True, "cluster-store": NEW}
    assert agent.restarts("docker") == 2
    assert agent.docker(NEW).returncode == 0 and agent.restarts("docker") == 2  # then done
    # the backup is still what the host had before the first change: uninstall restores it
    assert agent.run("uninstall", "--docker", *FAST).returncode == 0
    assert agent.path(DAEMON_JSON).read_bytes() == original
    assert not agent.path(WRITTEN).exists()


def test_a_host_changed_by_an_installer_that_kept_no_record_is_still_its_own(make_agent):
    """Hosts installed before the record of written values: the saved original says the
    file's cluster store is not the host's own."""
    agent = make_agent(daemon_json={"debug": True})
    assert agent.docker(STORE).returncode == 0
    agent.path(WRITTEN).unlink()

    assert agent.docker(NEW).returncode == 0
    assert daemon_json(agent)["cluster-store"] == NEW


def test_a_value_someone_else_set_is_left_alone_and_the_warning_reported(make_agent, report_url):
    """Someone replaced the installer's value after it: theirs now, left alone; the run ends
    0 (nothing was changed on the host) and the warning goes to the scheduler, which shows
    the step done with it. A daemon.json key the installer never wrote is treated alike."""
    url, bodies, _ = report_url
    task_id = "calico-docker__5f1c-S0__4f2a91c0__2"
    env = {REPORT_URL_ENV: url, REPORT_TOKEN_ENV: "t0ken", "MESOS_TASK_ID": task_id}
    agent = make_agent()
    assert agent.docker(STORE).returncode == 0
    agent.path(DAEMON_JSON).write_text(json.dumps({"cluster-store": OTHER}))
    before = agent.files()

    result = agent.docker(NEW, env=env)

    assert result.returncode == 0, result.stderr
    assert agent.files() == before and agent.restarts("docker") == 1
    (body,) = bodies
    assert body == {"agent_id": "5f1c-S0", "step": "docker", "task_id": task_id,
                    "warning": body["warning"]}  # fmt: skip
    assert OTHER in body["warning"] and "did not write it" in body["warning"]
    assert "leaving it as it is" in result.stderr

    foreign = make_agent(daemon_json={"cluster-store": OTHER})
    assert foreign.docker(NEW, env=env).returncode == 0
    assert daemon_json(foreign)["cluster-store"] == OTHER and len(bodies) == 2


def test_a_value_rolled_back_to_is_still_the_installers_own(make_agent):
    """A change Docker refused is rolled back to the installer's earlier value, which stays
    its own: the next options change replaces it."""
    agent = make_agent()
    assert agent.docker(STORE).returncode == 0
    set_fault(agent.root, "docker-fails-to-start")
    assert agent.docker(NEW).returncode == EXIT_HOST
    assert daemon_json(agent)["cluster-store"] == STORE
    set_fault(agent.root, "docker-fails-to-start", on=False)

    result = agent.docker(NEW)

    assert result.returncode == 0, result.stderr
    assert daemon_json(agent)["cluster-store"] == NEW


def test_a_warning_with_a_password_is_redacted_in_the_report(make_agent, report_url):
    url, bodies, _ = report_url
    agent = make_agent(daemon_json={"cluster-store": "etcd://root:s3cret@192.0.2.5:2379"})

    result = agent.docker(STORE, env={REPORT_URL_ENV: url, "MESOS_TASK_ID": "t"})

    assert result.returncode == 0
    assert "s3cret" not in result.stderr and "s3cret" not in json.dumps(bodies)
    assert "root:***@" in bodies[0]["warning"]
