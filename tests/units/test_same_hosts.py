"""Both paths give the same hosts: the framework's installer steps on devcluster agents, and
install.sh on fresh simulated hosts, from one set of options, leave the same daemon.json, the
same CNI plugins and network config, and the same installer backups and markers.

The framework path is the real scheduler against the devcluster with the process executor
(pymesos over loopback sockets); both paths use the devcluster's host stand-ins.
"""

import json

from calico_dcos.commands.units import build
from tests.integration.harness import (
    cni_standins,
    converged,
    options_env,
    running_cluster,
    scheduler_on,
    wait_until,
)
from tests.units.manual_host import Host

# What the docker and cni steps write, and the installer's own state.
COMPARED = (
    "etc/docker",
    "opt/mesosphere/active/cni",
    "opt/mesosphere/etc/dcos/network/cni",
    "etc/calico/installer",
)


def installer_files(snapshot: dict) -> dict:
    return {path: entry for path, entry in snapshot.items() if path.startswith(COMPARED)}


def test_install_sh_leaves_the_same_files_and_markers_as_the_framework(tmp_path):
    cni = cni_standins(tmp_path / "cni")
    with (
        running_cluster(agents=1, public_agents=1, executor="process") as cluster,
        scheduler_on(cluster, tmp_path / "framework", **cni) as service,
    ):
        wait_until(converged(service), 60, "convergence")
        master_url = cluster.master_url
        framework = {
            agent.public: installer_files(Host.snapshot_of(agent.host_root))
            for agent in cluster.agents
        }
    env = options_env(tmp_path / "unused-state", master_url, **cni)

    for public in (False, True):
        bundle = tmp_path / f"bundle-{public}"
        build(None, bundle, public, environ=env)
        host = Host(tmp_path / f"host-{public}", public=public)
        result = host.run(bundle / "install.sh")
        assert result.returncode == 0, result.stderr
        manual = installer_files(host.snapshot())
        assert json.loads(manual["etc/docker/daemon.json"][2]) == {
            "cluster-store": "etcd://localhost:2379"
        }
        assert any(path.endswith("calico.cni") for path in manual)
        assert any(path.startswith("etc/calico/installer/backups/cni") for path in manual)
        assert manual == framework[public]
