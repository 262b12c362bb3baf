"""Production wiring: state and leader lock in a real ZooKeeper, the master found through it.

ZooKeeper goes away mid-install: the scheduler loses its session, stops acting and exits
non-zero (Marathon would restart it); started again it resumes from ZooKeeper. Then the
master fails over and the scheduler follows the `zk://…/mesos` record.
"""

import pytest

from tests.helpers.zookeeper import ZooKeeperServer
from tests.integration.harness import launch_counts, launches, running_cluster, wait_until
from tests.integration.test_crashes import SLOW_RESTARTS, done, start

pytestmark = pytest.mark.zookeeper


def test_zookeeper_loss_stops_the_scheduler_and_a_restart_resumes_then_master_failover(
    tmp_path,
):
    with (
        ZooKeeperServer() as zk,
        running_cluster(
            agents=2, public_agents=1, synthetic_durations=SLOW_RESTARTS, zk=f"{zk.hosts}/mesos"
        ) as cluster,
    ):
        options = {
            "service_master": f"zk://{zk.hosts}/mesos",
            "service_state": f"zk://{zk.hosts}/calico?session_timeout=4",
        }
        scheduler = start(cluster, tmp_path, **options)
        try:
            wait_until(lambda: len(launches(cluster.timeline())) >= 5, 30, "some launches")
            zk.stop()
            assert scheduler.wait(30) == 1
        finally:
            scheduler.kill()
        zk.start()

        scheduler = start(cluster, tmp_path, **options)
        try:
            wait_until(lambda: done(cluster, 3), 60, "the install finished")
            cluster.failover_master()
            late = cluster.add_agent()
            wait_until(lambda: done(cluster, 4), 60, "the new agent, via the new master")
        finally:
            scheduler.terminate()
            scheduler.wait(10)
        timeline = cluster.timeline()

    assert set(launch_counts(timeline).values()) == {1}
    assert any(e["agent_id"] == late.agent_id for e in launches(timeline))
