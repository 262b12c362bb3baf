"""The cni step: plugins and config installed once, the agent restarted once."""

from __future__ import annotations

import json

from calico_dcos.devcluster.hostroot import set_unit
from calico_dcos.installer.hostfs import MARKER_CNI_RESTART, STATE_DIR
from tests.installer.installer_host import CONFIG_DIR, FAST, PLUGINS_DIR

MARKER = f"{STATE_DIR}/{MARKER_CNI_RESTART}"


def mode(agent, host_path: str) -> int:
    return agent.path(host_path).stat().st_mode & 0o777


def test_first_run_installs_plugins_and_config_and_restarts_the_agent_once(agent):
    result = agent.cni("--log-level", "debug")

    assert result.returncode == 0, result.stderr
    for name in ("calico", "calico-ipam"):
        installed = agent.path(PLUGINS_DIR + name)
        assert installed.read_bytes() == (agent.sandbox / name).read_bytes()
        assert mode(agent, PLUGINS_DIR + name) == 0o755
    config = json.loads(agent.path(CONFIG_DIR + "calico.cni").read_text())
    assert config == {
        "name": "calico",
        "cniVersion": "0.1.0",
        "type": "calico",
        "etcd_endpoints": "http://10.0.0.1:2379",
        "log_level": "debug",
        "ipam": {"type": "calico-ipam"},
    }
    assert mode(agent, CONFIG_DIR + "calico.cni") == 0o644
    assert agent.calls()[-3:] == [
        ["systemctl", "reset-failed", "dcos-mesos-slave"],
        ["systemctl", "restart", "dcos-mesos-slave"],
        ["systemctl", "is-active", "dcos-mesos-slave"],
    ]
    assert agent.restarts("dcos-mesos-slave") == 1
    assert not agent.path(MARKER).exists()


def test_public_agent_restarts_the_public_agent_unit(make_agent):
    agent = make_agent(public=True)

    result = agent.cni("--public")

    assert result.returncode == 0, result.stderr
    assert agent.restarts("dcos-mesos-slave-public") == 1
    assert agent.restarts("dcos-mesos-slave") == 0


def test_second_run_changes_nothing_and_restarts_nothing(agent):
    assert agent.cni().returncode == 0
    after_first, calls = agent.files(), len(agent.calls())

    second = agent.cni()

    assert second.returncode == 0, second.stderr
    assert "the agent is not restarted" in second.stderr
    assert agent.files() == after_first
    assert agent.calls()[calls:] == [
        ["systemctl", "is-active", "dcos-calico-felix", "dcos-calico-bird"]
    ]


def test_run_cut_off_by_the_agent_restart_is_finished_by_the_next_run(agent):
    first = agent.cni(crash_at="cni:agent-restarted")
    assert first.returncode == 137
    assert json.loads(agent.path(MARKER).read_text())["state"] == "restarted"
    calls = len(agent.calls())

    second = agent.cni()

    assert second.returncode == 0, second.stderr
    assert "waiting until it is stable" in second.stderr
    assert ["systemctl", "restart", "dcos-mesos-slave"] not in agent.calls()[calls:]
    assert ["systemctl", "is-active", "dcos-mesos-slave"] in agent.calls()[calls:]
    assert not agent.path(MARKER).exists()
    assert agent.restarts("dcos-mesos-slave") == 1


def test_pending_marker_makes_the_next_run_restart_although_files_match(agent):
    assert agent.cni(crash_at="cni:config-written").returncode == 137
    assert json.loads(agent.path(MARKER).read_text())["state"] == "pending"
    assert agent.restarts("dcos-mesos-slave") == 0

    rerun = agent.cni()

    assert rerun.returncode == 0, rerun.stderr
    assert agent.restarts("dcos-mesos-slave") == 1
    assert not agent.path(MARKER).exists()


def test_changed_endpoints_rewrite_only_the_config_and_restart_again(agent):
    assert agent.cni().returncode == 0
    binaries = {n: agent.path(PLUGINS_DIR + n).stat().st_ino for n in ("calico", "calico-ipam")}

    result = agent.cni(endpoints="http://10.0.0.9:2379")

    assert result.returncode == 0, result.stderr
    config = json.loads(agent.path(CONFIG_DIR + "calico.cni").read_text())
    assert config["etcd_endpoints"] == "http://10.0.0.9:2379"
    assert {n: agent.path(PLUGINS_DIR + n).stat().st_ino for n in binaries} == binaries
    assert agent.restarts("dcos-mesos-slave") == 2


def test_failed_agent_restart_fails_the_step_and_the_next_run_restarts_again(make_agent):
    agent = make_agent(control_url="http://127.0.0.1:1")

    result = agent.cni()

    assert result.returncode == 1
    assert "systemctl restart dcos-mesos-slave failed" in result.stderr
    assert json.loads(agent.path(MARKER).read_text())["state"] == "pending"
    assert agent.cni().returncode == 1
    assert agent.restarts("dcos-mesos-slave") == 2


def test_bad_endpoint_is_bad_usage_and_touches_nothing(agent):
    before = agent.files()

    result = agent.run(
        "cni", "--etcd-endpoints", "10.0.0.1:2379", "--calico-bin", "x", "--calico-ipam-bin", "y"
    )

    assert result.returncode == 2
    assert "must start with http://" in result.stderr
    assert agent.files() == before


def test_agent_that_stays_failed_fails_the_step_and_is_restarted_by_the_next_run(agent):
    assert agent.cni(crash_at="cni:agent-restarted").returncode == 137
    set_unit(agent.root, "dcos-mesos-slave", "failed")

    failed = agent.cni()
    again = agent.cni()

    assert failed.returncode == 1 and "did not come back" in failed.stderr
    assert again.returncode == 0, again.stderr
    assert agent.restarts("dcos-mesos-slave") == 2
    assert not agent.path(MARKER).exists()


def test_another_config_name_puts_back_the_config_this_installer_wrote_before(make_agent):
    """An options change of `cni.config_name` (or the directories): the old network config
    is the installer's own and would stay a second `calico` network with the old settings;
    a file it never wrote is left alone."""
    agent = make_agent()
    theirs = agent.path(CONFIG_DIR + "other.conf")
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_text('{"name": "other", "type": "bridge"}\n')
    assert agent.cni().returncode == 0

    result = agent.cni("--config-name", "calico-2.conf", endpoints="http://10.0.0.9:2379")

    assert result.returncode == 0, result.stderr
    assert not agent.path(CONFIG_DIR + "calico.cni").exists()
    config = json.loads(agent.path(CONFIG_DIR + "calico-2.conf").read_text())
    assert config["etcd_endpoints"] == "http://10.0.0.9:2379"
    assert theirs.read_text() == '{"name": "other", "type": "bridge"}\n'
    assert agent.restarts("dcos-mesos-slave") == 2
    assert agent.run("uninstall", "--cni", *FAST).returncode == 0
    assert not agent.path(CONFIG_DIR + "calico-2.conf").exists() and theirs.exists()
