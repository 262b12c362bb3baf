"""A scheduler process follows a master failover found through ZooKeeper, and refuses to start
on corrupt state, naming where it is and leaving it as it was."""

from __future__ import annotations

from kazoo.client import KazooClient

from tests.failover.harness import (
    SchedulerProcess,
    first,
    scheduler_env,
    unexplained_relaunches,
)
from tests.helpers.devcluster import running_cluster, wait_until

DURATIONS = {"calico-docker": 0.4, "calico-cni": 0.4}
CORRUPT = b'{"agent_id": "a1b2-S0", "steps": {"cni"'


def test_master_failover_mid_install_is_followed_through_zookeeper(tmp_path, zookeeper):
    mesos_zk = f"{zookeeper.hosts}/mesos"
    with running_cluster(
        agents=3, public_agents=1, synthetic_durations=DURATIONS, zk=mesos_zk
    ) as cluster:
        env = scheduler_env(tmp_path, f"zk://{mesos_zk}", rollout_max_concurrent_restarts="100%")
        scheduler = SchedulerProcess(env, tmp_path / "scheduler.log")
        try:
            wait_until(lambda: first(cluster.timeline(), "launch", task_name="calico-cni"), 20)
            cluster.failover_master(old_master="gone")  # only ZooKeeper knows the new one
            scheduler.wait_installed([a.agent_id for a in cluster.agents], 40)
        finally:
            scheduler.stop()
        timeline = cluster.timeline()

    subscribed = [e["framework_id"] for e in timeline if e["event"] == "framework_subscribed"]
    assert len(subscribed) >= 2 and len(set(subscribed)) == 1
    assert unexplained_relaunches(timeline) == []


def run_on_state(tmp_path, state: str) -> tuple[int, str]:
    """Start a scheduler on `state` (no master is reached) and return its exit code and log."""
    env = scheduler_env(tmp_path, "127.0.0.1:1", service_state=state)
    scheduler = SchedulerProcess(env, tmp_path / "scheduler.log")
    code = scheduler.process.wait(timeout=30)
    return code, scheduler.log_path.read_text()


def test_a_corrupt_agent_file_of_the_old_layout_stops_the_scheduler_naming_the_file(tmp_path):
    """The file store's previous layout (a file per record) is imported when the store opens;
    a file it cannot parse stops the import, and the scheduler, before anything changes."""
    record = tmp_path / "state" / "agents" / "a1b2-S0.json"
    record.parent.mkdir(parents=True)
    record.write_bytes(CORRUPT)

    code, log = run_on_state(tmp_path, str(tmp_path / "state"))

    assert code != 0
    assert f"state at {record} is unreadable or corrupt" in log
    assert record.read_bytes() == CORRUPT


def test_a_corrupt_agent_znode_stops_the_scheduler_naming_the_znode(tmp_path, zookeeper):
    node = "/calico-dcos/agents/a1b2-S0"
    client = KazooClient(hosts=zookeeper.hosts)
    client.start(timeout=10)
    client.create(node, CORRUPT, makepath=True)

    code, log = run_on_state(tmp_path, f"zk://{zookeeper.hosts}/calico-dcos")

    assert code != 0
    assert f"state at {node} is unreadable or corrupt" in log
    assert client.get(node)[0] == CORRUPT
    client.stop()
    client.close()
