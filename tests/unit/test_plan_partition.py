"""An agent partitioned from the master, and back: what the plan decides and says.

The master marks a partitioned agent unreachable after its ping timeout: each task
TASK_UNREACHABLE, then FAILURE (agent lost); when the partition heals it re-registers and
sends each framework one unreliable update per task (apache/mesos src/master/master.cpp,
`__removeSlave`, `__reregisterSlave`). The plan must learn the truth as soon as it sees the
agent again (explicit reconciliation), show a gone agent as gone, and say truthfully what an
operator's restart does while the agent is gone or the plan is interrupted. Pure core: the
simulated master of tests/helpers/plan_sim.py.
"""

from __future__ import annotations

from calico_dcos.core import events as ev
from tests.helpers.plan_sim import Sim


def partitioned(sim: Sim, agent_id: str = "S1") -> list[str]:
    """The master's words for an agent whose ping timed out: its live tasks TASK_UNREACHABLE,
    then the agent lost. Returns those tasks."""
    agent = sim.core.agents[agent_id]
    tasks = [st.task_id for st in agent.steps.values() if st.live]
    sim.master_says(
        agent_id, tasks, "TASK_UNREACHABLE", "REASON_AGENT_REMOVED", "health check timed out"
    )
    sim.apply(sim.core.on_agent_lost(agent_id, sim.now))
    return tasks


def converged_then_partitioned(**timings) -> tuple[Sim, list[str]]:
    sim = Sim(agents=3, public=0, timings=timings or None)
    sim.subscribe()
    sim.converge()
    sim.tick(700)  # past the first implicit reconciliation: none is due for a while
    tasks = partitioned(sim)
    sim.decisions.clear()
    return sim, tasks


def test_a_gone_agent_is_listed_as_unreachable_and_not_counted_done():
    sim = Sim(agents=3, public=0)
    sim.subscribe()
    sim.converge()
    partitioned(sim)
    (said,) = [n for n in sim.of(ev.Note) if "(S1) is" in n.message]
    assert said.message.startswith("agent-S1 (S1) is unreachable since ")
    assert said.message.endswith("when Mesos offers it again; not counted meanwhile")
    summary = sim.core.summary(sim.now)
    assert summary["message"].startswith(
        "2 of 2 agents done; 1 agent gone, not counted: agent-S1 unreachable since "
    )
    (gone,) = sim.core.plan_view(sim.now)["gone"]
    assert (gone["id"], gone["name"], gone["unreachable"]) == ("S1", "agent-S1", True)
    assert gone["since"].endswith("Z")
    assert "its tasks may still run" in gone["message"]
    assert sim.core.plan_view(sim.now)["gone_total"] == 1


def test_an_offer_of_the_agent_back_reconciles_its_tasks_explicitly_at_once():
    sim, tasks = converged_then_partitioned()
    sim.answers_reconciliation = False
    sim.offer("S1")
    (call,) = sim.of(ev.Reconcile)
    assert sorted(call.tasks) == sorted((t, "S1") for t in tasks)
    assert any("agent-S1 is back (Mesos offers it again)" in n.message for n in sim.of(ev.Note))
    assert not sim.core.complete, "its daemons are TASK_UNREACHABLE until Mesos answers"
    (phase,) = [p for p in sim.core.plan_view(sim.now)["phases"] if p["id"] == "S1"]
    (node,) = [s for s in phase["steps"] if s["name"] == "node"]
    assert node["message"] == (
        "Mesos said TASK_UNREACHABLE while the agent was unreachable (health check timed "
        "out); the agent is back: its state is being asked of Mesos (explicit reconciliation)"
    )
    for task_id in tasks:
        sim.update(task_id, "TASK_RUNNING", "S1", healthy=True)
    assert sim.core.complete
    assert "gone" not in sim.core.plan_view(sim.now)
    assert sim.core.summary(sim.now)["message"] == "3 of 3 agents done"


def test_an_update_of_a_task_on_the_agent_brings_it_back_before_any_offer():
    """The master's "Unreachable agent re-reregistered" update comes before the offers."""
    sim, tasks = converged_then_partitioned()
    sim.answers_reconciliation = False
    sim.update(tasks[0], "TASK_RUNNING", "S1", healthy=True, reason="REASON_SLAVE_REREGISTERED")
    assert not sim.core.agents["S1"].lost
    (call,) = sim.of(ev.Reconcile)
    assert sorted(call.tasks) == sorted((t, "S1") for t in tasks)


def test_the_unreachable_update_itself_does_not_bring_the_agent_back():
    sim, tasks = converged_then_partitioned()
    sim.update(tasks[0], "TASK_UNREACHABLE", "S1")
    assert sim.core.agents["S1"].lost
    assert not sim.of(ev.Reconcile)


def test_unanswered_tasks_of_an_agent_back_are_asked_again_with_backoff_then_left():
    sim, tasks = converged_then_partitioned(
        reconcile_backoff_seconds=1.0, reconcile_max_backoff_seconds=4.0, reconcile_max_rounds=3
    )
    sim.answers_reconciliation = False
    sim.offer("S1")
    sim.update(tasks[0], "TASK_RUNNING", "S1", healthy=True)  # one answered
    asked_at = []
    for _ in range(20):
        before = len(sim.of(ev.Reconcile))
        sim.tick(0.5)
        if len(sim.of(ev.Reconcile)) > before:
            asked_at.append(sim.now)
    asks = sim.of(ev.Reconcile)[1:]
    assert all(call.tasks == tuple((t, "S1") for t in tasks[1:]) for call in asks)
    assert len(asks) == 2, "asked max_rounds times in all, then left to the implicit round"
    assert asked_at[1] - asked_at[0] == 2.0, "backoff doubles"


def test_a_restart_while_the_agent_is_gone_says_it_waits_for_the_agent_and_does_so():
    sim, _ = converged_then_partitioned()
    node = sim.live_task("S1", "node")
    sim.apply(sim.core.restart("S1", "node", sim.now))
    (note,) = [n.message for n in sim.of(ev.Note)]
    assert "agent-S1 is unreachable since " in note
    assert "nothing can be killed or launched there now" in note
    assert f"the restart happens when the agent is back: its task {node}" in note
    assert "is replaced then (killed, then launched again)" in note
    sim.tick(5)
    assert not sim.of(ev.Kill), "nothing can reach the agent"
    sim.offer("S1")  # back; its daemon still runs
    sim.tick(1)
    assert node in [k.task_id for k in sim.of(ev.Kill)], "replaced once back"


def test_a_restart_while_the_plan_is_interrupted_says_so_and_waits_for_continue():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()
    sim.apply(sim.core.interrupt(None, sim.now))
    sim.decisions.clear()
    node = sim.live_task("S1", "node")
    sim.apply(sim.core.restart("S1", "node", sim.now))
    (note,) = [n.message for n in sim.of(ev.Note)]
    assert "nothing is killed now: the plan is interrupted by an operator" in note
    assert f"then its task {node} (TASK_RUNNING) is replaced" in note
    sim.tick(3)
    assert not sim.of(ev.Kill)
    plan = sim.core.plan_view(sim.now)
    assert plan["interrupted"] is True
    (phase,) = [p for p in plan["phases"] if p["id"] == "S1"]
    (step,) = [s for s in phase["steps"] if s["name"] == "node"]
    assert "to be replaced once the interrupt is lifted" in step["message"]
    sim.apply(sim.core.proceed(None, sim.now))
    sim.tick(1)
    assert [k.task_id for k in sim.of(ev.Kill)] == [node]


def test_an_agent_interrupted_on_its_own_says_so_in_its_phase_and_the_restart_reply():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()
    sim.apply(sim.core.interrupt("S1", sim.now))
    sim.decisions.clear()
    sim.apply(sim.core.restart("S1", "node", sim.now))
    (note,) = [n.message for n in sim.of(ev.Note)]
    assert "agent-S1 is interrupted by an operator" in note
    assert "calico-dcos plan continue --phase agent-S1" in note
    plan = sim.core.plan_view(sim.now)
    assert "interrupted" not in plan
    (phase,) = [p for p in plan["phases"] if p["id"] == "S1"]
    assert phase["interrupted"] is True and phase["status"] == "WAITING"


def rendered(sim: Sim) -> tuple[list[str], list[str]]:
    """What `calico-dcos status` and `plan show` print for the plan now (their own
    functions, over the documents the API builds)."""
    from calico_dcos.commands import operator
    from calico_dcos.operator_api import paged_plan

    summary = sim.core.summary(sim.now)
    plan = paged_plan(sim.core.plan_view(sim.now), 0, 500, summary)
    doc = {"service": "calico", "summary": summary, "plan": plan}
    status = operator.summary_lines(doc) + operator.plan_table(plan) + operator.messages(plan)
    show = operator.plan_header(plan) + operator.plan_table(plan) + operator.messages(plan)
    return status, show


def test_status_and_plan_show_name_a_gone_agent_and_an_interrupt():
    sim, _ = converged_then_partitioned()
    status, show = rendered(sim)
    for lines in (status, show):
        (line,) = [ln for ln in lines if ln.startswith("agent-S1: unreachable since ")]
        assert "it rejoins the plan when Mesos offers it again" in line
    sim.apply(sim.core.interrupt(None, sim.now))
    status, show = rendered(sim)
    for lines in (status, show):
        assert "Interrupted: the plan is interrupted by an operator" in "\n".join(lines)
    sim.apply(sim.core.proceed(None, sim.now))
    sim.apply(sim.core.interrupt("S0", sim.now))
    sim.apply(sim.core.restart("S0", "node", sim.now))
    status, show = rendered(sim)
    for lines in (status, show):
        text = "\n".join(lines)
        assert "\nagent-S0 is interrupted by an operator" in text
        assert "WAITING (interrupted)" in text
        assert "Progressing: no" in text or text.startswith("deploy")
        lifted = "to be replaced once the interrupt is lifted (`calico-dcos plan continue"
        assert f"{lifted} --phase agent-S0`)" in text


def test_interrupt_and_continue_say_what_stops_and_what_still_holds():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()
    said = lambda out: [d.message for d in out if isinstance(d, ev.Note)]  # noqa: E731
    (words,) = said(sim.apply(sim.core.interrupt("S0", sim.now)))
    assert words.startswith("agent-S0 interrupted by an operator: running tasks go on;")
    assert "until `calico-dcos plan continue --phase agent-S0`" in words
    (words,) = said(sim.apply(sim.core.interrupt(None, sim.now)))
    assert words.startswith("the plan interrupted by an operator")
    (words,) = said(sim.apply(sim.core.interrupt(None, sim.now)))
    assert words.startswith("the plan already interrupted by an operator")
    (words,) = said(sim.apply(sim.core.proceed("S0", sim.now)))
    assert words.startswith("agent-S0 continues; the whole plan is still interrupted")
    sim.apply(sim.core.interrupt("S1", sim.now))
    (words,) = said(sim.apply(sim.core.proceed(None, sim.now)))
    assert words == (
        "the plan continues; 1 agent stays interrupted on its own "
        "(`calico-dcos plan continue --phase agent-S1`)"
    )
    (words,) = said(sim.apply(sim.core.proceed(None, sim.now)))
    assert words.startswith("the plan was not interrupted: nothing changed")


def test_a_force_complete_while_the_agent_is_gone_says_it_counts_once_back():
    sim, _ = converged_then_partitioned()
    sim.apply(sim.core.restart("S1", "node", sim.now))
    sim.decisions.clear()
    sim.apply(sim.core.force_complete("S1", "node", sim.now))
    (note,) = [n.message for n in sim.of(ev.Note)]
    assert "force-completed by an operator: done; its task " in note
    assert "; agent-S1 is unreachable since " in note
    assert note.endswith("the plan counts it again once it is back")
