"""The decision core, without any server: chains, budget, retries, offers, option changes."""

import pytest

from calico_dcos.core import events as ev
from tests.helpers.plan_sim import CHAIN, RESTARTING, Sim, offer, status


def test_each_agent_runs_the_enabled_steps_in_chain_order():
    sim = Sim(agents=3, public=1)
    sim.subscribe()

    sim.converge()

    for agent_id in sim.agents:
        assert sim.steps_launched(agent_id) == list(CHAIN)
    assert sim.core.summary(sim.now)["message"] == "3 of 3 agents done"


def test_disabled_steps_never_launch():
    sim = Sim(agents=2, public=0, docker_enable="false", libnetwork_enable="false")
    sim.subscribe()

    sim.converge()

    for agent_id in sim.agents:
        assert sim.steps_launched(agent_id) == ["etcd-proxy", "cni", "node"]


@pytest.mark.parametrize(("budget", "most"), [("1", 1), ("50%", 3)])
def test_restart_budget_never_exceeded_with_six_agents(budget, most):
    sim = Sim(agents=6, public=1, rollout_max_concurrent_restarts=budget)
    sim.subscribe()

    sim.converge()

    assert sim.max_restarting == most
    assert all(sim.steps_launched(a) == list(CHAIN) for a in sim.agents)


def test_a_step_starts_only_when_the_one_before_is_done():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.offer()
    proxy = sim.live_task("S0", "etcd-proxy")

    sim.offer()
    sim.update(proxy, "TASK_STARTING")
    sim.offer()
    assert sim.steps_launched("S0") == ["etcd-proxy"]

    sim.update(proxy, "TASK_RUNNING")
    sim.offer()
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker"]


def test_node_counts_as_done_only_when_healthy():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()
    node = sim.live_task("S0", "node")

    sim.update(node, "TASK_RUNNING", healthy=False)

    assert not sim.core.complete
    assert sim.core.plan_view(sim.now)["phases"][0]["steps"][-1]["status"] == "STARTED"


def test_one_launch_per_agent_per_batch_and_declines_batched_by_refuse():
    sim = Sim(agents=3, public=0, rollout_retry_backoff_seconds="0")
    sim.subscribe()
    sim.converge()
    sim.update(sim.live_task("S2", "node"), "TASK_FAILED")  # S2 has work again
    sim.decisions.clear()

    two_for_s2 = [sim.offer_for("S2"), sim.offer_for("S2")]
    sim.apply(sim.core.on_offers([sim.offer_for("S0"), sim.offer_for("S1"), *two_for_s2], sim.now))

    assert len(sim.of(ev.Launch)) == 1
    declines = {d.refuse_seconds: d.offer_ids for d in sim.of(ev.Decline)}
    assert len(declines[3600.0]) == 2
    assert len(declines[sim.core.config.wait_refuse_seconds]) == 1


def test_a_launch_is_saved_before_it_is_accepted():
    sim = Sim(agents=1, public=0)
    sim.subscribe()

    decisions = sim.offer()

    kinds = [type(d) for d in decisions]
    assert kinds.index(ev.SaveAgent) < kinds.index(ev.Launch)
    launch = sim.of(ev.Launch)[0]
    saved = sim.records["S0"]["steps"]["etcd-proxy"]
    assert saved["task_id"] == launch.task_info["task_id"]["value"]
    assert saved["state"] == "TASK_STAGING"


def test_an_offer_too_small_is_declined_briefly():
    sim = Sim(agents=1, public=0)
    sim.subscribe()

    sim.apply(sim.core.on_offers([offer("small", "S0", "agent-S0", cpus=0.01)], sim.now))

    assert not sim.of(ev.Launch)
    assert sim.of(ev.Decline)[-1].refuse_seconds == sim.core.config.wait_refuse_seconds


def test_a_failing_oneshot_is_retried_with_growing_delay():
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="2")
    sim.subscribe()
    sim.offer()
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING")
    delays = []
    for _ in range(3):
        sim.offer()
        failed_at = sim.now
        sim.update(sim.live_task("S0", "docker"), "TASK_FAILED", message="docker did not start")
        while sim.steps_launched("S0").count("docker") == len(delays) + 1:
            sim.tick(0.5)
            sim.offer()
        delays.append(sim.now - failed_at)

    assert delays == [2.0, 4.0, 8.0]
    assert sim.core.plan_view(sim.now)["phases"][0]["steps"][1]["status"] == "STARTING"


def test_a_delayed_agent_is_declined_until_its_retry_is_due():
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="30")
    sim.subscribe()
    sim.offer()
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_FAILED")

    sim.offer()

    assert sim.of(ev.Decline)[-1].refuse_seconds == 30.0
    view = sim.core.plan_view(sim.now)["phases"][0]["steps"][0]
    assert view["status"] == "DELAYED"
    assert "failed once" in view["message"]


def test_a_killed_daemon_is_relaunched():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()
    node = sim.live_task("S0", "node")

    sim.update(node, "TASK_KILLED", message="killed by someone")
    sim.converge()

    assert sim.steps_launched("S0").count("node") == 2
    assert sim.live_task("S0", "node") != node


def test_an_agent_restart_cutting_off_cni_is_not_a_failure():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.offer()
    sim.advance()
    sim.offer()
    sim.advance()
    sim.advance()
    sim.offer()
    cni = sim.live_task("S0", "cni")
    sim.update(cni, "TASK_RUNNING")

    sim.update(cni, "TASK_LOST", reason="REASON_AGENT_RESTARTED")
    sim.offer()

    st = sim.core.agents["S0"].steps["cni"]
    assert (st.failures, st.cutoffs) == (0, 1)
    assert sim.steps_launched("S0").count("cni") == 2
    assert sim.core.restarting == {"S0"}


def test_a_changed_option_reruns_only_the_steps_it_changed_agent_by_agent():
    sim = Sim(agents=3, public=0)
    sim.subscribe()
    sim.converge()
    before = len(sim.launches)

    sim.change_options(node_image="calico/node:v2.6.11")
    assert len(sim.kills) == 1  # a running daemon is replaced one agent at a time
    sim.converge()

    assert [step for _, _, step in sim.launches[before:]] == ["node", "node", "node"]
    assert len(sim.kills) == 3


def test_a_changed_cni_option_restarts_agents_within_the_budget():
    sim = Sim(agents=4, public=1, rollout_max_concurrent_restarts="2")
    sim.subscribe()
    sim.converge()
    before = len(sim.launches)
    sim.max_restarting = 0

    sim.change_options(cni_log_level="debug")
    sim.converge()

    assert sorted(step for _, _, step in sim.launches[before:]) == ["cni"] * 4
    assert sim.max_restarting == 2


def test_an_agent_that_joins_later_is_brought_up():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()

    sim.agents["S9"] = False
    sim.converge()

    assert sim.steps_launched("S9") == list(CHAIN)


def test_public_agents_are_left_alone_when_not_included():
    sim = Sim(agents=3, public=1, agents_include_public="false")
    sim.subscribe()

    sim.converge()

    assert sim.steps_launched("S2") == []
    assert sim.core.progress() == (2, 2)


def test_agents_failing_a_constraint_are_left_alone():
    sim = Sim(agents=3, public=0, agents_constraints="hostname:UNLIKE:agent-S1")
    sim.subscribe()

    sim.converge()

    assert sim.steps_launched("S1") == []
    assert len(sim.steps_launched("S0")) == 5


def test_an_agent_that_already_runs_calico_gets_no_calico_steps():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.offer()

    report = {"agent_id": "S1", "step": "etcd-proxy", "calico_present": True, "found": "felix"}
    sim.apply(sim.core.on_report("S1", report, sim.now))
    sim.converge()

    assert sim.steps_launched("S1") == ["etcd-proxy"]
    assert sim.records["S1"]["calico_present"]["found"] == "felix"
    phase = [ph for ph in sim.core.plan_view(sim.now)["phases"] if ph["id"] == "S1"][0]
    assert phase["status"] == "COMPLETE"
    assert "already present" in phase["steps"][0]["message"]


def test_revive_when_work_appears_on_an_agent_declined_for_long():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()
    sim.offer()  # done: declined for an hour
    sim.tick(5)
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "node"), "TASK_FAILED", message="felix exited")
    sim.tick(10)

    assert len(sim.of(ev.Revive)) == 1


def test_revives_are_rate_limited():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()
    sim.offer()
    sim.tick(5)
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "node"), "TASK_FAILED")
    sim.update(sim.live_task("S1", "node"), "TASK_FAILED")

    assert len(sim.of(ev.Revive)) == 1


def test_operator_restart_reruns_a_step_and_force_complete_skips_it():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()

    sim.apply(sim.core.restart("S0", "libnetwork", sim.now))
    sim.converge()
    assert sim.steps_launched("S0").count("libnetwork") == 2

    sim.update(sim.live_task("S0", "node"), "TASK_FAILED")
    sim.apply(sim.core.force_complete("S0", "node", sim.now))
    assert sim.core.complete


@pytest.mark.parametrize("step", RESTARTING)
def test_operator_restart_of_a_finished_oneshot_relaunches_it_within_the_budget(step):
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()

    sim.apply(sim.core.restart("S0", step, sim.now))
    assert not sim.core.complete
    sim.max_restarting = 0
    sim.converge()

    assert sim.steps_launched("S0").count(step) == 2
    assert sim.steps_launched("S1").count(step) == 1
    assert sim.max_restarting == 1
    assert sim.core.agents["S0"].steps[step].state == "TASK_FINISHED"


def test_interrupt_stops_new_launches_until_continued():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.apply(sim.core.interrupt(None, sim.now))

    sim.offer()
    assert sim.launches == []
    assert sim.core.plan_view(sim.now)["status"] == "WAITING"

    sim.apply(sim.core.proceed(None, sim.now))
    sim.converge()


def test_a_whole_plan_interrupt_is_stored_and_outlives_the_scheduler():
    """`plan interrupt` without a phase is stored as an agent's interrupt is in its record: a
    scheduler that Marathon restarts must not resume a rollout an operator stopped."""
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.apply(sim.core.interrupt(None, sim.now))
    assert sim.meta == {"deploy": {"interrupted": True}}

    restarted = Sim(agents=1, public=0, records=sim.records, framework_id="fw-1", meta=sim.meta)
    restarted.subscribe()
    restarted.offer()
    assert restarted.launches == []
    assert restarted.core.plan_view(restarted.now)["status"] == "WAITING"

    restarted.apply(restarted.core.proceed(None, restarted.now))
    assert restarted.meta == {"deploy": {"interrupted": False}}
    restarted.converge()
    assert restarted.core.complete


def test_plan_view_has_the_dcos_commons_shape():
    sim = Sim(agents=2, public=0, docker_enable="false")
    sim.subscribe()
    sim.offer()

    view = sim.core.plan_view(sim.now)

    assert set(view) == {"phases", "strategy", "errors", "status"}
    assert view["status"] == "IN_PROGRESS"
    phase = view["phases"][0]
    assert set(phase) == {"id", "name", "strategy", "status", "steps"}
    assert phase["name"] == "agent-S0"
    assert [s["name"] for s in phase["steps"]] == ["etcd-proxy", "cni", "libnetwork", "node"]
    assert [s["status"] for s in phase["steps"]] == ["STARTING", "PENDING", "PENDING", "PENDING"]
    assert all(set(s) == {"id", "name", "status", "message"} for s in phase["steps"])


def test_summary_says_degraded_with_the_failing_step():
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="0")
    sim.subscribe()
    for _ in range(3):
        sim.offer()
        sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_FAILED", message="bad flag")

    summary = sim.core.summary(sim.now)

    assert summary["degraded"] and summary["progressing"] and not summary["available"]
    assert summary["problems"] == ["agent-S0: etcd-proxy failed 3 times: bad flag"]


def test_a_status_of_a_task_that_is_not_ours_kills_it():
    sim = Sim(agents=1, public=0)
    sim.subscribe()

    sim.apply(sim.core.on_status(status("stranger", "TASK_RUNNING", "S0"), sim.now))

    assert sim.kills == ["stranger"]


def test_starting_is_not_worth_a_store_write_but_running_is():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.offer()
    proxy = sim.live_task("S0", "etcd-proxy")

    starting = sim.update(proxy, "TASK_STARTING")
    running = sim.update(proxy, "TASK_RUNNING")

    assert not [d for d in starting if isinstance(d, ev.SaveAgent)]
    assert sim.records["S0"]["steps"]["etcd-proxy"]["state"] == "TASK_RUNNING"
    assert [d for d in running if isinstance(d, ev.SaveAgent)]


def test_an_offer_too_small_for_the_next_step_is_named_on_the_step_and_logged_once():
    sim = Sim(agents=1, public=0)
    sim.subscribe()

    for offer_id in ("small-1", "small-2"):
        sim.apply(sim.core.on_offers([offer(offer_id, "S0", "agent-3", cpus=0.05)], sim.now))

    expected = "agent-3 offers 0.05 cpus; calico-etcd-proxy needs 0.1"
    assert sim.of(ev.Note) == [ev.Note(expected)]
    proxy = sim.core.plan_view(sim.now)["phases"][0]["steps"][0]
    assert (proxy["status"], proxy["message"]) == ("PREPARED", expected)

    sim.apply(sim.core.on_offers([offer("big", "S0", "agent-3")], sim.now))

    assert sim.steps_launched("S0") == ["etcd-proxy"]
    proxy = sim.core.plan_view(sim.now)["phases"][0]["steps"][0]
    assert (proxy["status"], proxy["message"]) == ("STARTING", "")
