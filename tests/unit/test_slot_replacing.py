"""A restart slot is held not only by a Docker or agent restart but also while a running
daemon is replaced (`Deploy._replace`: new options, or `plan restart`): the summary says
which holders are replacing which daemon, so that `status` and the page read
"Restart slots: 1 of 1 in use (agent-S0: replacing node)" rather than a bare hostname a
reader would take for a Docker restart."""

from calico_dcos.display import slots_line
from tests.helpers.plan_sim import Sim


def test_a_slot_held_while_a_daemon_is_replaced_says_so():
    sim = Sim(agents=2, public=0, rollout_max_concurrent_restarts="1")
    sim.subscribe()
    sim.converge()

    sim.apply(sim.core.restart("S0", "node", sim.now))
    summary = sim.core.summary(sim.now)
    plan = sim.core.plan_view(sim.now)

    assert summary["restarting"] == ["S0"]
    assert summary["replacing"] == {"S0": "node"}
    assert slots_line(summary, plan) == "Restart slots: 1 of 1 in use (agent-S0: replacing node)"

    sim.converge()  # the new calico-node runs: the slot is free, nothing replaced
    summary = sim.core.summary(sim.now)
    assert summary["restarting"] == [] and summary["replacing"] == {}
    assert slots_line(summary, sim.core.plan_view(sim.now)) == "Restart slots: 0 of 1 in use"
