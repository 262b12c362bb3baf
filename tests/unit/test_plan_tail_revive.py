"""REVIVE in the install's tail: with offers held, a step's successor waits for the unused part
of the step's ACCEPT, which Mesos offers again only at the next allocation round. Once no
agent waits for a restart slot, every such wait lengthens the install, so the plan REVIVEs
(coalesced, `PlanConfig.revive_interval`) instead, and asks to be ticked when a REVIVE's
window opens (`wake_at`). The pure core, fed by the unit tests' simulator."""

import math

import pytest

from calico_dcos.core.revive import Reviver
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim, subscribed

# REVIVEs may come four times an allocation round (Mesos' default 1 s), as they may in a
# cluster of up to 625 agents (`PlanConfig.revive_interval`).
TAIL = {"revive_interval_seconds": 0.25}


def launched_proxy(sim: Sim, agent_id: str = "S0") -> None:
    """The agent's etcd-proxy launched on its whole offer; no offer of it held."""
    sim.offer(agent_id)
    assert sim.steps_launched(agent_id) == ["etcd-proxy"]
    assert sim.core.held_offers == 0
    sim.decisions.clear()
    sim.revives.clear()  # the subscription's


def test_a_step_ready_with_no_offer_held_revives_rather_than_wait_for_the_round():
    sim = subscribed(1, TAIL)
    launched_proxy(sim)

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)

    assert sim.revives == [sim.now]  # docker's offer comes at once, not at the next round
    assert sim.core.wake_at is None


def test_a_second_want_inside_the_window_waits_for_the_tick_the_plan_asks_for():
    sim = subscribed(2, TAIL)
    launched_proxy(sim, "S0")
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)
    assert sim.revives == [sim.now]
    first = sim.now
    sim.offer("S1")  # accepted after that REVIVE: its rest is not in the REVIVE's offers
    sim.now += 0.1

    sim.update(sim.live_task("S1", "etcd-proxy"), "TASK_RUNNING", healthy=True)

    assert sim.revives == [first]  # inside the coalescing window
    assert sim.core.wake_at == pytest.approx(first + 0.25)
    sim.tick(sim.core.wake_at - sim.now)  # the adapter ticks at `wake_at`
    assert sim.revives == [first, pytest.approx(first + 0.25)]
    assert sim.core.wake_at is None


def test_no_revive_while_agents_wait_for_a_restart_slot():
    """The slots pace the install then: a step that waits a round delays nothing."""
    sim = subscribed(3, TAIL, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.advance()  # every proxy RUNNING: one REVIVE for the three, then none
    sim.offer()  # S0 takes the only slot; the others wait for it, one of them held
    assert [a for _, a, s in sim.launches if s == "docker"] == ["S0"]
    assert sim.core.slots.waiters or sim.core._slot_held
    sim.tick(1)
    revives = list(sim.revives)

    sim.update(sim.live_task("S0", "docker"), "TASK_RUNNING", healthy=True)

    assert sim.revives == revives


@pytest.mark.parametrize("window", [0.3, 1.0])
def test_no_revive_where_fewer_than_four_revives_fit_in_a_round(window):
    """A bigger cluster: each REVIVE re-offers every agent, so they are spaced further apart
    (0.3 s from 750 agents, 1 s from 2,500); one that saves less than most of a round costs
    an offer of every agent for little (at 1,000 agents the wall time was no shorter)."""
    sim = subscribed(1, {"revive_interval_seconds": window})
    launched_proxy(sim)

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)

    assert sim.revives == []
    assert sim.core.wake_at is None


def test_a_revive_decided_after_the_accept_offers_its_rest_already():
    reviver = Reviver()
    reviver.want_round(until=11.0, after=0)  # an ACCEPT set before any REVIVE
    assert reviver.due(10.0, 0.25) and reviver.sent == 1

    reviver.want_round(until=11.2, after=0)  # its rest was in that REVIVE's offers

    assert reviver.opens_at(0.25) is None
    assert reviver.due(10.5, 0.25) == []


def test_a_want_of_a_round_is_dropped_once_the_round_has_come_by_itself():
    reviver = Reviver(last=10.0, sent=1)
    reviver.want_round(until=11.0, after=1)
    assert reviver.opens_at(2.0) == 12.0  # the window outlasts the round

    assert reviver.due(12.0, 2.0) == []
    assert reviver.opens_at(2.0) is None and reviver.round_until == -math.inf


def test_a_tick_at_exactly_the_window_end_finds_it_open():
    reviver = Reviver(last=3.1, sent=1)  # 3.1 + 0.4 - 3.1 < 0.4 in floating point
    reviver.want_round(until=4.5, after=1)

    assert reviver.due(reviver.opens_at(0.4), 0.4) != []
