"""Issue 13 §3, the installer's side, through the whole chain: an agent whose dockerd already
has a cluster store from a flag (no daemon.json) is not edited, Docker is not restarted, and
the step ends at its first attempt, where it used to make dockerd refuse to start and be
retried for ever with two Docker restarts each time.

The agent's docker unit and its flag are modelled by the host stand-ins (no systemd can run
here); the real engine's answer to the same flag is in
tests/installer/test_installer_docker_engine.py.
"""

from tests.integration.harness import (
    cni_standins,
    converged,
    launch_counts,
    running_cluster,
    scheduler_on,
    wait_until,
)
from tests.integration.test_rollout_process import calls

FLAG_STORE = "etcd://192.0.2.5:2379"


def test_a_cluster_store_from_a_dockerd_flag_is_left_alone_at_the_first_attempt(tmp_path):
    only_oneshots = {"node_enable": "false", "libnetwork_enable": "false"}
    with running_cluster(agents=1, public_agents=0, executor="process") as cluster:
        flagged = cluster.add_agent(docker_flags=["--cluster-store", FLAG_STORE])
        standins = cni_standins(tmp_path / "cni")
        with scheduler_on(cluster, tmp_path, **only_oneshots, **standins) as service:
            wait_until(converged(service), 60, "convergence")
            timeline = cluster.timeline()
            host_calls = calls(flagged.host_root)
            daemon_json = (flagged.host_root / "etc" / "docker" / "daemon.json").exists()

    assert launch_counts(timeline)[(flagged.agent_id, "calico-docker")] == 1
    assert ["docker", "info", "--format", "{{json .}}"] in host_calls
    assert ["systemctl", "restart", "docker"] not in host_calls
    assert not daemon_json
