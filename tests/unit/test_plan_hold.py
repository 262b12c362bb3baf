"""Held offers: an offer of an agent whose next step will be ready soon (its step of ours is
running, or it is next in line for a restart slot) is kept and ACCEPTed the moment that step
can run, with no REVIVE; released after `offer_hold_seconds`; forgotten when Mesos rescinds
it, the agent goes, or the subscription ends. The pure core, fed by the unit tests' simulator
(`tests.helpers.plan_sim`)."""

from calico_dcos.core import events as ev
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim, subscribed


def offer(sim: Sim, agent_id: str) -> str:
    """One offer of the agent, answered; its ID."""
    body = sim.offer_for(agent_id)
    sim.apply(sim.core.on_offers([body], sim.now))
    return body["id"]["value"]


def answered(sim: Sim) -> list[str]:
    """Every offer ID a Launch or a Decline answered, in order."""
    ids = []
    for d in sim.decisions:
        if isinstance(d, ev.Launch):
            ids.append(d.offer_id)
        elif isinstance(d, ev.Decline):
            ids.extend(d.offer_ids)
    return ids


def held_while_proxy_runs(sim: Sim) -> str:
    """S0's etcd-proxy launched, and the offer of the rest held: its ID."""
    offer(sim, "S0")
    sim.decisions.clear()
    held = offer(sim, "S0")
    assert sim.core.held_offers == 1
    return held


def test_the_next_step_launches_on_the_held_offer_when_the_running_one_is_done():
    sim = subscribed(1)
    offer(sim, "S0")
    (first,) = sim.of(ev.Launch)
    assert first.refuse_seconds == 0  # the rest comes back at the next round, to be held
    sim.decisions.clear()

    held = offer(sim, "S0")  # etcd-proxy still STAGING: kept, neither launched nor declined
    assert sim.decisions == [] and sim.core.held_offers == 1

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)

    (launch,) = sim.of(ev.Launch)
    assert launch.offer_id == held
    assert launch.task_info["name"] == "calico-docker"
    assert sim.of(ev.Revive) == []
    assert sim.core.held_offers == 0


def test_a_freed_restart_slot_goes_at_once_to_the_held_offer_next_in_line():
    sim = subscribed(2, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.tick(2)  # launches take 2 s here: a slot is held longer than an allocation interval
    sim.advance()  # both proxies RUNNING
    sim.offer()  # S0 takes the only slot; S1's offer is held for it
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker"]
    assert sim.steps_launched("S1") == ["etcd-proxy"]
    assert sim.core.held_offers == 1
    phase = next(p for p in sim.core.plan_view(sim.now)["phases"] if p["name"] == "agent-S1")
    docker = next(s for s in phase["steps"] if s["name"] == "docker")
    assert docker["status"] == "WAITING"
    assert "next in line: its agent's offer is held" in docker["message"]
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "docker"), "TASK_RUNNING")
    sim.update(sim.live_task("S0", "docker"), "TASK_FINISHED")

    assert [(a, s) for _, a, s in sim.launches[-1:]] == [("S1", "docker")]
    assert sim.of(ev.Revive) == []
    assert sim.max_restarting == 1


def test_no_more_than_a_budget_of_slot_waiters_is_held_when_restarts_take_long():
    sim = subscribed(3, rollout_max_concurrent_restarts="1", **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.tick(2)
    sim.advance()
    sim.decisions.clear()

    sim.offer()  # S0 launches docker, one waiter is held, the other declined

    assert len(sim.of(ev.Launch)) == 1
    assert sim.core.held_offers == 1
    assert sum(len(d.offer_ids) for d in sim.of(ev.Decline)) == 1


def test_a_held_offer_is_released_after_offer_hold_seconds():
    sim = subscribed(1)
    held = held_while_proxy_runs(sim)

    sim.tick(sim.core.config.offer_hold_seconds - 1)
    assert sim.of(ev.Decline) == []
    sim.tick(1)

    (decline,) = sim.of(ev.Decline)
    assert decline.offer_ids == (held,)
    # until the launch deadline of the task it waits for (launched as the hold began)
    config = sim.core.config
    assert decline.refuse_seconds == config.launch_timeout_seconds - config.offer_hold_seconds
    assert sim.core.held_offers == 0
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)
    assert sim.of(ev.Launch) == []  # nothing held any more: the next offer will do


def test_a_rescinded_held_offer_is_never_used_and_the_next_one_is():
    sim = subscribed(1)
    held = held_while_proxy_runs(sim)

    said = sim.core.on_rescind(held)
    sim.apply(said)
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)

    assert [n.message for n in said if isinstance(n, ev.Note)] == [
        f"{sim.hostnames['S0']}: the master rescinded its held offer {held} (--offer_timeout, "
        "or the agent left); not held again until it changes"
    ]
    assert sim.core.on_rescind("never-held") == []
    assert held not in answered(sim)
    assert sim.of(ev.Launch) == []
    fresh = offer(sim, "S0")
    (launch,) = sim.of(ev.Launch)
    assert launch.offer_id == fresh


def test_a_new_subscription_forgets_every_held_offer():
    sim = subscribed(1)
    held = held_while_proxy_runs(sim)

    sim.core.on_disconnected()
    sim.subscribe()
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)

    assert sim.core.held_offers == 0
    assert held not in answered(sim)


def test_a_lost_agent_drops_its_held_offer_without_declining_it():
    sim = subscribed(1)
    held = held_while_proxy_runs(sim)

    sim.apply(sim.core.on_agent_lost("S0", sim.now))
    sim.tick(sim.core.config.offer_hold_seconds + 1)

    assert sim.core.held_offers == 0
    assert held not in answered(sim)


def test_a_second_offer_of_an_agent_held_already_is_declined():
    sim = subscribed(1)
    held = held_while_proxy_runs(sim)

    other = offer(sim, "S0")

    (decline,) = sim.of(ev.Decline)
    assert decline.offer_ids == (other,)
    assert decline.refuse_seconds == sim.core.config.offer_hold_seconds
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)
    assert sim.of(ev.Launch)[0].offer_id == held


def test_a_whole_rollout_answers_each_offer_once_within_the_budget():
    sim = Sim(agents=8, public=1, rollout_max_concurrent_restarts="2")
    sim.subscribe()

    sim.converge()

    ids = answered(sim)
    assert len(ids) == len(set(ids))
    assert sim.max_restarting <= 2
    assert sim.core.held_offers == 0 or sim.core.complete
    launched = [(a, s) for _, a, s in sim.launches]
    assert len(launched) == len(set(launched))  # no step launched twice
