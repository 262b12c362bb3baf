"""End to end: the etcd-proxy step for real, through the scheduler and the devcluster.

A real etcd (Debian's etcd-server) on loopback; the devcluster runs its tasks as real
processes, each agent on its own loopback address; the scheduler runs only the etcd-proxy
step, whose etcd comes from a tarball built from the installed binary and fetched through a
`file://` URI. A real etcd v3 client (`etcdctl`) then writes and reads through every agent's
proxy address, and the key is found in the etcd cluster itself.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess

import pytest
import requests

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


def test_a_proxy_that_cannot_bind_says_so_on_the_page_and_in_the_log(tmp_path, caplog):
    """Another program holds the proxy's port on the agent's address: etcd exits 1 saying
    `bind: address already in use` on its stderr, and no installer runs to report it. The
    scheduler reads those words from the agent (`/files/read`) and shows them instead of only
    "Command exited with status 1" (issue 13, case 3). No etcd cluster is needed: the proxy
    fails before it dials one (a documentation address)."""
    tarball = build_etcd_tarball(ETCD_BINARY, tmp_path / "dist", etcd_version(ETCD_BINARY))
    with running_cluster(agents=1, public_agents=0, executor="process") as cluster:
        (agent,) = cluster.agents
        with socket.socket() as taken:
            taken.bind((agent.ip, 0))
            taken.listen()
            port = taken.getsockname()[1]
            with (
                caplog.at_level(logging.INFO, logger="calico_dcos"),
                scheduler_on(
                    cluster, tmp_path, etcd_run_proxy="true", etcd_proxy_mode="v3",
                    etcd_cluster_endpoints="http://192.0.2.10:2379",
                    etcd_binary_uri=tarball.as_uri(), etcd_listen_address="agent-ip",
                    etcd_listen_port=str(port), **ONLY_THE_PROXY,
                ) as service,
            ):  # fmt: skip
                agents_known = service.scheduler.plan.agents

                def proxy():
                    record = agents_known.get(agent.agent_id)
                    return record.steps.get("etcd-proxy") if record else None

                wait_until(lambda: proxy() and proxy().reason, 30, "the proxy's stderr read")
                api = f"http://127.0.0.1:{service.api.port}"
                plan = requests.get(f"{api}/v1/plan", timeout=5).json()
                agents = requests.get(f"{api}/v1/agents", timeout=5).json()

    words = "address already in use"
    assert words in proxy().reason and "(Command exited with status 1)" in proxy().message
    step = next(s for s in plan["phases"][0]["steps"] if s["name"] == "etcd-proxy")
    assert words in step["message"]
    assert words in json.dumps(agents)
    assert any(words in r.getMessage() and "etcd-proxy failed" in r.getMessage()
               for r in caplog.records)  # fmt: skip
