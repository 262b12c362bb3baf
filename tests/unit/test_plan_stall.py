"""A stalled agent (its task never leaves TASK_STAGING) in the pure core: a held offer
released unused is not held again until the agent changes, and both roles' offers go to
other frameworks until the stuck task's launch deadline; slot waiters are not held while
every slot holder is stalled; the stalled step says how long and what it waits for, and the
plan is Degraded; `restart` and `force-complete` of a step whose task is live. Fed by the
unit tests' simulator (`tests.helpers.plan_sim`)."""

from calico_dcos.core import events as ev
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim, offer, subscribed


def offer_role(sim: Sim, agent_id: str, role: str) -> str:
    """One offer of the agent allocated to `role` (a MULTI_ROLE framework gets an agent
    once per role), answered; its ID."""
    body = offer(f"o-{role}-{sim.now}", agent_id, sim.hostnames[agent_id], role)
    sim.apply(sim.core.on_offers([body], sim.now))
    return body["id"]["value"]


def declined(sim: Sim, offer_id: str) -> float | None:
    for d in sim.of(ev.Decline):
        if offer_id in d.offer_ids:
            return d.refuse_seconds
    return None


def notes(sim: Sim, words: str) -> list[str]:
    return [d.message for d in sim.of(ev.Note) if words in d.message]


def docker_launched_on_s0(**env) -> Sim:
    """S0 (and S1, S2 … if asked) with etcd-proxy RUNNING; S0's docker launched (it holds
    the only restart slot) and left STAGING, as a task the agent never starts."""
    sim = subscribed(env.pop("agents", 1), rollout_max_concurrent_restarts="1", **env)
    sim.offer()
    sim.tick(2)
    sim.advance()  # every etcd-proxy RUNNING
    sim.offer("S0")
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker"]
    return sim


def test_a_released_hold_is_not_taken_back_and_both_roles_go_to_others_until_the_deadline():
    sim = subscribed(1)
    first = offer_role(sim, "S0", "*")  # etcd-proxy launched, left STAGING
    launched = sim.now
    held = offer_role(sim, "S0", "slave_public")
    assert sim.core.held_offers == 1 and declined(sim, held) is None
    hold = sim.core.config.offer_hold_seconds
    deadline = launched + sim.core.config.launch_timeout_seconds

    sim.tick(hold)

    assert declined(sim, held) == deadline - sim.now
    (line,) = notes(sim, "released its offer")
    assert "still waits for etcd-proxy (TASK_STAGING);" in line and "other frameworks" in line
    for role in ("*", "slave_public"):  # each role's offer, declined as long: not held
        sim.tick(1)
        assert declined(sim, offer_role(sim, "S0", role)) == deadline - sim.now
    assert sim.core.held_offers == 0
    assert first not in [d for d in sim.of(ev.Decline) for _ in d.offer_ids]

    # the task moves: the agent changed, its offers are held again
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_STARTING")
    offer_role(sim, "S0", "*")
    assert sim.core.held_offers == 1
    assert len(notes(sim, "released its offer")) == 1  # one line per release, none per offer


def test_the_end_of_the_stuck_task_brings_the_agent_back_with_a_revive():
    sim = subscribed(1)
    offer_role(sim, "S0", "*")
    offer_role(sim, "S0", "slave_public")
    sim.tick(sim.core.config.offer_hold_seconds)
    sim.decisions.clear()

    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING", healthy=True)
    sim.tick(2)

    assert sim.of(ev.Revive)  # its filter would hide it for minutes: lifted
    offer_role(sim, "S0", "*")
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker"]


def test_slot_waiters_are_not_held_while_every_slot_holder_is_stalled():
    sim = docker_launched_on_s0(agents=3, **ONLY_PROXY_AND_DOCKER)
    sim.offer("S1")  # next in line: held for the slot
    assert sim.core.held_offers == 1
    sim.offer("S0")  # held while its docker runs
    config = sim.core.config
    launched = sim.now

    sim.tick(config.offer_hold_seconds)  # released: waits as long as it may take
    assert notes(sim, "agent-S1: released its offer")
    assert "a restart slot" in notes(sim, "agent-S1: released")[0]
    (own,) = notes(sim, "agent-S0: released its offer")  # its etcd-proxy runs: done
    assert "still waits for docker (TASK_STAGING);" in own
    sim.tick(config.stalled_seconds - config.offer_hold_seconds)  # S0's docker stalled
    sim.decisions.clear()

    sim.offer("S1", "S2")  # S2 was never held: not held either, behind a stalled holder

    assert sim.core.held_offers == 0
    deadline = launched + config.launch_timeout_seconds
    assert {d.refuse_seconds for d in sim.of(ev.Decline)} == {deadline - sim.now}
    assert sim.steps_launched("S1") == sim.steps_launched("S2") == ["etcd-proxy"]

    # the slot frees: the waiters come back (REVIVE) and the next one launches
    sim.update(sim.live_task("S0", "docker"), "TASK_RUNNING")
    sim.update(sim.live_task("S0", "docker"), "TASK_FINISHED")
    sim.tick(1)
    assert sim.of(ev.Revive)
    sim.offer("S1", "S2")
    assert [a for _, a, s in sim.launches if s == "docker"][1:] in (["S1"], ["S2"])
    assert sim.max_restarting == 1


def test_a_stalled_step_says_how_long_and_what_it_waits_for_and_the_plan_is_degraded():
    sim = docker_launched_on_s0(**ONLY_PROXY_AND_DOCKER)
    config = sim.core.config
    sim.tick(config.stalled_seconds - 1)
    assert not sim.core.summary(sim.now)["degraded"]
    assert notes(sim, "still TASK_STAGING") == []

    sim.tick(1)
    sim.tick(70)

    expected = (
        "launched 2 min 10 s ago, still TASK_STAGING on its agent: the agent has not "
        "started it (fetching its URIs, or the agent is busy); killed and retried at "
        "10 min (launch_timeout)"
    )
    (line,) = notes(sim, "still TASK_STAGING")  # logged once, when it crossed the threshold
    assert line.startswith("agent-S0: docker launched 1 min ago, still TASK_STAGING")
    phase = sim.core.plan_view(sim.now)["phases"][0]
    docker = next(s for s in phase["steps"] if s["name"] == "docker")
    assert (docker["status"], docker["message"]) == ("STARTING", expected)
    summary = sim.core.summary(sim.now)
    assert summary["degraded"] and summary["problems"] == [f"agent-S0: docker {expected}"]
    record = sim.core.agent_records(sim.now)["S0"]
    assert record["steps"]["docker"]["message"] == expected
    assert sim.records["S0"]["steps"]["docker"]["message"] == ""  # never stored

    sim.update(sim.live_task("S0", "docker"), "TASK_RUNNING")
    assert not sim.core.summary(sim.now)["degraded"]
    phase = sim.core.plan_view(sim.now)["phases"][0]
    assert next(s for s in phase["steps"] if s["name"] == "docker")["status"] == "STARTED"


def test_restart_of_a_step_still_staging_kills_it_and_launches_it_again_within_the_budget():
    sim = docker_launched_on_s0(agents=2, **ONLY_PROXY_AND_DOCKER)
    stuck = sim.live_task("S0", "docker")
    sim.decisions.clear()

    sim.apply(sim.core.restart("S0", "docker", sim.now))

    assert [k.task_id for k in sim.of(ev.Kill)] == [stuck]
    (line,) = notes(sim, "restarted by an operator")
    assert "had not started: killed, and launched again within the restart budget" in line
    assert sim.core.restarting == {"S0"}  # keeps its slot while being killed
    sim.offer()
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker"]  # not twice at once

    sim.update(stuck, "TASK_KILLED")
    sim.offer()
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker", "docker"]
    assert sim.steps_launched("S1") == ["etcd-proxy"]
    assert sim.max_restarting == 1


def test_restart_of_a_running_one_shot_runs_it_again_once_it_ends_without_killing_it():
    sim = docker_launched_on_s0(**ONLY_PROXY_AND_DOCKER)
    running = sim.live_task("S0", "docker")
    sim.update(running, "TASK_RUNNING")
    sim.decisions.clear()

    sim.apply(sim.core.restart("S0", "docker", sim.now))

    assert sim.of(ev.Kill) == []
    (line,) = notes(sim, "restarted by an operator")
    assert "is running: it runs again once that task ends" in line
    sim.update(running, "TASK_FINISHED")
    sim.offer()
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker", "docker"]


def test_force_complete_kills_the_live_task_and_keeps_its_slot_until_it_ends():
    sim = docker_launched_on_s0(agents=2, **ONLY_PROXY_AND_DOCKER)
    stuck = sim.live_task("S0", "docker")
    sim.decisions.clear()

    sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    assert [k.task_id for k in sim.of(ev.Kill)] == [stuck]
    (line,) = notes(sim, "force-completed by an operator")
    assert f"its task {stuck} (TASK_STAGING) had not started: killed" in line
    sim.offer("S1")
    assert sim.steps_launched("S1") == ["etcd-proxy"]  # S0 may still restart Docker
    sim.update(stuck, "TASK_KILLED")
    sim.offer("S1")
    assert sim.steps_launched("S1") == ["etcd-proxy", "docker"]
    assert sim.max_restarting == 1


def test_force_complete_leaves_a_running_one_shot_to_finish_and_keeps_its_slot():
    sim = docker_launched_on_s0(agents=2, **ONLY_PROXY_AND_DOCKER)
    running = sim.live_task("S0", "docker")
    sim.update(running, "TASK_RUNNING")
    sim.decisions.clear()

    sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    assert sim.of(ev.Kill) == []  # a Docker restart stopped half-way could break the host
    (line,) = notes(sim, "force-completed by an operator")
    assert "is left to finish" in line and "restart slot is kept until it ends" in line
    sim.offer("S1")
    assert sim.steps_launched("S1") == ["etcd-proxy"]
    sim.update(running, "TASK_FINISHED")
    sim.offer("S1")
    assert sim.steps_launched("S1") == ["etcd-proxy", "docker"]
    assert sim.max_restarting == 1


def test_force_complete_of_a_running_daemon_leaves_it_running():
    """calico-node RUNNING but not healthy yet (not done: its health check gates it)."""
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()
    node = sim.live_task("S0", "node")
    sim.update(node, "TASK_RUNNING", healthy=False)
    sim.decisions.clear()

    sim.apply(sim.core.force_complete("S0", "node", sim.now))

    assert sim.of(ev.Kill) == []
    (line,) = notes(sim, "force-completed by an operator")
    assert f"its task {node} (TASK_RUNNING) is left running" in line


def test_force_complete_of_a_done_daemon_changes_nothing():
    """A RUNNING daemon without a health check is done: nothing to force (no FORCED mark)."""
    sim = subscribed(1, **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    sim.tick(2)
    proxy = sim.live_task("S0", "etcd-proxy")
    sim.update(proxy, "TASK_RUNNING")
    sim.decisions.clear()

    sim.apply(sim.core.force_complete("S0", "etcd-proxy", sim.now))

    assert sim.of(ev.Kill) == [] and sim.of(ev.SaveAgent) == []
    assert notes(sim, "was done already (its task is running): nothing changed")


def test_a_waiter_declined_for_want_of_a_slot_says_so_while_a_slot_is_free():
    no_holding = {"offer_hold_seconds": 0.0}  # every waiter declined, none held
    budget = {"rollout_max_concurrent_restarts": "1"}
    sim = Sim(3, 0, timings=no_holding, **budget, **ONLY_PROXY_AND_DOCKER)
    sim.subscribe()
    sim.tick(3)
    sim.offer()
    sim.tick(2)
    sim.advance()
    sim.offer()  # one launches docker, the others are declined for want of a slot
    (first,) = [a for _, a, s in sim.launches if s == "docker"]
    sim.update(sim.live_task(first, "docker"), "TASK_RUNNING")
    sim.update(sim.live_task(first, "docker"), "TASK_FINISHED")  # the slot is free

    waiting = next(a for a in ("S0", "S1", "S2") if a != first)
    phase = next(p for p in sim.core.plan_view(sim.now)["phases"] if p["id"] == waiting)
    docker = next(s for s in phase["steps"] if s["name"] == "docker")
    assert docker["status"] == "WAITING"
    assert docker["message"].startswith("waiting for a restart slot (1 at a time): one is free")


def test_new_options_let_a_released_agent_be_held_again():
    sim = subscribed(1)
    offer_role(sim, "S0", "*")
    offer_role(sim, "S0", "slave_public")
    sim.tick(sim.core.config.offer_hold_seconds)
    offer_role(sim, "S0", "*")
    assert sim.core.held_offers == 0

    sim.change_options(rollout_retry_backoff_seconds="7")
    offer_role(sim, "S0", "*")

    assert sim.core.held_offers == 1


def test_a_hold_the_master_rescinds_is_not_renewed_so_the_agent_reaches_others():
    """A master whose --offer_timeout (20 s here) is shorter than offer_hold_seconds takes
    every hold back before its release: the rescind ends the hold as a release does."""
    sim = docker_launched_on_s0(**ONLY_PROXY_AND_DOCKER)
    held = offer_role(sim, "S0", "*")
    assert sim.core.held_offers == 1

    sim.tick(20)
    sim.apply(sim.core.on_rescind(held))
    again = offer_role(sim, "S0", "*")

    assert sim.core.held_offers == 0
    assert declined(sim, again) is not None and declined(sim, again) > 30
    assert notes(sim, "the master rescinded its held offer")


def test_held_slot_waiters_are_released_once_every_slot_holder_stalls():
    sim = docker_launched_on_s0(agents=2, **ONLY_PROXY_AND_DOCKER)
    config = sim.core.config
    sim.tick(config.stalled_seconds - 5)  # S0's docker not stalled yet
    held = offer_role(sim, "S1", "*")  # next in line: held for the slot
    assert sim.core.held_offers == 1
    sim.decisions.clear()

    sim.tick(6)  # S0's docker stalled: S1 held 6 s, far less than a hold

    assert config.offer_hold_seconds > 6
    assert sim.core.held_offers == 0
    assert declined(sim, held) is not None
    assert notes(sim, "agent-S1: released its offer")


def test_a_task_restarted_by_an_operator_whose_kill_is_unconfirmed_at_its_deadline_is_no_failure():
    """`plan restart` kills the STAGING task; the agent has not confirmed the KILL when the
    task's launch deadline comes. The kill is ours: the deadline neither kills it as late nor
    counts its end as a failure, and the step is launched again at the next offer."""
    sim = docker_launched_on_s0(**ONLY_PROXY_AND_DOCKER)
    stuck = sim.live_task("S0", "docker")
    sim.apply(sim.core.restart("S0", "docker", sim.now))
    sim.decisions.clear()

    sim.tick(sim.core.config.launch_timeout_seconds + 1)  # past the deadline, unconfirmed
    assert not notes(sim, "after")  # no "still TASK_STAGING after 600 s: killed"
    sim.update(stuck, "TASK_KILLED", reason="REASON_TASK_KILLED_DURING_LAUNCH")
    st = sim.core.agents["S0"].steps["docker"]
    view = sim.core.plan_view(sim.now)["phases"][0]
    words = str(next(s for s in view["steps"] if s["name"] == "docker"))

    assert (st.failures, st.last_failure, st.retry_at) == (0, "", 0.0)
    assert "fail" not in words.lower() and "after" not in words, words
    assert not sim.core.summary(sim.now)["degraded"]
    sim.offer("S0")
    assert sim.steps_launched("S0") == ["etcd-proxy", "docker", "docker"]
