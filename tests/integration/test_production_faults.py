"""What production Mesos clusters do to schedulers (issue 21), each case against the
devcluster over sockets, with the fault it needs injected there: a KILL lost in flight, a
task held in STAGING, an agent too small for the chain, attributes that change under the
same agent ID, and a wall clock that jumps."""

import logging
import time

import pytest
import requests

from tests.integration.harness import (
    converged,
    events,
    launches,
    running_cluster,
    scheduler_on,
    steps_launched,
    wait_until,
)


def plan_step(service, hostname: str, step: str) -> dict | None:
    """The step of the agent's phase on /v1/plan, as an operator reads it."""
    url = f"http://127.0.0.1:{service.api.port}/v1/plan"
    phases = requests.get(url, timeout=5).json()["phases"]
    phase = next((p for p in phases if p["name"] == hostname), None)
    return phase and next((s for s in phase["steps"] if s["name"] == step), None)


def test_a_lost_kill_is_sent_again_until_mesos_confirms_the_end(tmp_path):
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path) as service,
    ):
        wait_until(converged(service), 20, "convergence")
        agent_id = cluster.agents[0].agent_id
        old = service.scheduler.plan.agents[agent_id].steps["node"].task_id
        cluster.lose_next_kill("calico-node")

        service.scheduler.command("restart", agent_id, "node")  # replace calico-node

        def replaced() -> bool:
            now = service.scheduler.plan.agents[agent_id].steps["node"].task_id
            return now != old and service.scheduler.plan.complete

        wait_until(replaced, 20, "calico-node replaced although its first KILL was lost")
        timeline = cluster.timeline()

    kills = [e for e in events(timeline, "kill") if e["task_id"] == old]
    assert [e["task_id"] for e in events(timeline, "kill_lost")] == [old]
    assert len(kills) >= 2  # the lost one, then again until Mesos confirmed


def test_a_launch_that_never_leaves_staging_is_killed_and_retried(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="calico_dcos.scheduler")
    with running_cluster(agents=1, public_agents=0) as cluster:
        cluster.hold_next_task("calico-libnetwork")
        with scheduler_on(cluster, tmp_path, timings={"launch_timeout_seconds": 1.0}) as service:
            wait_until(converged(service), 30, "convergence after the held launch")
            timeline, agent_id = cluster.timeline(), cluster.agents[0].agent_id
            record = service.scheduler.agent_records()[agent_id]

    held = events(timeline, "launch_held")[0]["task_id"]
    assert held in [e["task_id"] for e in events(timeline, "kill")]
    assert steps_launched(timeline, agent_id).count("libnetwork") == 2
    assert record["steps"]["libnetwork"]["attempts"] == 2
    assert any(
        r.getMessage().endswith("libnetwork still TASK_STAGING after 1 s: killed")
        for r in caplog.records
    )


def test_an_agent_that_cannot_hold_the_whole_chain_is_not_restarted_for_nothing(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="calico_dcos.scheduler")
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path, etcd_run_proxy="true") as service,
    ):
        wait_until(converged(service), 20, "convergence of the agent that fits")
        small = cluster.add_agent(cpus=0.35)  # the chain needs 0.1 + 0.1 + 0.2 at its peak
        expected = (
            f"{small.hostname} can give Calico 0.35 cpus, the whole chain needs 0.4 "
            "(0.05 short): nothing restarted until it fits"
        )

        def explained() -> dict | None:
            step = plan_step(service, small.hostname, "docker")
            return step if step and step["message"] == expected else None

        step = wait_until(explained, 15, "the shortfall on /v1/plan")
        offers = len(events(cluster.timeline(), "offer"))
        wait_until(lambda: len(events(cluster.timeline(), "offer")) > offers + 3, 10)
        timeline = cluster.timeline()

    assert step["status"] == "PREPARED"
    assert steps_launched(timeline, small.agent_id) == ["etcd-proxy"]  # no Docker restart
    assert [r.getMessage() for r in caplog.records if "whole chain" in r.getMessage()] == [expected]


def test_attributes_an_agent_gains_under_the_same_id_are_read_from_its_offers(tmp_path):
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(
            cluster,
            tmp_path,
            timings={"unwanted_refuse_seconds": 0.5},
            agents_constraints="rack:LIKE:r[12]",
        ) as service,
    ):
        agent_id = cluster.agents[0].agent_id
        wait_until(lambda: agent_id in service.scheduler.plan.agents, 10, "its first offer")
        assert not launches(cluster.timeline(), agent_id)  # no rack: not wanted

        cluster.set_agent_attributes(agent_id, {"rack": "r2"})

        wait_until(converged(service), 20, "Calico on the agent that gained rack=r2")
        assert steps_launched(cluster.timeline(), agent_id) == [
            "docker",
            "cni",
            "libnetwork",
            "node",
        ]


@pytest.mark.parametrize("jump", [-3600.0, 3600.0])
def test_a_step_of_the_wall_clock_does_not_stop_a_relaunch(tmp_path, jump):
    stepped = []

    def wall_clock() -> float:  # what the scheduler is given as the time of day
        return time.time() + (jump if stepped else 0.0)

    with running_cluster(agents=1, public_agents=0) as cluster:
        cluster.fail_next_task("calico-node")
        with scheduler_on(cluster, tmp_path, clock=wall_clock) as service:
            failed = lambda: [  # noqa: E731
                e for e in events(cluster.timeline(), "status") if e["state"] == "TASK_FAILED"
            ]
            wait_until(failed, 20, "calico-node's first launch to fail")
            stepped.append(jump)  # NTP steps the clock, or the VM resumes

            wait_until(converged(service), 10, "calico-node relaunched after the backoff")


def test_a_refused_subscription_backs_off_says_why_once_and_ends_in_a_bounded_time(
    tmp_path, caplog
):
    """A principal added to a framework registered without one: the master refuses every
    subscription (an ERROR event, then it closes the stream), as real Mesos does."""
    caplog.set_level(logging.INFO, logger="calico_dcos.scheduler")
    reason = "Changing framework's principal is not allowed."
    with running_cluster(agents=1, public_agents=0) as cluster:
        with scheduler_on(cluster, tmp_path) as first:
            wait_until(converged(first), 20, "convergence without a principal")
        subscribes = len(
            [e for e in events(cluster.timeline(), "call") if e["type"] == "SUBSCRIBE"]
        )

        with scheduler_on(
            cluster, tmp_path, refusal_timeout=3.0, service_principal="calico"
        ) as second:
            health = wait_until(
                lambda: second.scheduler.refusal and second.scheduler.health(), 10, "a refusal"
            )
            wait_until(lambda: second.scheduler.failure, 10, "the scheduler to give up")
            failure = second.scheduler.failure
        calls = [e for e in events(cluster.timeline(), "call") if e["type"] == "SUBSCRIBE"]

    assert health == ("waiting", [f"the master refuses the subscription: {reason}"])
    assert failure.startswith("the master refused the subscription for ") and reason in failure
    assert 2 <= len(calls) - subscribes <= 5  # 1 s, 2 s … apart; pymesos alone: hundreds
    said = [r for r in caplog.records if r.getMessage().startswith("the master refuses")]
    assert len(said) == 1


def test_an_agent_removed_while_the_scheduler_was_down_leaves_the_plan_and_its_record_goes(
    tmp_path,
):
    with running_cluster(agents=2, public_agents=0) as cluster:
        with scheduler_on(cluster, tmp_path) as first:
            wait_until(converged(first), 20, "convergence on two agents")
        gone = cluster.agents[1].agent_id
        cluster.remove_agent(gone)  # while no scheduler runs

        retention = {"gone_retention_seconds": 1.0}
        with scheduler_on(cluster, tmp_path, timings=retention) as second:
            wait_until(converged(second), 20, "the plan complete without the removed agent")
            assert second.scheduler.summary()["message"].startswith("1 of 1 agents done")
            wait_until(lambda: gone not in second.store.load_agents(), 10, "its record deleted")


def test_lost_state_never_gives_a_second_framework(tmp_path):
    """The state is lost (a new state directory) while the framework's tasks run on: the
    new scheduler refuses, naming the framework; told to replace it, it takes over its ID."""
    with running_cluster(agents=1, public_agents=0) as cluster:
        with scheduler_on(cluster, tmp_path / "first") as first:
            wait_until(converged(first), 20, "convergence")
            old = first.scheduler.framework_id()

        with scheduler_on(cluster, tmp_path / "lost") as refused:
            wait_until(lambda: refused.scheduler.failure, 20, "the refusal")
            failure = refused.scheduler.failure
        launched = len(launches(cluster.timeline()))

        with scheduler_on(
            cluster, tmp_path / "again", service_existing_framework="replace"
        ) as taker:
            wait_until(converged(taker), 30, "convergence under the old framework ID")
            taken = taker.scheduler.framework_id()
        state, timeline = cluster.state(), cluster.timeline()

    assert failure.startswith(f"the master still runs framework {old} named 'calico'")
    assert "service.existing_framework" in failure
    assert taken == old
    assert [f["id"] for f in state["frameworks"]] == [old]  # the refused one is torn down
    assert len(launches(timeline)) > launched  # the plan ran afresh …
    running = [t for f in state["frameworks"] for t in f["tasks"] if t["state"] == "TASK_RUNNING"]
    names = [t["name"] for t in running]
    assert sorted(names) == sorted(set(names))  # … with one copy of each daemon


def test_an_offer_rescinded_while_the_plan_holds_it_is_never_accepted(tmp_path):
    """The master rescinds every offer kept longer than `--offer_timeout` (0.3 s here); the
    plan holds an agent's offer while calico-libnetwork is held in STAGING (its next step
    waits for it), so the master takes that offer back, again and again, until the launch
    deadline kills libnetwork and the retry goes on. No ACCEPT may name an offer after its
    RESCIND reached the plan, and the rollout converges on later offers."""
    from calico_dcos.core import events as ev

    with running_cluster(agents=1, public_agents=0, offer_timeout=0.3) as cluster:
        cluster.hold_next_task("calico-libnetwork")
        with scheduler_on(cluster, tmp_path, timings={"launch_timeout_seconds": 2.0}) as service:
            plan = service.scheduler.plan
            rescinded: list[str] = []  # offers the plan held when Mesos rescinded them
            accepted_after: list[str] = []
            real = {name: getattr(plan, name) for name in ("on_rescind", "on_status", "on_tick")}

            def spy(name):
                def call(*args):
                    if name == "on_rescind" and args[0] in plan._held_ids:
                        rescinded.append(args[0])
                    out = real[name](*args)
                    for decision in out:
                        if isinstance(decision, ev.Launch) and decision.offer_id in rescinded:
                            accepted_after.append(decision.offer_id)
                    return out

                return call

            for name in real:  # called under the scheduler's lock, on its event thread
                setattr(plan, name, spy(name))
            wait_until(converged(service), 30, "convergence with held offers rescinded")

    assert rescinded, "the scenario needs an offer rescinded while held"
    assert accepted_after == []


def test_a_principal_that_may_not_view_frameworks_is_told_the_lost_framework_check_is_blind(
    tmp_path, caplog
):
    """Mesos answers GET_FRAMEWORKS without the frameworks the principal may not view
    (VIEW_FRAMEWORK), so the check for a framework of ours the state lost would find none:
    the scheduler says so, naming the grant, and carries on."""
    caplog.set_level(logging.WARNING, logger="calico_dcos.scheduler")
    with running_cluster(agents=1, public_agents=0) as cluster:
        cluster.deny_view_framework()
        with scheduler_on(cluster, tmp_path) as service:
            wait_until(converged(service), 30, "convergence")
            framework_id = service.scheduler.framework_id()
            status = f"http://127.0.0.1:{service.api.port}/v1/status"
            shown = requests.get(status, timeout=5).json()["warnings"]

    (line,) = [r.getMessage() for r in caplog.records if "GET_FRAMEWORKS" in r.getMessage()]
    assert f"does not list this framework itself ({framework_id})" in line
    assert "dcos:mesos:master:framework:role:<role> read" in line
    # no principal here: the warning says so in words, not "(none)"
    assert "a request without a principal may not view frameworks" in line
    assert [w for w in shown if "GET_FRAMEWORKS" in w] == [line]  # where operators look


def test_a_principal_that_may_view_frameworks_hears_no_such_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="calico_dcos.scheduler")
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path) as service,
    ):
        wait_until(converged(service), 30, "convergence")

    assert not [r for r in caplog.records if "GET_FRAMEWORKS" in r.getMessage()]


def test_the_scheduler_learns_the_masters_allocation_interval_and_keeps_it(tmp_path, caplog):
    """A master whose `--allocation_interval` is not Mesos' default 1 s: the scheduler asks
    it (GET_FLAGS) at its subscription and the plan times its held offers by it, also after
    the options change (the plan's configuration is then built anew)."""
    caplog.set_level(logging.INFO, logger="calico_dcos.scheduler")
    with (
        running_cluster(agents=1, public_agents=0, allocation_interval=0.3) as cluster,
        scheduler_on(cluster, tmp_path) as service,
    ):
        scheduler = service.scheduler

        def interval() -> float:
            with scheduler.lock:
                return scheduler.plan.config.allocation_interval_seconds

        wait_until(lambda: interval() == 0.3, 20, "the master's 300ms learned")
        scheduler.change_options(scheduler.options)
        after_change = interval()

    assert after_change == 0.3
    said = [r.getMessage() for r in caplog.records if "--allocation_interval" in r.getMessage()]
    assert said == [
        "the master's --allocation_interval is 0.3 s (GET_FLAGS; the plan assumed 1 s): "
        "held offers are timed by it"
    ]


def test_after_a_failover_to_a_master_that_refuses_get_flags_the_warning_names_the_kept_interval(
    tmp_path,
):
    """The scheduler learned 0.3 s from the first master; the new leader after a failover
    refuses GET_FLAGS (403: no VIEW_FLAGS). The plan keeps 0.3 s (the masters of one DC/OS
    cluster share their flags), and the warning on `/v1/status` says which interval it keeps
    and that the previous master answered it, not "Mesos' default"."""
    with (
        running_cluster(agents=1, public_agents=0, allocation_interval=0.3) as cluster,
        scheduler_on(cluster, tmp_path) as service,
    ):
        scheduler = service.scheduler
        wait_until(lambda: scheduler.master_flags.learned, 20, "the master's 300ms learned")
        first = cluster.master_url
        cluster.deny_view_flags()
        cluster.failover_master()  # the old port redirects to the new leader
        wait_until(lambda: scheduler.master_flags.warning, 30, "GET_FLAGS refused by the new one")
        status = requests.get(f"http://127.0.0.1:{service.api.port}/v1/status", timeout=5).json()
        with scheduler.lock:
            kept = scheduler.plan.config.allocation_interval_seconds
        second = cluster.master_url

    assert first != second and kept == 0.3
    [warning] = [w for w in status["warnings"] if "--allocation_interval" in w]
    assert "GET_FLAGS refused: 403" in warning and "default" not in warning
    assert (
        f"by 0.3 s, the --allocation_interval that the previous master, {first}, answered "
        "before the failover"
    ) in warning
