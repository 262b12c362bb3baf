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
