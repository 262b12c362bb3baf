"""The rollout always makes progress or says what it waits for (issue 13, case 2).

The invariant, checked after every event of random runs: no agent has work that it could
start now with nothing in the way — every agent whose next action is not done is either
waiting on Mesos (a live task, an offer it will get), on time (a retry due), on the operator
(interrupted, force-complete or restart of a step that gave up), or on a restart slot that
someone holds while making progress.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.plan_sim import Sim


def restarted(sim: Sim, **env: str) -> Sim:
    """A new scheduler over the old one's records and the master's tasks, with `env` changed."""
    new = Sim(agents=len(sim.agents), public=0, records=sim.records, framework_id="fw-1",
              **(sim.env | env))  # fmt: skip
    new.tasks, new.kills, new.now = sim.tasks, sim.kills, sim.now  # the master's, unchanged
    new.subscribe("fw-1")
    return new


def run(sim: Sim, rounds: int = 40) -> None:
    for _ in range(rounds):
        if sim.core.complete:
            return
        sim.offer()
        sim.advance()
        sim.tick(6.0)


def test_a_failed_restart_step_and_an_options_change_do_not_deadlock():
    """Two agents, budget 1: docker fails on the agent holding the slot; the scheduler comes
    back with the fault fixed and a changed etcd proxy port, so both proxies must be replaced."""
    sim = Sim(agents=2, public=0, rollout_max_concurrent_restarts="1",
              service_agent_python="/missing/python3")  # fmt: skip
    sim.subscribe()
    sim.offer()
    sim.advance()  # both proxies RUNNING
    sim.offer()  # docker on one agent, which takes the only slot
    (holder,) = sim.core.restarting
    docker = sim.live_task(holder, "docker")
    sim.update(docker, "TASK_FAILED", message="Command exited with status 127")

    sim = restarted(sim, service_agent_python="/opt/mesosphere/bin/python3",
                    etcd_listen_port="2479")  # fmt: skip
    run(sim)

    assert sim.core.complete, sim.core.summary(sim.now)
    assert sim.max_restarting == 1
    kills = {sim.tasks[t]["agent"] for t in sim.kills}
    assert kills == {"S0", "S1"}  # both old proxies replaced


# -- the property ------------------------------------------------------------------------

EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.just(None)),
        st.tuples(st.just("advance"), st.just(None)),
        st.tuples(st.just("tick"), st.sampled_from([1.0, 10.0, 400.0])),
        st.tuples(st.just("fail"), st.integers(0, 50)),
        st.tuples(st.just("options"), st.sampled_from(["2379", "2479", "2579"])),
        st.tuples(st.just("restart_scheduler"), st.just(None)),
        st.tuples(
            st.just("operator"),
            st.tuples(
                st.sampled_from(["restart", "force_complete", "interrupt", "proceed"]),
                st.integers(0, 50),
            ),
        ),
    ),
    max_size=40,
)


def stuck(sim: Sim) -> list[str]:
    """Agents with work that nothing will ever start."""
    core, problems = sim.core, []
    for aid, agent in core.agents.items():
        action = core.next_action(agent, sim.now)
        if action.kind in ("done", "skip", "wait", "delay", "interrupted"):
            continue
        if core.interrupted or agent.interrupted:
            continue  # waits for the operator's `continue`
        may_use_slot = aid in core.slots.holders or len(core.slots.holders) < core.budget
        if action.kind == "replace" and may_use_slot:
            problems.append(f"{aid}: {action.step.name} to replace and a slot it may use")
        elif action.kind == "replace" or action.step.restarts:
            idle = [] if may_use_slot else idle_holders(sim)
            if idle:
                problems.append(f"{aid}: waits for a slot held by {idle}")
    return problems


def idle_holders(sim: Sim) -> list[str]:
    """Slot holders with nothing under way or due: they would hold their slot for ever."""
    core = sim.core
    return [
        aid
        for aid in core.slots.holders
        if core.next_action(core.agents[aid], sim.now).kind in ("done", "skip")
    ]


def pick(sim: Sim, n: int) -> tuple[str, str] | None:
    """An agent the core knows (it has offered) and one of the enabled steps."""
    known = sorted(sim.core.agents)
    if not known:
        return None
    agent = known[n % len(known)]
    steps = [s.name for s in sim.core.config.enabled_steps]
    return agent, steps[n % len(steps)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EVENTS)
def test_no_sequence_of_events_leaves_free_work_that_nothing_starts(events):
    sim = Sim(agents=3, public=0, rollout_max_concurrent_restarts="1")
    sim.subscribe()
    for kind, arg in events:
        if kind == "offer":
            sim.offer()
        elif kind == "advance":
            sim.advance()
        elif kind == "tick":
            sim.tick(arg)
        elif kind == "fail":
            live = [t for t, task in sim.tasks.items() if task["state"] == "TASK_RUNNING"]
            if live:
                sim.update(live[arg % len(live)], "TASK_FAILED", message="exit status 1")
        elif kind == "options":
            sim.change_options(etcd_listen_port=arg)
        elif kind == "restart_scheduler":
            sim = restarted(sim)
        else:
            command, n = arg
            picked = pick(sim, n)
            if picked is None:
                continue
            agent, step = picked
            if command in ("restart", "force_complete"):
                sim.apply(getattr(sim.core, command)(agent, step, sim.now))
            else:
                sim.apply(getattr(sim.core, command)(agent, sim.now))
        assert stuck(sim) == [], (kind, arg)
    # With the operator's interrupts lifted and time to retry, every run converges.
    for agent in sim.core.agents:
        sim.apply(sim.core.proceed(agent, sim.now))
    run(sim, rounds=80)
    assert sim.core.complete, sim.core.summary(sim.now)
