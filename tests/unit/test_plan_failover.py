"""The decision core after a restart: records, reconciliation, adoption, framework removal."""

from calico_dcos.core import events as ev
from calico_dcos.core.records import task_id_for
from calico_dcos.mesos import TERMINAL_STATES
from tests.helpers.plan_sim import CHAIN, Sim, status


def crashed_mid_install(**env) -> Sim:
    """A scheduler that ran until S0's cni was restarting the agent, and its records."""
    before = Sim(agents=3, public=0, **env)
    before.subscribe()
    for _ in range(4):
        before.offer()
        before.advance()
    assert before.core.restarting, "the scenario needs a restart in flight"
    return before


def restarted_from(before: Sim, **env) -> Sim:
    after = Sim(agents=3, public=0, records=before.records, framework_id="fw-1", **env)
    after.tasks = before.tasks
    return after


def test_restart_budget_is_rebuilt_from_records():
    before = crashed_mid_install()

    after = restarted_from(before)

    assert after.core.restarting == before.core.restarting
    after.subscribe()
    after.converge()
    assert after.max_restarting == 1


def test_tasks_the_records_think_alive_are_reconciled_explicitly_before_any_launch():
    before = crashed_mid_install()
    alive = {
        st["task_id"]
        for r in before.records.values()
        for st in r["steps"].values()
        if st["state"] not in TERMINAL_STATES
    }
    after = restarted_from(before)
    after.answers_reconciliation = False

    decisions = after.subscribe()
    after.offer()

    reconcile = [d for d in decisions if isinstance(d, ev.Reconcile)]
    assert {task_id for task_id, _ in reconcile[0].tasks} == alive
    assert not after.of(ev.Launch)
    assert all(d.refuse_seconds <= 1.0 for d in after.of(ev.Decline))


def test_after_every_answer_comes_implicit_reconciliation_and_a_revive():
    before = crashed_mid_install()
    ran_before = {(t["agent"], t["step"]) for t in before.tasks.values()}
    after = restarted_from(before)
    after.answers_reconciliation = False
    after.subscribe()

    for task_id, task in list(before.tasks.items()):
        if task["state"] not in TERMINAL_STATES:
            after.update(task_id, task["state"])

    assert ev.Reconcile(()) in after.decisions
    assert ev.Revive(("subscribed",)) in after.decisions
    after.converge()
    relaunched = [(a, step) for _, a, step in after.launches]
    assert not set(relaunched) & ran_before


def test_unanswered_reconciliation_is_retried_with_backoff_then_given_up():
    before = crashed_mid_install()
    after = restarted_from(before)
    after.answers_reconciliation = False
    after.subscribe()

    rounds_at = []
    for _ in range(400):
        if any(isinstance(d, ev.Reconcile) and d.tasks for d in after.tick(0.5)):
            rounds_at.append(after.now)
    gaps = [b - a for a, b in zip(rounds_at, rounds_at[1:], strict=False)]

    assert gaps == sorted(gaps) and gaps[0] < gaps[-1]
    assert not after.core.reconciling
    assert ev.Reconcile(()) in after.decisions


def test_implicit_reconciliation_runs_periodically():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.decisions.clear()

    sim.tick(sim.core.config.implicit_reconcile_seconds + 1)

    assert sim.of(ev.Reconcile) == [ev.Reconcile(())]


def test_a_task_unknown_to_the_records_is_adopted_when_its_fingerprint_is_current():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.offer()  # S0 known; etcd-proxy launched and recorded
    proxy = sim.live_task("S0", "etcd-proxy")
    sim.update(proxy, "TASK_RUNNING")
    fingerprint = sim.core.config.steps[1].fingerprint
    stray = task_id_for("docker", "S0", fingerprint, 7)

    sim.apply(sim.core.on_status(status(stray, "TASK_RUNNING", "S0"), sim.now))

    assert sim.live_task("S0", "docker") == stray
    assert sim.records["S0"]["steps"]["docker"]["attempts"] == 7
    assert sim.kills == []


def test_a_task_unknown_to_the_records_with_old_options_is_killed():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.offer()
    stray = task_id_for("docker", "S0", "0ld0ptions", 1)

    sim.apply(sim.core.on_status(status(stray, "TASK_RUNNING", "S0"), sim.now))

    assert sim.kills == [stray]


def test_a_second_copy_of_a_live_step_is_killed():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.offer()
    fingerprint = sim.core.config.steps[0].fingerprint
    copy = task_id_for("etcd-proxy", "S0", fingerprint, 9)

    sim.apply(sim.core.on_status(status(copy, "TASK_RUNNING", "S0"), sim.now))

    assert sim.kills == [copy]


def test_a_record_launched_but_never_accepted_is_relaunched_without_a_failure():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.offer()
    proxy = sim.live_task("S0", "etcd-proxy")
    after = Sim(agents=1, public=0, records=sim.records, framework_id="fw-1")
    after.subscribe()

    after.update(proxy, "TASK_LOST", reason="REASON_RECONCILIATION")
    after.converge()

    assert after.core.agents["S0"].steps["etcd-proxy"].failures == 0
    assert after.steps_launched("S0") == list(CHAIN)


def test_framework_removed_forgets_the_id_and_keeps_the_progress():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()

    decisions = sim.apply(sim.core.on_framework_removed())

    assert decisions == [ev.SaveFrameworkId(None)]
    sim.subscribe("fw-2")
    for task_id, task in sim.tasks.items():
        if task["state"] == "TASK_RUNNING":
            sim.update(task_id, "TASK_LOST", reason="REASON_RECONCILIATION")
    sim.converge()
    assert sim.framework_ids == ["fw-1", None, "fw-2"]
    relaunched = [step for _, _, step in sim.launches[10:]]
    assert sorted(relaunched) == sorted(["etcd-proxy", "libnetwork", "node"] * 2)


def test_a_lost_agent_frees_its_restart_slot():
    before = crashed_mid_install()
    (holder,) = before.core.restarting

    before.apply(before.core.on_agent_lost(holder, before.now))

    # the freed slot goes at once to the agent next in line, whose offer was held for it
    assert holder not in before.core.restarting
    assert len(before.core.restarting) <= 1
    assert before.records[holder]["lost"] is True


def test_a_rebuilt_plan_says_how_long_ago_a_stalled_task_was_launched_not_last_updated():
    """S0's docker launched, TASK_STARTING 30 s later, never RUNNING; the scheduler restarts
    100 s after the launch. The rebuilt plan counts from the launch (stored in the record),
    as the plan that launched it did, not from the STARTING update."""
    from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, subscribed

    before = subscribed(1, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    before.offer()
    before.tick(2)
    before.advance()  # etcd-proxy RUNNING
    before.offer("S0")
    launched = before.now
    docker = before.live_task("S0", "docker")
    before.tick(30)
    before.update(docker, "TASK_STARTING")  # not stored by itself (UNSAVED_STATES) …
    before.tick(20)
    proxy = before.live_task("S0", "etcd-proxy")
    before.update(proxy, "TASK_RUNNING", healthy=False)  # … but with the agent's record
    assert before.records["S0"]["steps"]["docker"]["updated"] == launched + 30
    before.tick(50)

    after = Sim(agents=1, public=0, records=before.records, framework_id="fw-1",
                rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)  # fmt: skip
    after.tasks, after.now = before.tasks, before.now
    after.subscribe()
    after.tick(30)  # stalled (60 s) by either count

    assert after.now - launched == 130
    phase = after.core.plan_view(after.now)["phases"][0]
    step = next(s for s in phase["steps"] if s["name"] == "docker")
    assert step["message"].startswith("launched 2 min 10 s ago, still TASK_STARTING"), step
    assert before.records["S0"]["steps"]["docker"]["launched_at"] == launched


def test_a_record_without_a_launch_time_counts_from_its_last_update():
    """Records written before the launch time was stored still load: the launch is taken to
    be the last update, as before."""
    from calico_dcos.core.records import agent_from_record

    record = {
        "agent_id": "S0",
        "steps": {"docker": {"task_id": "t", "state": "TASK_STAGING", "updated": 1200.0}},
    }

    assert agent_from_record(record).steps["docker"].launched_at == 0.0
