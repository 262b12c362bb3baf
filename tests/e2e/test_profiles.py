"""End to end: each profile installs on the devcluster with the real parts that exist here.

Real: the scheduler (pymesos over sockets), the devcluster running every task as a process,
etcd 3.4 (Debian's etcd-server) as the cluster and as each agent's proxy, a DNS server on
loopback (dnslib) answering the SRV record the Universe etcd package publishes, the
installer zipapp under the agents' Python 3.6. Stand-ins, because no Docker engine, systemd
or Calico can run here: `systemctl`, `docker`, calico/node's `start_runit` and health
commands, the CNI plugins and the libnetwork binary (calico_dcos/devcluster/standins/ and
calico_dcos/artifacts.py), each recording how it was called.

The SRV test runs etcd in its own mount namespace whose /etc/resolv.conf names the loopback
DNS server, since etcd (Go) reads its resolver from that file only; the rest of this machine
keeps its own.
"""

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from dnslib import QTYPE, RR, SRV, A, DNSLabel
from dnslib.server import BaseResolver, DNSServer

from calico_dcos.artifacts import build_etcd_tarball, build_libnetwork_standin, etcd_version
from calico_dcos.commands.local import ETCD_BINARY, free_port, real_etcd
from calico_dcos.devcluster.hostroot import read_calls
from calico_dcos.installer import profile
from calico_dcos.options import OptionsError, load_options
from calico_dcos.steps import BY_NAME, AgentView, build_task_info
from tests.integration.harness import (
    cni_standins,
    converged,
    running_cluster,
    scheduler_on,
    wait_until,
)

pytestmark = pytest.mark.etcd
ROOT = Path(__file__).resolve().parents[2]


def sha1_of(uri: str) -> str:
    return "sha1:" + hashlib.sha1(Path(uri[len("file://") :]).read_bytes()).hexdigest()  # noqa: S324


def plugins_with_checksums(out_dir: Path) -> dict[str, str]:
    uris = cni_standins(out_dir)
    return {
        **uris,
        "cni_calico_checksum": sha1_of(uris["cni_calico_uri"]),
        "cni_calico_ipam_checksum": sha1_of(uris["cni_calico_ipam_uri"]),
    }


def calls_of(host_root: Path, tool: str) -> list[list[str]]:
    return [call["argv"] for call in read_calls(host_root) if call["tool"] == tool]


def environments_of(host_root: Path, tool: str) -> list[dict[str, str]]:
    """The environment each call of `tool` recorded (start_runit: calico/node's settings)."""
    return [call["env"] for call in read_calls(host_root) if call["tool"] == tool]


def container_of(host_root: Path, task_name: str) -> dict:
    records = [
        json.loads(path.read_text())
        for path in (Path(host_root) / ".devcluster" / "containers").glob("*.json")
    ]
    return next(r for r in records if r["task_name"] == task_name)


def v2_get(client: str, key: str) -> str | None:
    answer = requests.get(f"{client}/v2/keys{key}", timeout=5)
    return answer.json()["node"]["value"] if answer.ok else None


def v3_get(client: str, key: str) -> str | None:
    encoded = base64.b64encode(key.encode()).decode()
    kvs = requests.post(f"{client}/v3/kv/range", json={"key": encoded}, timeout=5).json()
    found = [base64.b64decode(kv["value"]).decode() for kv in kvs.get("kvs", [])]
    return found[0] if found else None


def installed(agent_root: Path, host_path: str) -> Path:
    return Path(agent_root) / host_path.lstrip("/")


# ---------------------------------------------------------------------------------------
# calico-2.6: the Universe etcd package found by SRV, through each agent's v2 proxy


class EtcdMesos(BaseResolver):
    """Mesos-DNS as the Universe etcd package (etcd-mesos) leaves it: `_etcd-server._tcp.
    etcd.mesos` names the members' peer ports (projectcalico/calico@v2.6.12
    v2.6/getting-started/mesos/installation/dc-os/index.md)."""

    def __init__(self, peer_port: int) -> None:
        self.peer_port = peer_port

    def resolve(self, request, handler):
        reply = request.reply()
        name, qtype = request.q.qname, QTYPE[request.q.qtype]
        if name == DNSLabel("_etcd-server._tcp.etcd.mesos.") and qtype == "SRV":
            target = "etcd-0.etcd.mesos."
            reply.add_answer(RR(name, QTYPE.SRV, rdata=SRV(0, 0, self.peer_port, target), ttl=5))
            reply.add_ar(RR(target, QTYPE.A, rdata=A("127.0.0.1"), ttl=5))
        elif name == DNSLabel("etcd-0.etcd.mesos.") and qtype == "A":
            reply.add_answer(RR(name, QTYPE.A, rdata=A("127.0.0.1"), ttl=5))
        else:
            reply.header.rcode = 3  # NXDOMAIN
        return reply


@contextlib.contextmanager
def dns_on_loopback(resolver: BaseResolver):
    """A DNS server on port 53 of a loopback address of its own; that address."""
    address = f"127.0.53.{os.getpid() % 250 + 1}"
    servers = [DNSServer(resolver, address=address, port=53, tcp=tcp) for tcp in (False, True)]
    for server in servers:
        server.start_thread()
    try:
        yield address
    finally:
        for server in servers:
            server.stop()


class Asked(EtcdMesos):
    """EtcdMesos that remembers every name it was asked for."""

    def __init__(self, peer_port: int) -> None:
        super().__init__(peer_port)
        self.asked: list[str] = []

    def resolve(self, request, handler):
        self.asked.append(f"{request.q.qname} {QTYPE[request.q.qtype]}")
        return super().resolve(request, handler)


def in_mount_namespace(resolv: Path, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run `argv` with /etc/resolv.conf replaced by `resolv` for it (and its children) only."""
    wrapper = [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(resolv), *argv,
    ]  # fmt: skip
    return subprocess.run(wrapper, capture_output=True, text=True, **kwargs)


def test_etcd_3_4_v2_proxy_cannot_find_the_etcd_package_by_srv_so_it_is_refused(tmp_path):
    """The etcd-proxy step's own command, with this machine's etcd 3.4, against a DNS server
    that answers `_etcd-server._tcp.etcd.mesos` as Mesos-DNS does for the etcd package: etcd
    asks for it, gets it, and still fails (matrix.ETCD_SRV_BUG). So the options refuse etcd
    3.4 with SRV discovery, and the default etcd is 3.5."""
    (tmp_path / "etcd").mkdir()
    peer = f"http://127.0.0.1:{free_port()}"
    tarball = build_etcd_tarball(ETCD_BINARY, tmp_path / "dist", etcd_version(ETCD_BINARY))
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    shutil.unpack_archive(tarball, sandbox)
    opts = load_options(
        None, {"CALICO_ETCD_BINARY_URI": "https://example.org/etcd-v3.5.17-linux-amd64.tar.gz"}
    )
    command = build_task_info(
        BY_NAME["etcd-proxy"], opts, AgentView("S0", "agent-1"), "t", "*", "http://s"
    )["command"]["value"].replace("127.0.0.1:2379", f"127.0.0.1:{free_port()}")
    resolver = Asked(int(peer.rsplit(":", 1)[1]))
    with (
        real_etcd(tmp_path / "etcd", enable_v2=True, peer=peer),
        dns_on_loopback(resolver) as nameserver,
    ):
        resolv = tmp_path / "resolv.conf"
        resolv.write_text(f"nameserver {nameserver}\n")
        proxy = in_mount_namespace(resolv, ["sh", "-c", command], cwd=sandbox, timeout=60)

    assert "--discovery-srv=etcd.mesos" in command
    assert proxy.returncode != 0
    assert "error querying DNS SRV records for _etcd-server-ssl" in proxy.stderr
    assert "_etcd-server._tcp.etcd.mesos. SRV" in resolver.asked  # asked, and answered
    with pytest.raises(OptionsError) as refused:
        load_options(None, {"CALICO_ETCD_BINARY_URI": tarball.as_uri()})
    assert "etcd 3.4 finds no _etcd-server._tcp members" in str(refused.value)


def test_calico_2_6_installs_on_etcd_v2_through_each_agents_v2_proxy(tmp_path):
    """etcd 3.4 serving v2 as the etcd package's cluster, its members given statically (the
    SRV path needs etcd 3.5, which this machine does not have: see the test above)."""
    (tmp_path / "etcd").mkdir()
    tarball = build_etcd_tarball(ETCD_BINARY, tmp_path / "dist", etcd_version(ETCD_BINARY))
    peer, port = f"http://127.0.0.1:{free_port()}", free_port()
    with (
        real_etcd(tmp_path / "etcd", enable_v2=True, peer=peer) as etcd,
        running_cluster(agents=2, public_agents=0, executor="process") as cluster,
    ):
        agents = cluster.agents
        proxies = ",".join(f"http://{a.ip}:{port}" for a in agents)
        with scheduler_on(
            cluster, tmp_path, etcd_run_proxy="true", etcd_binary_uri=tarball.as_uri(),
            etcd_cluster_endpoints=peer, etcd_listen_address="agent-ip",
            etcd_listen_port=str(port), etcd_endpoints=proxies,
            calico_default_profile_policy="allow-all", **plugins_with_checksums(tmp_path),
        ) as service:  # fmt: skip
            wait_until(converged(service), 120, "calico-2.6 installed on every agent")
            for agent in agents:  # the v2 API through each agent's proxy
                key = f"/calico-dcos-e2e/{agent.agent_id}"
                through = requests.put(
                    f"http://{agent.ip}:{port}/v2/keys{key}", data={"value": agent.ip}, timeout=5
                )
                assert through.ok, through.text
                assert v2_get(etcd, key) == agent.ip
        rules = json.loads(v2_get(etcd, profile.V2_PREFIX + "calico/rules"))
        assert rules == {
            "inbound_rules": [{"action": "allow"}],
            "outbound_rules": [{"action": "allow"}],
        }
        for agent in agents:
            root = agent.host_root
            config = json.loads(
                installed(root, "/opt/mesosphere/etc/dcos/network/cni/calico.cni").read_text()
            )
            assert (config["cniVersion"], config["etcd_endpoints"]) == ("0.1.0", proxies)
            daemon = json.loads(installed(root, "/etc/docker/daemon.json").read_text())
            assert daemon["cluster-store"] == "etcd://" + proxies.replace("http://", "")
            assert ["restart", "dcos-mesos-slave"] not in calls_of(root, "systemctl")
            node = container_of(root, "calico-node")
            assert node["image"] == "calico/node:v2.6.12"
            assert node["env"]["DATASTORE_TYPE"] == "etcdv2"
            assert environments_of(root, "start_runit")[-1]["IP"] == agent.ip
            readiness = ["-q", "-O", "/dev/null", "http://localhost:9099/readiness"]
            assert readiness in calls_of(root, "wget")
            libnetwork = container_of(root, "calico-libnetwork")
            assert libnetwork["image"] == "calico/libnetwork-plugin:v1.1.3"


# ---------------------------------------------------------------------------------------
# calico-v3: an etcd v3 cluster given by endpoints, serving v2 too (as DC/OS 2.x's)


def test_calico_v3_installs_on_an_etcd_v3_cluster_given_by_endpoints(tmp_path):
    (tmp_path / "etcd").mkdir()
    tarball = build_etcd_tarball(ETCD_BINARY, tmp_path / "dist", etcd_version(ETCD_BINARY))
    libnetwork = build_libnetwork_standin(tmp_path / "dist")
    port = free_port()
    with (
        real_etcd(tmp_path / "etcd", enable_v2=True) as etcd,
        running_cluster(agents=2, public_agents=0, executor="process") as cluster,
    ):
        agents = cluster.agents
        proxies = ",".join(f"http://{a.ip}:{port}" for a in agents)
        with scheduler_on(
            cluster, tmp_path, calico_profile="calico-v3", etcd_cluster_endpoints=etcd,
            etcd_cluster_serves_v2="true", etcd_run_proxy="true",
            etcd_binary_uri=tarball.as_uri(), etcd_listen_address="agent-ip",
            etcd_listen_port=str(port), etcd_endpoints=proxies,
            calico_ipv4pool_encapsulation="vxlan", calico_default_profile_policy="allow-all",
            libnetwork_binary_uri=libnetwork.as_uri(), **plugins_with_checksums(tmp_path),
        ) as service:  # fmt: skip
            wait_until(converged(service), 120, "calico-v3 installed on every agent")
            for agent in agents:  # the v3 API through each agent's grpc-proxy
                put = subprocess.run(
                    [shutil.which("etcdctl"), f"--endpoints={agent.ip}:{port}", "put",
                     f"/calico-dcos-e2e/{agent.agent_id}", agent.ip],
                    capture_output=True, text=True, timeout=20,
                    env={**os.environ, "ETCDCTL_API": "3"},
                )  # fmt: skip
                assert put.returncode == 0, put.stderr
                assert v3_get(etcd, f"/calico-dcos-e2e/{agent.agent_id}") == agent.ip
            plugin_out = {
                a.agent_id: [
                    (s / "stdout").read_text()
                    for s in (cluster.workdir / "agents" / a.agent_id / "sandboxes").iterdir()
                    if "libnetwork" in s.name
                ]
                for a in agents
            }
        stored = json.loads(v3_get(etcd, profile.V3_PREFIX + "calico"))

        assert stored["kind"] == "Profile" and stored["spec"]["labelsToApply"] == {"calico": ""}
        host = etcd.replace("http://", "")
        for agent in agents:
            root = agent.host_root
            config = json.loads(
                installed(root, "/opt/mesosphere/etc/dcos/network/cni/calico.cni").read_text()
            )
            assert config["cniVersion"] == "0.1.0"
            daemon = json.loads(installed(root, "/etc/docker/daemon.json").read_text())
            assert daemon["cluster-store"] == f"etcd://{host}"  # the cluster, not the grpc-proxy
            node = container_of(root, "calico-node")
            assert node["image"] == "calico/node:v3.14.0"
            assert node["env"]["CALICO_IPV4POOL_VXLAN"] == "always"
            assert node["env"]["CALICO_NETWORKING_BACKEND"] == "vxlan"
            assert environments_of(root, "start_runit")[-1]["IP"] == agent.ip
            assert ["-felix-ready"] in calls_of(root, "calico-node")
            assert any(
                "CALICO_LIBNETWORK_NAMESPACE=default" in out for out in plugin_out[agent.agent_id]
            )


# ---------------------------------------------------------------------------------------
# calico-node's health: done once ready, killed only when no longer live


NODE_ONLY = {
    "calico_profile": "calico-v3",
    "etcd_cluster_endpoints": "http://127.0.0.1:9",
    "etcd_run_proxy": "false",
    "docker_enable": "false",
    "cni_enable": "false",
    "libnetwork_enable": "false",
}


def test_node_is_done_when_ready_and_killed_only_when_not_live(tmp_path):
    from calico_dcos.devcluster.hostroot import set_fault

    with running_cluster(agents=1, public_agents=0, executor="process") as cluster:
        root = cluster.agents[0].host_root
        set_fault(root, "calico-node-unready", True)
        with scheduler_on(cluster, tmp_path, **NODE_ONLY) as service:
            wait_until(lambda: calls_of(root, "calico-node"), 30, "a first readiness probe")
            wait_until(lambda: len(calls_of(root, "calico-node")) >= 3, 30, "more probes")
            assert not service.scheduler.plan.complete  # live but never ready: not done

            set_fault(root, "calico-node-unready", False)
            wait_until(converged(service), 30, "done once ready")
            probes = len(calls_of(root, "calico-node"))
            set_fault(root, "calico-node-unready", True)  # an etcd blip: not ready, still live
            wait_until(lambda: len(calls_of(root, "calico-node")) >= probes + 8, 30, "probes")
            assert len(launches(cluster)) == 1  # not killed

            set_fault(root, "calico-node-dead", True)
            wait_until(lambda: len(launches(cluster)) >= 2, 30, "killed and launched again")


def launches(cluster) -> list[dict]:
    return [e for e in cluster.timeline() if e["event"] == "launch"]
