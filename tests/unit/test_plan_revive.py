"""Offers keep pace with the rollout: filters are recorded, and REVIVE (rate-limited) brings
back an agent that has work while our filter still hides it from the allocator."""

import dataclasses

from calico_dcos.core import events as ev
from tests.helpers import plan_sim
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim

# Offers not held (`offer_hold_seconds` 0): the ACCEPT filters the rest for 5 s, so a
# REVIVE is what brings an agent back (with holding, tests/unit/test_plan_hold.py).
SLOW_FILTERS = {"wait_refuse_seconds": 5.0, "revive_interval_seconds": 2.0, "offer_hold_seconds": 0}


def subscribed(agents: int, **env) -> Sim:
    return plan_sim.subscribed(agents, SLOW_FILTERS, **env)


def test_the_accept_filter_is_recorded_like_a_decline():
    sim = subscribed(1)

    sim.offer()

    launch = sim.of(ev.Launch)[0]
    assert launch.refuse_seconds == 5.0
    assert sim.core.agents["S0"].filtered_until == sim.now + 5.0


def test_a_finished_step_on_a_filtered_agent_leads_to_a_revive():
    sim = subscribed(1)
    sim.offer()  # etcd-proxy launched; the agent's other resources filtered for 5 s

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING")  # docker is next

    assert len(sim.of(ev.Revive)) == 1


def test_a_freed_restart_slot_leads_to_a_revive_when_an_agent_waits_for_it():
    sim = subscribed(2, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.advance()  # both proxies RUNNING
    sim.tick(3)
    sim.offer()  # S0 launches docker; S1 is declined while S0 holds the only slot
    assert [s for _, a, s in sim.launches if s == "docker"] == ["docker"]
    sim.advance()  # docker RUNNING: still holding the slot
    sim.tick(1)
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "docker"), "TASK_FINISHED")  # S0 is done; S1's turn

    assert len(sim.of(ev.Revive)) == 1


def test_a_freed_restart_slot_does_not_revive_when_no_agent_waits():
    sim = subscribed(1, **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.advance()
    sim.tick(3)
    sim.offer()  # docker
    sim.advance()
    sim.tick(6)  # its ACCEPT filter has run out
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "docker"), "TASK_FINISHED")
    sim.tick(3)

    assert sim.core.progress() == (1, 1)
    assert sim.of(ev.Revive) == []


def test_a_retry_due_before_the_filter_ends_leads_to_a_revive():
    sim = subscribed(1, rollout_retry_backoff_seconds="1")
    sim.offer()

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_FAILED")  # retry in 1 s, filter 5 s

    assert len(sim.of(ev.Revive)) == 1


def test_no_revive_when_the_filter_ends_before_the_retry_is_due():
    sim = subscribed(1, rollout_retry_backoff_seconds="10")
    sim.offer()

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_FAILED")
    sim.tick(1)

    assert sim.of(ev.Revive) == []


def test_revives_never_exceed_the_rate_limit_over_a_whole_rollout():
    sim = Sim(agents=12, public=0, timings=SLOW_FILTERS, rollout_max_concurrent_restarts="2")
    sim.subscribe()

    for _ in range(200):
        sim.offer()
        if sim.core.complete:
            break
        sim.advance()
        sim.tick(0.25)

    assert sim.core.complete
    gaps = [b - a for a, b in zip(sim.revives, sim.revives[1:], strict=False)]
    assert len(gaps) >= 2
    assert min(gaps) >= 2.0


def test_revives_are_spaced_further_apart_in_a_big_cluster():
    config = dataclasses.replace(Sim(agents=1, public=0).core.config, revive_interval_seconds=0.25)

    assert config.revive_interval(100) == config.revive_interval_seconds == 0.25
    assert config.revive_interval(1000) == 0.4
    assert config.revive_interval(5000) == 2.0


def test_a_filter_set_in_the_same_instant_as_a_revive_still_gets_one():
    """The subscription's REVIVE and the first ACCEPT's filter share a timestamp: the ACCEPT
    leaves after the REVIVE, so its filter hides the agent when its next step is ready."""
    sim = Sim(agents=1, public=0, timings=SLOW_FILTERS)
    sim.subscribe()
    sim.core.on_disconnected()
    sim.subscribe()  # failed over under the same ID, reconciled: a REVIVE at this instant
    assert len(sim.of(ev.Revive)) == 1
    sim.offer()  # etcd-proxy launched in the same instant, the rest filtered for 5 s
    sim.decisions.clear()
    sim.tick(2.5)  # past the coalescing window

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING")

    assert len(sim.of(ev.Revive)) == 1
