"""A crash between any two steps, then a rerun, ends in the same state as one clean run.

Each case kills the installer (`CALICO_INSTALLER_CRASH_AT`, exit 137 as after SIGKILL) at one
point, runs it again, and compares every file of the host with a host that had one clean run.
"""

from __future__ import annotations

import pytest

from calico_dcos.devcluster.hostroot import set_fault
from calico_dcos.installer import cni, docker
from tests.installer.installer_host import create_agent

ORIGINAL_DAEMON_JSON = {"debug": True, "log-driver": "journald"}


@pytest.fixture(scope="module")
def clean(tmp_path_factory, zipapp, agent_python):
    """Files of a host after one clean docker run, and of another after one clean cni run."""
    directory = tmp_path_factory.mktemp("clean")
    docker_host = create_agent(directory, zipapp, 0, agent_python, daemon_json=ORIGINAL_DAEMON_JSON)
    cni_host = create_agent(directory, zipapp, 1, agent_python)
    assert docker_host.docker().returncode == 0
    assert cni_host.cni().returncode == 0
    return {"docker": docker_host.files(), "cni": cni_host.files()}


@pytest.mark.parametrize("point", docker.CRASH_POINTS)
def test_docker_crash_then_rerun_ends_as_one_clean_run(make_agent, clean, point):
    agent = make_agent(daemon_json=ORIGINAL_DAEMON_JSON)
    if point == "docker:rolled-back":
        set_fault(agent.root, "docker-fails-to-start")

    assert agent.docker(crash_at=point).returncode == 137
    set_fault(agent.root, "docker-fails-to-start", on=False)
    rerun = agent.docker()

    assert rerun.returncode == 0, rerun.stderr
    assert agent.files() == clean["docker"]
    assert agent.unit("docker") == "active"
    assert agent.restarts("docker") >= 1


@pytest.mark.parametrize("point", cni.CRASH_POINTS)
def test_cni_crash_then_rerun_ends_as_one_clean_run(make_agent, clean, point):
    agent = make_agent()

    assert agent.cni(crash_at=point).returncode == 137
    rerun = agent.cni()

    assert rerun.returncode == 0, rerun.stderr
    assert agent.files() == clean["cni"]
    assert agent.unit("dcos-mesos-slave") == "active"
    assert agent.restarts("dcos-mesos-slave") == 1


@pytest.mark.parametrize(
    "step, point", [("docker", "docker:restarted"), ("cni", "cni:agent-restarted")]
)
def test_uninstall_crash_then_rerun_puts_back_the_original_host(make_agent, step, point):
    agent = make_agent(daemon_json=ORIGINAL_DAEMON_JSON)
    original = agent.files()
    assert (agent.docker() if step == "docker" else agent.cni()).returncode == 0
    uninstall = ("uninstall", f"--{step}", "--stability-seconds", "0")

    assert agent.run(*uninstall, crash_at=point).returncode == 137
    rerun = agent.run(*uninstall)

    assert rerun.returncode == 0, rerun.stderr
    assert agent.files() == original
