"""Every REVIVE says why the plan wanted it (`calico_dcos.core.revive.REASONS`), and each
reason's REVIVE comes only when a filter of ours may hide an agent with work: a REVIVE makes
Mesos offer every agent again (apache/mesos src/master/allocator/mesos/hierarchical.cpp,
`reviveOffers`: the filters of every role of the framework go, then `generateOffers()`).
The pure core, fed by the unit tests' simulator."""

import math

from calico_dcos.core import events as ev
from calico_dcos.core.budget import RestartBudget, Slots
from calico_dcos.core.revive import Reviver
from calico_dcos.metrics import REVIVE_REASON, revive_reasons, revives_metric
from tests.helpers import plan_sim
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim

# Offers not held: an ACCEPT filters the rest of the agent for 5 s, a slot waiter is
# declined for 5 s (`wait_refuse_seconds`); REVIVEs may come every 2 s.
SLOW_FILTERS = {"wait_refuse_seconds": 5.0, "revive_interval_seconds": 2.0, "offer_hold_seconds": 0}


def subscribed(agents: int, **env) -> Sim:
    return plan_sim.subscribed(agents, SLOW_FILTERS, **env)


def revives(sim: Sim) -> list[tuple[str, ...]]:
    return [d.reasons for d in sim.of(ev.Revive)]


def test_a_new_framework_sends_no_revive_at_subscription():
    """The master has just registered it: no filters, and every agent offered already
    (`addFramework` calls `generateOffers()`)."""
    sim = Sim(agents=3, public=1, timings=SLOW_FILTERS)

    sim.subscribe()
    sim.tick(3)

    assert revives(sim) == []


def test_a_framework_failing_over_revives_once_reconciled_for_its_old_filters():
    """Under the same framework ID the master may still hold the filters of the previous
    subscription (it clears them only when it deactivates the framework)."""
    sim = subscribed(1)
    sim.offer()  # etcd-proxy launched: the rest of the agent filtered for 5 s
    sim.core.on_disconnected()
    sim.decisions.clear()

    sim.subscribe()  # the same ID; the simulator answers the reconciliation at once

    assert revives(sim) == [("subscribed",)]


def test_a_new_framework_that_refused_while_reconciling_revives():
    """Records of an earlier framework (removed: a new ID) with a live task: offers are
    declined until Mesos answers the reconciliation, and those filters must go."""
    sim = subscribed(1)
    sim.offer()
    sim.core.on_framework_removed()
    sim.answers_reconciliation = False
    sim.subscribe("fw-2")
    sim.offer()  # reconciling: declined, filtered for 5 s
    sim.decisions.clear()
    sim.answers_reconciliation = True

    sim.tick(3)  # the reconciliation is asked again and answered

    assert revives(sim) == [("subscribed",)]


def test_work_on_a_filtered_agent_revives_for_work():
    sim = subscribed(1)
    sim.offer()  # etcd-proxy launched; the rest filtered for 5 s

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING")  # docker is next

    assert revives(sim) == [("work",)]


def test_a_freed_slot_revives_when_its_next_waiter_is_hidden_for_long():
    sim = subscribed(2, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.advance()
    sim.tick(6)  # the ACCEPTs' filters ran out
    sim.offer()  # S0 takes the only slot; S1 declined for want of it, for 5 s
    sim.advance()
    sim.tick(1)
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "docker"), "TASK_FINISHED")  # 4 s of S1's filter left

    assert revives(sim) == [("slot_freed",)]


def test_a_freed_slot_does_not_revive_when_its_next_waiter_comes_back_within_a_round():
    """The first waiter's filter ends within about an allocation round: the allocator
    offers it then, so a REVIVE would buy nothing and offer every agent again. Until
    2026-11-29 the plan looked at the latest refusal's filter (the last in line, S2's, 3.5 s
    left) and REVIVEd."""
    sim = subscribed(3, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.advance()
    sim.tick(6)
    sim.offer("S0", "S1")  # S0 takes the only slot; S1 declined until now + 5
    sim.tick(3)
    sim.offer("S2")  # declined until now + 5: 3 s after S1's
    sim.advance()
    sim.tick(1.5)  # S1's filter ends in 0.5 s, S2's in 3.5 s
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "docker"), "TASK_FINISHED")

    assert revives(sim) == []


def test_the_tail_revives_for_the_tail():
    sim = plan_sim.subscribed(1, {"revive_interval_seconds": 0.25})
    sim.offer()  # etcd-proxy launched on the whole offer: no offer of the agent held
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)

    assert revives(sim) == [("tail",)]


def test_new_options_revive_for_the_agents_they_give_work():
    sim = subscribed(1, **ONLY_PROXY_AND_DOCKER)
    sim.converge()
    sim.offer()  # done: declined for an hour
    sim.decisions.clear()

    sim.change_options(etcd_mem="100")  # the proxy's fingerprint changes: it runs again

    assert revives(sim) == [("options",)]


def test_an_operators_continue_revives_for_the_operator():
    sim = subscribed(1)
    sim.core.interrupt(None, sim.now)
    sim.offer()  # interrupted: declined for 5 s
    sim.tick(3)
    sim.decisions.clear()

    sim.apply(sim.core.proceed(None, sim.now))

    assert revives(sim) == [("operator",)]


def test_one_revive_carries_the_reasons_of_every_want_in_its_window():
    reviver = Reviver()
    reviver.want(10.0, None, "work")
    reviver.want(math.inf, None, "subscribed")
    reviver.want(0.5, None, "slot_freed")  # runs out within a round: no reason to REVIVE

    assert reviver.due(0.0, 0.25) == [ev.Revive(("subscribed", "work"))]
    assert reviver.due(1.0, 0.25) == []


def test_freed_filter_is_the_earliest_end_among_the_waiters():
    slots = Slots(RestartBudget(1))
    slots.refused("S2", 0, 8.0)
    slots.refused("S1", 0, 5.0)
    assert slots.freed_filter() == (0, 5.0)

    slots.admit("S1", 3)  # S1 got the slot: it waits no more
    assert slots.freed_filter() == (0, 8.0)

    slots.refused("S2", 1, 9.0)  # refused again after a REVIVE: its newer filter counts
    assert slots.freed_filter() == (1, 9.0)

    slots.not_waiting("S2")
    assert slots.freed_filter() is None


def test_the_metric_counts_revives_by_reason():
    counters = {"REVIVE": 3, f"{REVIVE_REASON}slot_freed": 2, f"{REVIVE_REASON}work": 1}

    samples = {s.labels["reason"]: s.value for s in revives_metric(counters).samples}

    assert samples["slot_freed"] == 2 and samples["work"] == 1 and samples["tail"] == 0
    assert revive_reasons(counters) == {"slot_freed": 2, "work": 1}


def test_a_waiter_refused_again_keeps_its_place_in_line():
    """Its filter is timed by the waiters ahead of it, not by all of them: otherwise the
    first in line is hidden as long as the last, the held offers run out with every waiter
    hidden, and each freed slot wants a REVIVE (each offering every agent again)."""
    slots = Slots(RestartBudget(1))
    for agent_id in ("S1", "S2", "S3"):
        slots.refused(agent_id, 0, 5.0)
    assert [slots.ahead_of(a) for a in ("S1", "S2", "S3", "S4")] == [0, 1, 2, 3]

    slots.refused("S1", 0, 9.0)  # offered again and refused again: still first
    assert slots.ahead_of("S1") == 0

    slots.admit("S1", 4)  # the first in line got the slot: the others move up
    assert [slots.ahead_of(a) for a in ("S2", "S3")] == [0, 1]


def test_slot_waiters_are_declined_until_about_their_own_turn():
    """Budget 1, offers held for the next in line (`_slot_pool`): a waiter offered again is
    declined for its own place, not the whole line's."""
    sim = plan_sim.subscribed(8, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.tick(1)
    sim.advance()  # every proxy RUNNING, 1 s after its launch: a slot is held ~1 s
    sim.tick(1)
    sim.offer()  # one takes the slot, two offers held, the others declined for their turns
    assert len(sim.core.slots.waiters) >= 3
    first = {a: sim.core.agents[a].filtered_until - sim.now for a in sim.core.slots.waiters}
    waiters = sorted(first, key=first.get)
    sim.tick(0.1)

    sim.offer(waiters[0])  # the first of them, offered again

    again = sim.core.agents[waiters[0]].filtered_until - sim.now
    assert again < first[waiters[-1]]  # not as long as the last in line's
