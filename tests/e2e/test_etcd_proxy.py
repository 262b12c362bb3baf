"""End to end: the etcd-proxy step for real, through the scheduler and the devcluster.

A real etcd (Debian's etcd-server) on loopback; the devcluster runs its tasks as real
processes, each agent on its own loopback address; the scheduler runs only the etcd-proxy
step, whose etcd comes from a tarball built from the installed binary and fetched through a
`file://` URI. A real etcd v3 client (`etcdctl`) then writes and reads through every agent's
proxy address, and the key is found in the etcd cluster itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from calico_dcos.artifacts import build_etcd_tarball, etcd_version
from calico_dcos.commands.local import ETCD_BINARY, free_port, real_etcd
from tests.integration.harness import converged, running_cluster, scheduler_on, wait_until

pytestmark = pytest.mark.etcd
ONLY_THE_PROXY = {
    "calico_profile": "calico-v3",  # grpc-proxy: the etcd v3 API
    "docker_enable": "false",
    "cni_enable": "false",
    "libnetwork_enable": "false",
    "node_enable": "false",
}


def etcdctl(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("etcdctl"), f"--endpoints={endpoint}", "--dial-timeout=2s", *args],
        capture_output=True, text=True, timeout=20, env=os.environ | {"ETCDCTL_API": "3"},
    )  # fmt: skip


def answers(endpoint: str) -> bool:
    return etcdctl(endpoint, "endpoint", "health").returncode == 0


def test_each_agent_proxies_etcd_v3_on_its_own_address(tmp_path):
    (tmp_path / "etcd").mkdir()
    tarball = build_etcd_tarball(ETCD_BINARY, tmp_path / "dist", etcd_version(ETCD_BINARY))
    port = free_port()
    with (
        real_etcd(tmp_path / "etcd") as cluster_client,
        running_cluster(agents=2, public_agents=1, executor="process") as cluster,
        scheduler_on(
            cluster, tmp_path, etcd_run_proxy="true", etcd_proxy_mode="v3",
            etcd_cluster_endpoints=cluster_client, etcd_binary_uri=tarball.as_uri(),
            etcd_listen_address="agent-ip", etcd_listen_port=str(port), **ONLY_THE_PROXY,
        ) as service,
    ):  # fmt: skip
        wait_until(converged(service), 60, "every agent's proxy running")
        for agent in cluster.agents:
            proxy = f"http://{agent.ip}:{port}"
            wait_until(lambda proxy=proxy: answers(proxy), 30, f"the proxy on {proxy}")
            key = f"/calico-dcos/e2e/{agent.agent_id}"
            value = f"written through {agent.hostname}: spaces, 'quotes' and $(nothing)"

            put = etcdctl(proxy, "put", key, value)
            through_proxy = etcdctl(proxy, "get", "--print-value-only", key)
            in_cluster = etcdctl(cluster_client, "get", "--print-value-only", key)

            assert put.returncode == 0, put.stderr
            assert through_proxy.stdout == in_cluster.stdout == value + "\n"
        timeline = cluster.timeline()

    launched = [e["task_name"] for e in timeline if e["event"] == "launch"]
    assert launched == ["calico-etcd-proxy"] * 3
