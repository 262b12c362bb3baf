"""The scheduler against a devcluster as strict as Apache Mesos (issue 12): the real scheduler
over pymesos sockets; what Mesos saw read from the devcluster's timeline and books."""

from __future__ import annotations

import logging

from calico_dcos.driver import Driver
from tests.integration.harness import (
    converged,
    events,
    launch_counts,
    running_cluster,
    scheduler_on,
    wait_until,
)

ALL_AT_ONCE = {"rollout_max_concurrent_restarts": "100%"}
DAEMONS = ("calico-libnetwork", "calico-node")


def task_infos(cluster) -> list[dict]:
    """Every TaskInfo the master accepted, as it stored them."""

    def collect() -> list[dict]:
        master = cluster.master
        frameworks = [*master.frameworks.values(), *master.removed_frameworks.values()]
        return [t.info for f in frameworks for t in [*f.tasks.values(), *f.completed_tasks]]

    return cluster.call(collect)


def reservation(resource: dict) -> str:
    reservations = resource.get("reservations") or []
    return reservations[-1]["role"] if reservations else resource.get("role", "*")


def test_private_agents_offered_under_slave_public_are_installed_as_private(tmp_path):
    """The allocator gives private agents' unreserved resources to either role: the plan
    must still take them for private agents (no `--public`), with resources that copy the
    offered reservation (no TASK_ERROR)."""
    with (
        running_cluster(agents=4, public_agents=1, allocation_seed=5) as cluster,
        scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service,
    ):
        wait_until(converged(service), 30, "convergence")
        timeline = cluster.timeline()
        infos = task_infos(cluster)
        records = service.scheduler.agent_records()
        agents = {a.agent_id: a for a in cluster.agents}

    private = {aid for aid, a in agents.items() if not a.public}
    offers = events(timeline, "offer")
    offered_public = {e["agent_id"] for e in offers if e["role"] == "slave_public"}
    assert private & offered_public, "the allocator never varied the role: the test proves nothing"
    assert not [e for e in events(timeline, "status") if e.get("state") == "TASK_ERROR"]
    for aid, agent in agents.items():
        assert records[aid]["public"] is agent.public, agent.hostname
    for info in infos:
        aid = info["agent_id"]["value"]
        if info["name"] == "calico-cni":  # restarts dcos-mesos-slave(-public): --public
            command = info["command"]["value"]
            assert ("--public" in command) is agents[aid].public, (agents[aid].hostname, command)
        expected = "slave_public" if agents[aid].public else "*"
        assert {reservation(r) for r in info["resources"]} == {expected}


def test_a_refused_call_is_logged_declined_and_fails_the_step_and_the_rollout_goes_on(
    tmp_path, caplog
):
    reason = "Failed to validate scheduler::Call: injected for the test"
    caplog.set_level(logging.INFO, logger="calico_dcos")
    with running_cluster(agents=2, public_agents=0) as cluster:
        cluster.refuse_next_call("ACCEPT", 400, reason)
        with scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service:
            refused = wait_until(
                lambda: [e for e in events(cluster.timeline(), "refused") if e["status"] == 400],
                20, "the refusal",
            )  # fmt: skip
            wait_until(lambda: _step_failed_with(service, reason), 10, "the step marked failed")
            wait_until(
                lambda: not any(f["offers"] for f in cluster.state()["frameworks"])
                or _declined_after(cluster, refused[0]["t"]),
                10, "the refused offer declined",
            )  # fmt: skip
            wait_until(lambda: service.scheduler.summary()["message"].startswith("1 of"), 30,
                       "the other agent brought up")  # fmt: skip
    assert any(reason in r.getMessage() for r in caplog.records)


def _step_failed_with(service, reason: str) -> bool:
    records = service.scheduler.agent_records()
    return any(
        reason in (step.get("message") or "")
        for record in records.values()
        for step in (record.get("steps") or {}).values()
    )


def _declined_after(cluster, t: float) -> bool:
    return any(e["t"] > t for e in events(cluster.timeline(), "decline"))


def test_master_failover_with_a_recovery_window_keeps_the_rollout(tmp_path):
    with (
        running_cluster(
            agents=3, public_agents=1, master_recovery_seconds=1.0, agent_reregister_window=2.0
        ) as cluster,
        scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service,
    ):
        wait_until(converged(service), 30, "convergence")
        assert isinstance(service.scheduler.driver, Driver)
        cluster.failover_master()  # the old port redirects (no ZooKeeper here)
        wait_until(
            lambda: len(events(cluster.timeline(), "framework_subscribed")) >= 2, 30,
            "re-subscription to the new master",
        )  # fmt: skip
        wait_until(lambda: cluster.state()["recovered_slaves"] == 0, 10, "agents back")
        wait_until(converged(service), 30, "converged again")
        timeline = cluster.timeline()
        records = service.store.load_agents()
    # Agents not yet re-registered are in /master/slaves' `recovered_slaves`: none was
    # taken for gone when the scheduler asked after re-subscribing.
    assert [r["hostname"] for r in records.values() if r.get("lost_at")] == []
    refusals = [e for e in events(timeline, "refused") if e["status"] == 503]
    assert len(refusals) <= 10, "reconnecting to a recovering master must be bounded"
    assert set(launch_counts(timeline).values()) == {1}, "no step ran twice"


def test_a_partitioned_agent_s_daemons_are_not_launched_twice(tmp_path):
    with (
        running_cluster(agents=2, public_agents=0, agent_ping_timeout=1.0) as cluster,
        scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service,
    ):
        wait_until(converged(service), 30, "convergence")
        agent_id = cluster.agents[0].agent_id
        cluster.partition_agent(agent_id)
        wait_until(lambda: events(cluster.timeline(), "agent_unreachable"), 10, "unreachable")
        wait_until(
            lambda: any(
                e.get("state") == "TASK_UNREACHABLE" for e in events(cluster.timeline(), "status")
            ),
            10, "TASK_UNREACHABLE",
        )  # fmt: skip
        cluster.heal_agent(agent_id)
        wait_until(converged(service), 30, "converged after the heal")
        wait_until(
            lambda: all(
                t["state"] == "TASK_RUNNING"
                for f in cluster.state()["frameworks"] for t in f["tasks"]
                if t["slave_id"] == agent_id
            ),
            10, "the agent's daemons RUNNING again",
        )  # fmt: skip
        timeline = cluster.timeline()
    counts = launch_counts(timeline)
    for name in DAEMONS:
        assert counts[(agent_id, name)] == 1, name


def test_a_replaced_daemon_shows_task_killing(tmp_path):
    """TASK_KILLING_STATE: the command executor says TASK_KILLING when the kill starts."""
    with running_cluster(agents=1, public_agents=0) as cluster:
        with scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service:
            wait_until(converged(service), 30, "convergence")
        with scheduler_on(cluster, tmp_path, node_image="calico/node:v2.6.13") as service:
            wait_until(
                lambda: any(
                    e.get("state") == "TASK_KILLED" and e.get("task_name") == "calico-node"
                    for e in events(cluster.timeline(), "status")
                ),
                30, "the old calico-node killed",
            )  # fmt: skip
            timeline = cluster.timeline()
    node_states = [
        e["state"] for e in events(timeline, "status") if e.get("task_name") == "calico-node"
    ]
    assert node_states.index("TASK_KILLING") < node_states.index("TASK_KILLED")
