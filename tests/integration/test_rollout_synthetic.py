"""Rollout rules, real scheduler over sockets, on the devcluster's synthetic executor (fast)."""

import pytest

from calico_dcos.options import load_options
from tests.integration.harness import (
    converged,
    events,
    launches,
    most_restarting_at_once,
    options_env,
    running_cluster,
    scheduler_on,
    steps_launched,
    wait_until,
)

CHAIN = ["etcd-proxy", "docker", "cni", "libnetwork", "node"]
SLOW_RESTARTS = {"calico-docker": 0.25, "calico-cni": 0.25}
ALL_AT_ONCE = {"rollout_max_concurrent_restarts": "100%"}


def test_every_agent_runs_the_enabled_steps_in_order(tmp_path):
    with (
        running_cluster(agents=3, public_agents=1) as cluster,
        scheduler_on(cluster, tmp_path, etcd_run_proxy="true") as service,
    ):
        wait_until(converged(service), 20, "convergence")
        timeline, agents = cluster.timeline(), cluster.agents

    assert len(agents) == 4
    for agent in agents:
        assert steps_launched(timeline, agent.agent_id) == CHAIN


def test_disabled_steps_never_launch(tmp_path):
    with (
        running_cluster(agents=2, public_agents=1) as cluster,
        scheduler_on(cluster, tmp_path, docker_enable="false", libnetwork_enable="false") as svc,
    ):
        wait_until(converged(svc), 20, "convergence")
        timeline, agents = cluster.timeline(), cluster.agents

    for agent in agents:
        assert steps_launched(timeline, agent.agent_id) == ["cni", "node"]


@pytest.mark.parametrize(("budget", "most"), [("1", 1), ("50%", 3)])
def test_restart_budget_never_exceeded_with_six_agents(tmp_path, budget, most):
    with (
        running_cluster(agents=5, public_agents=1, synthetic_durations=SLOW_RESTARTS) as cluster,
        # The cni step restarts the agent (as on Mesos < 1.2): both steps spend the budget.
        scheduler_on(
            cluster, tmp_path, rollout_max_concurrent_restarts=budget, cni_restart_agent="true"
        ) as service,
    ):
        wait_until(converged(service), 40, "convergence")
        timeline = cluster.timeline()

    assert most_restarting_at_once(timeline) == most
    assert len(launches(timeline)) == 6 * 4


def test_a_changed_option_reruns_only_the_affected_steps_on_each_agent(tmp_path):
    with (
        running_cluster(agents=3, public_agents=1) as cluster,
        scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service,
    ):
        wait_until(converged(service), 20, "convergence")
        before = len(cluster.timeline())
        env = options_env(
            tmp_path / "state", cluster.master_url, node_image="calico/node:v2.6.11", **ALL_AT_ONCE
        )
        service.scheduler.change_options(load_options(None, env))
        wait_until(lambda: not service.scheduler.plan.complete or None, 5, "the change")
        wait_until(converged(service), 20, "convergence after the change")
        after = cluster.timeline()[before:]
        agents = cluster.agents

    for agent in agents:
        assert steps_launched(after, agent.agent_id) == ["node"]
        kinds = [e["event"] for e in after if e.get("agent_id") == agent.agent_id]
        assert kinds.index("kill") < kinds.index("launch")


def test_a_failing_oneshot_is_retried_with_growing_delay(tmp_path):
    with running_cluster(agents=1, public_agents=0) as cluster:
        for _ in range(3):
            cluster.fail_next_task("calico-docker", "docker did not come back")
        with scheduler_on(cluster, tmp_path, rollout_retry_backoff_seconds="0.4") as service:
            wait_until(converged(service), 30, "convergence")
            timeline = cluster.timeline()

    starts = [e["t"] for e in launches(timeline) if e["task_name"] == "calico-docker"]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 4
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8 and gaps[2] >= 1.6
    assert gaps[0] < gaps[1] < gaps[2]


def test_an_agent_added_later_is_brought_up(tmp_path):
    with (
        running_cluster(agents=2, public_agents=1) as cluster,
        scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service,
    ):
        wait_until(converged(service), 20, "convergence")
        late = cluster.add_agent()
        wait_until(lambda: late.agent_id in service.scheduler.plan.agents, 10, "its offer")
        wait_until(converged(service), 20, "convergence with the new agent")
        timeline = cluster.timeline()

    assert steps_launched(timeline, late.agent_id) == ["docker", "cni", "libnetwork", "node"]


def test_the_tail_is_paced_by_revives_not_by_allocation_rounds(tmp_path):
    """Rounds a minute apart, and the scheduler's periodic tick too: only REVIVEs bring each
    next step's offer (a step's successor waits for the unused part of its ACCEPT, offered
    again at the next round). They are spaced by 1 s, so most wait for the tick the plan
    asks for at its window's end (`wake_at`), not for the periodic one: converging within
    30 s proves both (their spacing as the master sees it varies with the sender's latency)."""
    timings = {"allocation_interval_seconds": 60.0, "revive_interval_seconds": 1.0}
    with (
        running_cluster(agents=1, public_agents=0, allocation_interval=60.0) as cluster,
        scheduler_on(cluster, tmp_path, timings=timings, tick_seconds=60.0) as service,
    ):
        wait_until(converged(service), 30, "convergence long before a second round")
        timeline, (agent,) = cluster.timeline(), cluster.agents

    assert steps_launched(timeline, agent.agent_id) == CHAIN[1:]  # the proxy is off here
    # the subscription's, then at least one that brought a later step's offer (how many
    # more depends on whether an offer came while a step still ran, to be held)
    revives = [e for e in events(timeline, "call") if e.get("type") == "REVIVE"]
    assert len(revives) >= 2
