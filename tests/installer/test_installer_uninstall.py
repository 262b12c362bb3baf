"""`uninstall` puts back, byte for byte, what the installer found, from its backups."""

from __future__ import annotations

from calico_dcos.installer.hostfs import BACKUPS_DIR
from tests.installer.installer_host import CONFIG_DIR, PLUGINS_DIR

ODD_DAEMON_JSON = b'{ "debug" : true,\n\t"log-driver":"journald" }\n\n'
OLD_PLUGIN = b"\x7fELF an older calico plugin"


def test_uninstall_puts_back_the_original_files_byte_for_byte(agent):
    agent.path("/etc/docker/daemon.json").write_bytes(ODD_DAEMON_JSON)
    agent.path("/etc/docker/daemon.json").chmod(0o600)
    agent.path(PLUGINS_DIR + "calico").write_bytes(OLD_PLUGIN)
    agent.path(PLUGINS_DIR + "calico").chmod(0o700)
    original = agent.files()
    assert agent.docker().returncode == 0 and agent.cni().returncode == 0
    assert agent.files() != original
    backups = f"{BACKUPS_DIR}/"
    assert agent.path(backups + "docker/present/etc/docker/daemon.json").read_bytes() == (
        ODD_DAEMON_JSON
    )
    assert agent.path(backups + "cni/present" + PLUGINS_DIR + "calico").read_bytes() == OLD_PLUGIN
    assert agent.path(backups + "cni/absent" + CONFIG_DIR + "calico.cni").exists()

    result = agent.run("uninstall", "--stability-seconds", "0")

    assert result.returncode == 0, result.stderr
    assert agent.files() == original
    assert agent.restarts("docker") == 2
    assert agent.restarts("dcos-mesos-slave") == 2


def test_uninstall_of_an_untouched_host_changes_and_restarts_nothing(agent):
    before = agent.files()

    result = agent.run("uninstall", "--stability-seconds", "0")

    assert result.returncode == 0, result.stderr
    assert "nothing to put back" in result.stderr
    assert agent.files() == before
    assert agent.calls() == []


def test_uninstall_docker_only_leaves_the_cni_files(agent):
    assert agent.docker().returncode == 0 and agent.cni().returncode == 0
    cni_files = {k: v for k, v in agent.files().items() if "cni" in k}

    result = agent.run("uninstall", "--docker", "--stability-seconds", "0")

    assert result.returncode == 0, result.stderr
    assert not agent.path("/etc/docker/daemon.json").exists()
    assert {k: v for k, v in agent.files().items() if "cni" in k} == cni_files
    assert agent.restarts("dcos-mesos-slave") == 1
