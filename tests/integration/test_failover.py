"""Failover behaviour: restarts resume from the store, one leader acts, removal and silence."""

import threading

from tests.integration.harness import (
    converged,
    events,
    launch_counts,
    running_cluster,
    scheduler_on,
    start_scheduler,
    steps_launched,
    wait_until,
)

SLOW_RESTARTS = {"calico-docker": 0.3, "calico-cni": 0.3}
ALL_AT_ONCE = {"rollout_max_concurrent_restarts": "100%"}
DAEMONS = ("calico-libnetwork", "calico-node")


def test_a_restarted_scheduler_resumes_mid_rollout_without_running_a_step_twice(tmp_path):
    with running_cluster(agents=3, public_agents=1, synthetic_durations=SLOW_RESTARTS) as cluster:
        first = start_scheduler(cluster, tmp_path)
        wait_until(lambda: first.scheduler.summary()["message"].startswith("1 of"), 20, "1 done")
        wait_until(lambda: first.scheduler.plan.restarting, 10, "a restart in flight")
        first.stop()

        with scheduler_on(cluster, tmp_path) as second:
            wait_until(converged(second), 30, "convergence after the restart")
            timeline = cluster.timeline()

    subscriptions = events(timeline, "framework_subscribed")
    assert len({e["framework_id"] for e in subscriptions}) == 1 and len(subscriptions) == 2
    assert set(launch_counts(timeline).values()) == {1}
    assert len(launch_counts(timeline)) == 4 * 4


def test_only_the_leader_acts_and_a_waiting_scheduler_takes_over(tmp_path):
    with running_cluster(agents=2, public_agents=0) as cluster:
        first = start_scheduler(cluster, tmp_path, **ALL_AT_ONCE)
        second: list = []
        waiting = threading.Thread(
            target=lambda: second.append(start_scheduler(cluster, tmp_path, **ALL_AT_ONCE))
        )
        waiting.start()
        wait_until(converged(first), 20, "convergence under the first leader")
        assert len(events(cluster.timeline(), "framework_subscribed")) == 1
        assert not second

        first.stop()
        waiting.join(10)
        late = cluster.add_agent()
        try:
            wait_until(converged(second[0]), 20, "convergence under the second leader")
            wait_until(lambda: late.agent_id in second[0].scheduler.plan.agents, 10, "new agent")
            wait_until(converged(second[0]), 20, "the new agent brought up")
            timeline = cluster.timeline()
        finally:
            second[0].stop()

    assert len(events(timeline, "framework_subscribed")) == 2
    assert set(launch_counts(timeline).values()) == {1}
    assert steps_launched(timeline, late.agent_id) == ["docker", "cni", "libnetwork", "node"]


def test_framework_removed_registers_afresh_and_keeps_the_agents_progress(tmp_path):
    quick_removal = {"service_failover_timeout_seconds": "0.5", **ALL_AT_ONCE}
    with running_cluster(agents=2, public_agents=0) as cluster:
        with scheduler_on(cluster, tmp_path, **quick_removal) as first:
            wait_until(converged(first), 20, "first convergence")
            old_id = first.scheduler.plan.framework_id
        wait_until(lambda: events(cluster.timeline(), "framework_removed"), 10, "removal")

        with scheduler_on(cluster, tmp_path, **quick_removal) as second:
            new = lambda: second.scheduler.plan.framework_id not in (None, old_id)  # noqa: E731
            wait_until(new, 10, "a new framework ID")
            wait_until(converged(second), 20, "convergence under the new ID")
            new_id = second.store.get_framework_id()
            timeline = cluster.timeline()

    assert new_id not in (None, old_id)
    for (_, name), count in launch_counts(timeline).items():
        assert count == (2 if name in DAEMONS else 1), name


def test_a_silent_stream_is_taken_as_lost_and_the_scheduler_resubscribes(tmp_path):
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path, heartbeat_timeout=2.0, **ALL_AT_ONCE) as service,
    ):
        wait_until(converged(service), 20, "convergence")
        framework_id = service.scheduler.plan.framework_id
        cluster.silence_framework(framework_id)
        wait_until(
            lambda: len(events(cluster.timeline(), "framework_subscribed")) == 2, 10, "resubscribe"
        )
        late = cluster.add_agent()
        wait_until(lambda: late.agent_id in service.scheduler.plan.agents, 10, "the new agent")
        wait_until(converged(service), 20, "the new agent brought up")
        timeline = cluster.timeline()

    assert {e["framework_id"] for e in events(timeline, "framework_subscribed")} == {framework_id}
    assert set(launch_counts(timeline).values()) == {1}
