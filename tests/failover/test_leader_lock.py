"""The leader lock in ZooKeeper: one scheduler acts at a time; a dead leader hands over; a
scheduler whose ZooKeeper session expires stops and, restarted, resumes the install."""

from __future__ import annotations

from pathlib import Path

from tests.failover.harness import (
    SchedulerProcess,
    first,
    scheduler_env,
    unexplained_relaunches,
)
from tests.helpers.devcluster import running_cluster, wait_until

DURATIONS = {"calico-docker": 0.4, "calico-cni": 0.4}


def zk_env(tmp_path: Path, cluster, zookeeper) -> dict[str, str]:
    """A short session so that a killed leader's lock passes on within seconds."""
    state = f"zk://{zookeeper.hosts}/calico-dcos?session_timeout=2"
    return scheduler_env(
        tmp_path, cluster.master_url, service_state=state, rollout_max_concurrent_restarts="100%"
    )


def subscriptions(timeline: list[dict]) -> list[str]:
    return [e["framework_id"] for e in timeline if e["event"] == "framework_subscribed"]


def test_a_second_scheduler_waits_and_takes_over_when_the_leader_is_killed(tmp_path, zookeeper):
    with running_cluster(agents=3, public_agents=1, synthetic_durations=DURATIONS) as cluster:
        env = zk_env(tmp_path, cluster, zookeeper)
        leader = SchedulerProcess(env, tmp_path / "leader.log")
        wait_until(leader.serving, 20, "the first scheduler to lead")
        standby = SchedulerProcess(env, tmp_path / "standby.log")
        wait_until(lambda: "waiting to be the leader" in standby.log_path.read_text(), 20)
        wait_until(lambda: first(cluster.timeline(), "launch", task_name="calico-cni"), 20)

        assert not standby.serving()
        assert len(subscriptions(cluster.timeline())) == 1
        leader.kill()
        agents = [a.agent_id for a in cluster.agents]
        try:
            wait_until(lambda: len(subscriptions(cluster.timeline())) == 2, 40,
                       "the standby to take over")  # fmt: skip
            standby.wait_installed(agents, 40)
        finally:
            standby.stop()
        timeline = cluster.timeline()

    (framework_id, again) = subscriptions(timeline)
    assert again == framework_id
    assert unexplained_relaunches(timeline) == []


def test_zookeeper_outage_stops_the_scheduler_and_a_restart_resumes(tmp_path, zookeeper):
    with running_cluster(agents=3, public_agents=1, synthetic_durations=DURATIONS) as cluster:
        env = zk_env(tmp_path, cluster, zookeeper)
        scheduler = SchedulerProcess(env, tmp_path / "scheduler-1.log")
        wait_until(lambda: first(cluster.timeline(), "launch", task_name="calico-cni"), 20)

        zookeeper.stop()
        assert scheduler.process.wait(timeout=20) == 1, "a scheduler without its lock went on"
        zookeeper.start()
        agents = [a.agent_id for a in cluster.agents]
        restarted = SchedulerProcess(env, tmp_path / "scheduler-2.log")  # as Marathon would
        try:
            restarted.wait_installed(agents, 40)
        finally:
            restarted.stop()
        timeline = cluster.timeline()

    assert "lost the leader lock" in scheduler.log_path.read_text()
    assert unexplained_relaunches(timeline) == []
