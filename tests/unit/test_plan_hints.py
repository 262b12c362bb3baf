"""The hints the plan gives an operator: every one names the command that lifts the
interrupt that holds (`views.continue_words`), whichever interrupts are in place. Pure core:
the simulated master of tests/helpers/plan_sim.py."""

from __future__ import annotations

from calico_dcos.core import events as ev
from calico_dcos.core.views import continue_words
from tests.helpers.plan_sim import Sim
from tests.unit.test_plan_partition import rendered


def notes(out: list) -> list[str]:
    return [d.message for d in out if isinstance(d, ev.Note)]


def test_continue_words_name_the_plan_then_each_agent_interrupted_on_its_own():
    assert continue_words(True) == "`calico-dcos plan continue`"
    assert continue_words(False, ["agent-3"]) == "`calico-dcos plan continue --phase agent-3`"
    assert continue_words(True, ["agent-3"]) == (
        "`calico-dcos plan continue`; then `calico-dcos plan continue --phase agent-3`"
    )
    assert continue_words(False, ["a", "b", "c", "d"], total=9) == (
        "`calico-dcos plan continue --phase <agent>` for each of a, b, c and 6 more"
    )
    assert continue_words(False) == ""


def test_after_the_plan_continues_an_agent_held_on_its_own_names_its_phase_everywhere():
    """The trial's steps: `plan interrupt`, `interrupt --phase`, `restart --phase --step`,
    `plan continue`: the reply, `plan show`'s summary and the step line all name the
    agent's own continue, never the plan's (which would lift nothing)."""
    sim = Sim(agents=3, public=0)
    sim.subscribe()
    sim.converge()
    sim.apply(sim.core.interrupt(None, sim.now))
    sim.apply(sim.core.interrupt("S2", sim.now))
    sim.apply(sim.core.restart("S2", "node", sim.now))
    (reply,) = notes(sim.apply(sim.core.proceed(None, sim.now)))
    own = "`calico-dcos plan continue --phase agent-S2`"
    assert reply == f"the plan continues; 1 agent stays interrupted on its own ({own})"
    summary = sim.core.summary(sim.now)
    assert summary["message"].endswith(f"; 1 interrupted by an operator ({own})")
    status, show = rendered(sim)
    for lines in (status, show):
        text = "\n".join(lines)
        assert f"to be replaced once the interrupt is lifted ({own})" in text
        assert "`calico-dcos plan continue`" not in text


def test_only_an_agent_interrupted_names_its_phase_and_both_name_both():
    sim = Sim(agents=3, public=0)
    sim.subscribe()
    sim.converge()
    sim.apply(sim.core.interrupt("S1", sim.now))
    sim.apply(sim.core.restart("S1", "node", sim.now))
    own = "`calico-dcos plan continue --phase agent-S1`"
    assert sim.core.summary(sim.now)["message"].endswith(f"({own})")
    sim.apply(sim.core.interrupt(None, sim.now))
    both = f"`calico-dcos plan continue`; then {own}"
    assert sim.core.summary(sim.now)["message"].endswith(f"1 interrupted by an operator ({both})")
    (phase,) = [p for p in sim.core.plan_view(sim.now)["phases"] if p["id"] == "S1"]
    (node,) = [s for s in phase["steps"] if s["name"] == "node"]
    assert node["message"].endswith(f"to be replaced once the interrupt is lifted ({both})")
    sim.decisions.clear()
    (reply,) = notes(sim.apply(sim.core.restart("S1", "node", sim.now)))
    assert f"then agent-S1 stays interrupted on its own until {own}" in reply


def plan_doc(sim: Sim) -> dict:
    from calico_dcos.operator_api import paged_plan

    return paged_plan(sim.core.plan_view(sim.now), 0, 500, sim.core.summary(sim.now))


def gone_by_operator(sim: Sim, agent_id: str, tasks: list[str]) -> None:
    """What the master sends for the tasks of an agent marked gone (`dcos node
    decommission`: apache/mesos src/master/master.cpp `Master::markGone`)."""
    sim.master_says(
        agent_id,
        tasks,
        "TASK_GONE_BY_OPERATOR",
        "REASON_SLAVE_REMOVED_BY_OPERATOR",
        "Agent has been marked gone",
    )


def test_an_unreachable_agent_keeps_the_plan_degraded_while_it_lasts():
    from calico_dcos.commands.operator import EXIT_COMPLETE, EXIT_DEGRADED, plan_exit_status
    from tests.unit.test_plan_partition import converged_then_partitioned

    sim, tasks = converged_then_partitioned()
    doc = plan_doc(sim)
    assert (doc["status"], doc["degraded"]) == ("COMPLETE", True)
    assert plan_exit_status(doc) == EXIT_DEGRADED
    (problem,) = sim.core.summary(sim.now)["problems"]
    assert problem.startswith("agent-S1: unreachable since ")
    assert problem.endswith("Degraded until it is back or Mesos removes it")
    sim.offer("S1")  # back: its daemons still run
    for task_id in tasks:
        sim.update(task_id, "TASK_RUNNING", "S1", healthy=True)
    assert plan_exit_status(plan_doc(sim)) == EXIT_COMPLETE


def test_an_agent_mesos_removed_for_good_does_not_keep_it_degraded():
    """Decommissioned while unreachable: Mesos says its tasks are TASK_GONE_BY_OPERATOR;
    the plan lists it as gone from the cluster, not counted, and not Degraded."""
    from calico_dcos.commands.operator import EXIT_COMPLETE, plan_exit_status
    from tests.unit.test_plan_partition import converged_then_partitioned

    sim, tasks = converged_then_partitioned()
    gone_by_operator(sim, "S1", tasks)
    doc = plan_doc(sim)
    assert plan_exit_status(doc) == EXIT_COMPLETE
    (gone,) = doc["gone"]
    assert gone["unreachable"] is False and gone["message"].endswith("Mesos removed it")


def test_an_unreachable_agent_forgotten_after_the_retention_ends_degraded():
    """Mesos may drop an unreachable agent from its registry without a word
    (`--registry_max_agent_age`); the plan forgets it after `gone_retention_seconds`."""
    from tests.unit.test_plan_partition import partitioned

    sim = Sim(agents=2, public=0, timings={"gone_retention_seconds": 100.0})
    sim.subscribe()
    sim.converge()
    partitioned(sim)
    assert sim.core.summary(sim.now)["degraded"]
    sim.tick(101)
    summary = sim.core.summary(sim.now)
    assert not summary["degraded"] and "gone" not in summary["message"]


def killing_node_then_partitioned() -> tuple[Sim, str]:
    """agent-S1's node being replaced (`plan restart`), its KILLs unanswered: the agent is
    cut off; then the master marks it unreachable."""
    from tests.unit.test_plan_partition import partitioned

    sim = Sim(agents=3, public=0)
    sim.subscribe()
    sim.converge()
    sim.tick(700)
    node = sim.live_task("S1", "node")
    sim.apply(sim.core.restart("S1", "node", sim.now))
    sim.tick(5)
    agent, spec = sim.core.agents["S1"], sim.core._spec("node")
    status, message = sim.core.step_status(agent, spec, sim.now)
    assert status == "STARTING" and "Mesos has not confirmed an end yet" in message
    assert "cut off" not in message, "a few seconds of silence say nothing yet"
    sim.tick(30)
    status, message = sim.core.step_status(agent, spec, sim.now)
    assert message.endswith(
        "; no word of its task for 35 s: its agent may be cut off from the master (Mesos "
        "marks an agent unreachable after 1 min 15 s without its pings, by default)"
    )
    partitioned(sim)
    sim.decisions.clear()
    return sim, node


def test_a_silent_kill_says_the_agent_may_be_cut_off_and_an_answer_ends_that():
    sim, node = killing_node_then_partitioned()
    sim.update(node, "TASK_RUNNING", "S1", healthy=True, reason="REASON_SLAVE_REREGISTERED")
    status, message = sim.core.step_status(sim.core.agents["S1"], sim.core._spec("node"), sim.now)
    assert "cut off" not in message, "the agent answered"


def test_interrupt_and_force_complete_of_an_unreachable_agent_say_so_and_what_comes_next():
    sim, node = killing_node_then_partitioned()
    (reply,) = notes(sim.apply(sim.core.interrupt("S1", sim.now)))
    assert "; agent-S1 is unreachable since " in reply
    assert reply.endswith(
        "nothing reaches it now; when it is back its tasks are reconciled with Mesos at once "
        "and it stays interrupted"
    )
    (reply,) = notes(sim.apply(sim.core.proceed("S1", sim.now)))
    assert reply.startswith("agent-S1 continues; agent-S1 is unreachable since ")
    assert reply.endswith("and it stays not interrupted")
    (reply,) = notes(sim.apply(sim.core.force_complete("S1", "node", sim.now)))
    assert "; agent-S1 is unreachable since " in reply
    assert reply.endswith(
        "when it is back its tasks are reconciled with Mesos at once, and its task killed if "
        "it still runs; the plan counts it again once it is back"
    )


def test_a_forced_step_whose_task_came_back_running_says_it_did_run():
    """After the heal the old daemon still runs: FORCED's "its task may never have run"
    would be false; the step says its task runs, and is being killed."""
    sim, node = killing_node_then_partitioned()
    sim.apply(sim.core.force_complete("S1", "node", sim.now))
    sim.update(node, "TASK_RUNNING", "S1", healthy=True, reason="REASON_SLAVE_REREGISTERED")
    (phase,) = [p for p in sim.core.plan_view(sim.now)["phases"] if p["id"] == "S1"]
    (step,) = [s for s in phase["steps"] if s["name"] == "node"]
    assert (step["status"], step["forced"]) == ("COMPLETE", True)
    assert step["message"] == (
        f"force-completed by an operator; its task {node} did run and is still running: "
        "being killed"
    )
    sim.update(node, "TASK_KILLED", "S1")
    (phase,) = [p for p in sim.core.plan_view(sim.now)["phases"] if p["id"] == "S1"]
    (step,) = [s for s in phase["steps"] if s["name"] == "node"]
    assert step["message"] == "force-completed"
