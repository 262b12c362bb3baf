"""The devcluster's tasks run as this machine's user (often root): the full chain, with the
agents' Python being the bare interpreter, must change only the agents' host roots.

The process executor sets CALICO_INSTALLER_HOST_ROOT for every task and the installer's
`--host-root` defaults to it; without that, the docker and cni steps would write this
machine's /etc/docker/daemon.json, /opt/mesosphere and /etc/calico.
"""

import json
import os
from pathlib import Path

from tests.integration.harness import (
    cni_standins,
    converged,
    running_cluster,
    scheduler_on,
    wait_until,
)

GUARDED = ("/etc/docker", "/etc/calico", "/opt/mesosphere", "/etc/cni")


def snapshot(top: str) -> dict[str, tuple[int, int]] | None:
    """Every file below `top` with its size and mtime; None when `top` does not exist."""
    if not os.path.lexists(top):
        return None
    found = {}
    for directory, _, files in os.walk(top):
        for name in [".", *files]:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            found[path] = (status.st_size, status.st_mtime_ns)
    return found


def test_full_chain_on_process_executor_changes_nothing_outside_the_workdir(tmp_path):
    before = {top: snapshot(top) for top in GUARDED}
    with (
        running_cluster(
            agents=1, public_agents=1, executor="process", workdir=tmp_path / "cluster"
        ) as cluster,
        scheduler_on(
            cluster, tmp_path, rollout_max_concurrent_restarts="100%", **cni_standins(tmp_path)
        ) as service,
    ):
        wait_until(converged(service), 30, "convergence")
        agents = cluster.agents

    assert {top: snapshot(top) for top in GUARDED} == before
    for agent in agents:
        daemon_json = json.loads((agent.host_root / "etc/docker/daemon.json").read_text())
        assert "cluster-store" in daemon_json
        assert (Path(agent.host_root) / "opt/mesosphere/active/cni/calico").exists()
