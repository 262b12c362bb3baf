"""Agents that look like DC/OS 2.x, which ships Calico as its own systemd units."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests

from calico_dcos.devcluster.hostroot import has_dcos_calico
from tests.helpers.devcluster import running_cluster


def test_dcos_calico_agents_come_after_the_others_with_calico_shipped():
    with running_cluster(agents=1, public_agents=1, dcos_calico_agents=2) as cluster:
        agents = cluster.agents
        shipped = [(a.hostname, a.public) for a in agents if has_dcos_calico(a.host_root)]

    assert [a.hostname for a in agents] == ["agent-1", "public-agent-1", "agent-2", "agent-3"]
    assert shipped == [("agent-2", False), ("agent-3", False)]


def test_an_agent_added_over_http_can_have_calico_shipped(cluster):
    url = f"{cluster.base_url}/devcluster/agents"

    added = requests.post(url, json={"dcos_calico": True}).json()
    plain = requests.post(url, json={}).json()

    assert has_dcos_calico(added["host_root"]) and not has_dcos_calico(plain["host_root"])


def test_devcluster_command_lists_its_dcos_calico_agents(tmp_path):
    argv = [
        sys.executable, "-m", "calico_dcos.cli", "devcluster", "--port", "0",
        "--executor", "synthetic", "--agents", "1", "--public-agents", "0",
        "--dcos-calico-agents", "1", "--workdir", str(tmp_path),
    ]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as command:
        lines = [command.stdout.readline() for _ in range(4)]
        command.send_signal(signal.SIGINT)
        assert command.wait(10) == 0

    agents = [line.split()[0] for line in lines[2:] if "DC/OS Calico" in line]
    assert agents == ["agent-2"]
