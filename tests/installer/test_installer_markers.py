"""Every marker is written and read under the same name, at the path operators look at.

The original installer's two guards never tripped because the writer and the reader spelt
the marker differently; these tests pin each marker's path on disk and show that a run reads
what an earlier run wrote there.
"""

from __future__ import annotations

import json

from calico_dcos.installer.hostfs import MARKERS, STATE_DIR, HostRoot

DOCKER_MARKER = "etc/calico/installer/docker-restart"
CNI_MARKER = "etc/calico/installer/cni-agent-restart"


def test_each_marker_round_trips_under_its_own_name(tmp_path):
    host = HostRoot(tmp_path)
    for name in MARKERS:
        host.write_marker(name, {"marker": name})

        assert json.loads((tmp_path / STATE_DIR / name).read_text()) == {"marker": name}
        assert host.read_marker(name) == {"marker": name}
        host.clear_marker(name)
        assert host.read_marker(name) is None
    assert sorted(f"{STATE_DIR}/{name}" for name in MARKERS) == [CNI_MARKER, DOCKER_MARKER]


def test_docker_marker_left_by_a_cut_off_run_makes_the_next_run_restart_docker(agent):
    assert agent.docker(crash_at="docker:daemon-json-written").returncode == 137
    assert "before" in json.loads(agent.path(DOCKER_MARKER).read_text())
    assert agent.restarts("docker") == 0

    rerun = agent.docker()

    assert rerun.returncode == 0, rerun.stderr
    assert "cut off before Docker was back" in rerun.stderr
    assert agent.restarts("docker") == 1
    assert not agent.path(DOCKER_MARKER).exists()


def test_cni_marker_left_by_the_restart_makes_the_next_run_only_wait(agent):
    assert agent.cni(crash_at="cni:agent-restarted").returncode == 137
    assert json.loads(agent.path(CNI_MARKER).read_text())["state"] == "restarted"

    rerun = agent.cni()

    assert rerun.returncode == 0, rerun.stderr
    assert agent.restarts("dcos-mesos-slave") == 1
    assert not agent.path(CNI_MARKER).exists()
