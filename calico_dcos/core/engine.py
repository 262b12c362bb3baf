"""The engine that runs a plan: what deploy and uninstall share, written once.

A plan (`deploy.Deploy`, `uninstall.Uninstall`) says what each agent needs next; the engine
does the rest the same way for both:

- the subscription (`on_subscribed` saves a new framework ID, then the plan's own start),
  disconnection and rescinded offers;
- answering offers (`on_offers`): one launch per agent per batch, declines batched, every
  filter recorded so that a REVIVE (rate-limited, `revive.Reviver`) brings back an agent
  that gets work while filtered;
- held offers (`_hold`, used by the deploy plan): at most one per agent, ACCEPTed the moment
  the agent's next step can run, released (DECLINE) after `offer_hold_seconds`, forgotten
  when Mesos rescinds it, the agent goes, or the subscription ends;
- offer evaluation: an offer too small for a step is refused with a reason an operator can
  read ("agent-3 offers 0.05 cpus; calico-node needs 0.1"), shown on the step and logged
  once per change (`Note`);
- the life of a step's task: launch (task ID, attempt, STAGING), status updates, how an
  unsuccessful end is classified (our kill, cut off by the agent restart it caused, vanished
  in Mesos, or a failure with exponential backoff);
- KILLs until Mesos confirms an end: a KILL may be lost after the master accepted it, so
  one not confirmed is sent again with backoff, and at once after (re)subscription;
- launch deadlines: a task still STAGING or STARTING after `launch_timeout_seconds` is
  killed, and its end counts as a failure (retried with backoff, Degraded after three),
  unless we were killing it already (`plan restart`): a kill we asked for is no failure;
- the restart budget (`budget.Slots`, the one home of slot holding);
- `interrupt` / `proceed` (the plan API's `continue`).

Pure: events and the time in, decisions out; not thread-safe (the scheduler serialises).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import orjson

from calico_dcos import compact_json
from calico_dcos.core.budget import Slots
from calico_dcos.core.config import PlanConfig, Restarts, StepSpec
from calico_dcos.core.events import (
    AGENT_RESTART_REASONS,
    ENDED,
    VANISHED,
    Decision,
    Decline,
    Kill,
    Launch,
    Note,
    ReadStderr,
    SaveFrameworkId,
    in_calls,
)
from calico_dcos.core.failures import (
    failure_words,
    fetch_failed,
    gave_up_words,
    host_caused,
    output_words,
)
from calico_dcos.core.offers import (
    HOLD,
    Hold,
    answer_offers,
    offer_role,
    shortfall,
    task_on_offer,
)
from calico_dcos.core.records import (
    AgentState,
    StepState,
    agent_record,
    parse_task_id,
    task_id_for,
)
from calico_dcos.core.revive import REVIVE_WORTH_SECONDS, SLOT_FREED, Reviver
from calico_dcos.core.views import span, stall_words
from calico_dcos.mesos import TERMINAL_STATES

LAUNCHING = frozenset({"TASK_STAGING", "TASK_STARTING"})  # launched, not running yet


def cut_off_by_restart(status: Mapping) -> bool:
    """A task that restarts its own agent ends with the restart: with a reason saying so,
    lost track of (TASK_LOST, TASK_GONE, …), or TASK_KILLED whatever the reason, since the
    agent going down kills what it runs. Deploy and uninstall classify it alike."""
    if status.get("reason") in AGENT_RESTART_REASONS:
        return True
    return status["state"] in VANISHED or status["state"] == "TASK_KILLED"


def offer_json(offer: Mapping) -> bytes | str:
    """A held offer as JSON: orjson's bytes (~1 µs for an offer, against ~10 for the standard
    library's text), or the standard library's text for what orjson would not give back as it
    was: what it refuses (a lone surrogate, an integer beyond 64 bits) and any `null` in its
    bytes, where a NaN or infinite float may have gone (orjson writes them as null; the
    standard library as `NaN`/`Infinity`, which it reads back). Either way
    `offer_from_json` returns an equal offer."""
    try:
        data = compact_json.dumps(offer)  # held: its own size, not orjson's buffer
    except orjson.JSONEncodeError:
        return json.dumps(offer, separators=(",", ":"))
    return data if b"null" not in data else json.dumps(offer, separators=(",", ":"))


def offer_from_json(data: bytes | str) -> dict:
    """The inverse of `offer_json`."""
    return orjson.loads(data) if isinstance(data, bytes) else json.loads(data)


class Engine:
    """State and rules shared by every plan. Subclasses implement `_start` (after
    SUBSCRIBED), `_use_offer` (one offer), `_save_launch` (what to store with a launch),
    `_set_interrupted` and `restart_limit_agents` (how many agents the budget counts)."""

    def __init__(self, config: PlanConfig, framework_id: str | None = None) -> None:
        self.config = config
        self.framework_id = framework_id
        self.subscribed = False
        self.interrupted = False
        self.agents: dict[str, AgentState] = {}
        self.slots = Slots(config.budget)
        self.offer_notes: dict[str, str] = {}  # agent_id -> why its last offer did not fit
        self._revive = Reviver()
        # Could the master hold filters of ours? Not for a framework it has just registered
        # (a new framework ID), until this subscription refuses something (`_refuse`).
        self._filters_possible = True
        # plan_view's phases, each kept until its agent changes (`_dirty`), all of them until
        # something every phase may show changes (`_phase_cache`'s `shared`)
        self._phases: dict[str, dict] = {}
        self._phases_shared: tuple = ()
        # tasks we asked Mesos to kill, until it confirms an end: task_id -> (agent, step)
        self._killing: dict[str, tuple[str, str]] = {}
        # tasks launched and not yet RUNNING: task_id -> (agent, step, deadline)
        self._launching: dict[str, tuple[str, str, float]] = {}
        # RUNNING tasks of steps that have failed before: task_id -> (agent, step, when it
        # has been up `stable_seconds`, when the count of failures starts over). Only steps
        # with failures: a handful, whatever the size of the cluster.
        self._stabilising: dict[str, tuple[str, str, float]] = {}
        # offers held (`_hold`): agent_id -> (offer ID, the offer as JSON, held since), oldest
        # first (JSON: a fifth of the dict's memory, and every agent's offer may be held at
        # once while its first step runs); offer ID -> agent_id; the agents among them
        # waiting for a restart slot, in line; and offers to DECLINE with the next batch
        # (refuse seconds -> offer IDs)
        self._held: dict[str, tuple[str, bytes | str, float]] = {}
        self._held_ids: dict[str, str] = {}
        self._slot_held: dict[str, None] = {}
        self._declining: dict[float, list[str]] = {}
        # agents whose held offer was released unused (`_release_stale`) -> whether it was
        # held for a restart slot: their offers are declined, not held, until something
        # about them changes (`_touched`), or for slot waiters until a slot frees
        self._unheld: dict[str, bool] = {}
        # launches stalled: still STAGING or STARTING `stalled_seconds` after the launch
        # (`_check_deadlines`): task_id -> (agent, step). Rare: a handful at any size.
        self._stalled: dict[str, tuple[str, str]] = {}

    # -- the restart budget ----------------------------------------------------------------

    def restart_limit_agents(self) -> int:
        """How many agents a percentage budget is a percentage of."""
        raise NotImplementedError

    @property
    def budget(self) -> int:
        """Agents that may restart at once: a count, or a percentage rounded down, at least 1."""
        return self.slots.limit(self.restart_limit_agents())

    @property
    def restarting(self) -> frozenset[str]:
        """Agents holding a restart slot."""
        return frozenset(self.slots.holders)

    def _slot_free(self, agent_id: str) -> bool:
        return self.slots.free_for(agent_id, self.restart_limit_agents())

    def _admit(self, agent_id: str, now: float | None = None) -> None:
        self.slots.admit(agent_id, self.restart_limit_agents(), now)

    def _sync_slot(self, agent_id: str, holds: bool, now: float | None = None) -> None:
        """The agent's state says it holds a slot or not; a freed slot goes to a held offer
        of an agent waiting for one (`Deploy._pump`), or, when none is held, brings back
        the agents refused one (their filters lifted by a REVIVE)."""
        if self.slots.sync(agent_id, holds, now):
            for aid in [a for a, for_slot in self._unheld.items() if for_slot]:
                del self._unheld[aid]  # a slot frees: its waiters' offers are held again
            waited = self.slots.freed_filter()
            if waited is not None and not self._slot_held:
                self._revive.want(waited[1], waited[0], SLOT_FREED)

    def _refuse_for_slot(
        self, agent: AgentState, now: float, seconds: float | None = None
    ) -> float:
        """Decline the agent's offer for want of a restart slot, for `seconds` (default
        `wait_refuse_seconds`), and count it among the agents waiting for one."""
        wait = self.config.wait_refuse_seconds if seconds is None else seconds
        refused = self._refuse(agent, wait, now)
        if agent.agent_id not in self.slots.waiters:
            self._dirty(agent.agent_id)  # its step's words say it waits for a slot
        self.slots.refused(agent.agent_id, agent.filtered_after, agent.filtered_until)
        return refused

    # -- events ----------------------------------------------------------------------------

    def on_subscribed(self, framework_id: str, now: float) -> list[Decision]:
        """SUBSCRIBED (first time or again): keep the framework ID, then the plan's start."""
        out: list[Decision] = []
        self.subscribed = True
        self._forget_held()  # any offer of an earlier subscription is void
        self._filters_possible = framework_id == self.framework_id
        if framework_id != self.framework_id:
            self.framework_id = framework_id
            out.append(SaveFrameworkId(framework_id))
        self._start(now, out)
        return out

    def _start(self, now: float, out: list[Decision]) -> None:
        raise NotImplementedError

    def on_disconnected(self) -> None:
        """Offers die with the stream: the master rescinds every outstanding offer of a
        framework that disconnects (apache/mesos src/master/master.cpp, `Master::disconnect`
        calls `deactivate(framework, true)`, which rescinds them); nothing else changes."""
        self.subscribed = False
        self._forget_held()

    def on_allocation_interval(self, seconds: float, now: float) -> list[Decision]:
        """The master's `--allocation_interval` in seconds, which the scheduler asked it for
        (`GET_FLAGS`, at each subscription): what the plan times its held offers by from now
        on (`PlanConfig.allocation_interval_seconds`). Said in a `Note` (the log at INFO)
        when it changes; ValueError for a value not more than 0."""
        before = self.config.allocation_interval_seconds
        self.config = self.config.with_allocation_interval(seconds)
        if seconds == before:
            return []
        return [
            Note(
                f"the master's --allocation_interval is {seconds:g} s (GET_FLAGS; the plan "
                f"assumed {before:g} s): held offers are timed by it",
                "info",
            )
        ]

    def on_rescind(self, offer_id: str) -> list[Decision]:
        """Mesos took a held offer back (`--offer_timeout`, its agent removed or gone): it
        is forgotten, and any DECLINE of it not sent yet is dropped. Its resources come back
        unfiltered at a later allocation round (`Master::rescindOffer` recovers them with no
        filter). A held one ends the hold as `_release_stale` does: the agent is not held
        again until something about it changes (`_unheld`), since a master whose
        `--offer_timeout` is shorter than `offer_hold_seconds` would otherwise take back
        every hold before its release and the stalled agent would never reach other
        frameworks. Said in a `Note` (the log at INFO): the timeline is not the only place
        an operator sees it."""
        out: list[Decision] = []
        agent_id = self._held_ids.get(offer_id)
        if agent_id is not None:
            for_slot = agent_id in self._slot_held
            self._unhold(agent_id)
            if agent_id in self.agents:  # taken back: holding again would be taken back too
                self._unheld[agent_id] = for_slot
            out.append(
                Note(
                    f"{self._agent_name(agent_id)}: the master rescinded its held offer "
                    f"{offer_id} (--offer_timeout, or the agent left); not held again until "
                    "it changes",
                    "info",
                )
            )
        for ids in self._declining.values():
            if offer_id in ids:
                ids.remove(offer_id)
        return out

    def on_offers(self, offers: Iterable[Mapping], now: float) -> list[Decision]:
        """At most one launch per agent per batch; the offers of agents whose next step will
        be ready soon held (deploy); everything else declined, batched."""
        out = answer_offers(
            offers, lambda offer, launched, out: self._use_offer(offer, now, launched, out)
        )
        self._flush_declines(out)
        self._revive_if_due(now, out)
        return out

    def _use_offer(
        self, offer: Mapping, now: float, launched: set[str], out: list[Decision]
    ) -> float | Hold | None:
        """Launch on this offer (None), hold it (HOLD) or say how long to refuse the agent's
        resources."""
        raise NotImplementedError

    # -- held offers -------------------------------------------------------------------------

    @property
    def holding(self) -> bool:
        """Does this plan hold offers at all (`PlanConfig.offer_hold_seconds` > 0)?"""
        return self.config.offer_hold_seconds > 0

    @property
    def held_offers(self) -> int:
        """Offers held now."""
        return len(self._held)

    def _hold(self, agent: AgentState, offer: Mapping, now: float, for_slot: bool) -> float | Hold:
        """Keep the agent's offer, to be ACCEPTed the moment its next step can run
        (`_use_held`); `for_slot`: that step waits for a restart slot, in line. One offer per
        agent: another offer of an agent already held (resources freed since, e.g. by a
        one-shot that finished) is declined for `offer_hold_seconds`. That filter hides only
        offers made of no more than those resources (apache/mesos
        src/master/allocator/mesos/hierarchical.cpp, `RefusedOfferFilter::filter`), so the
        agent's next offer after the held one is used or released, which holds both, is not
        hidden: it is not recorded as the agent's filter (no REVIVE for it)."""
        aid, offer_id = agent.agent_id, offer["id"]["value"]
        held = self._held.get(aid)
        if held is not None and held[0] != offer_id:
            return float(self.config.offer_hold_seconds)
        if held is None:
            self._held[aid] = (offer_id, offer_json(offer), now)
            self._held_ids[offer_id] = aid
        if for_slot:
            self._slot_held.setdefault(aid, None)
            self.slots.not_waiting(aid)
        else:
            self._slot_held.pop(aid, None)
        self._dirty(aid)
        return HOLD

    def _unhold(self, agent_id: str) -> None:
        """Forget the agent's held offer (used, declined, rescinded, or its agent gone)."""
        held = self._held.pop(agent_id, None)
        self._slot_held.pop(agent_id, None)
        if held is not None:
            self._held_ids.pop(held[0], None)
            self._dirty(agent_id)

    def _forget_held(self) -> None:
        """Every held offer is void: the stream ended, or a new subscription began (on a
        framework's failover the master discards its offers without a RESCIND:
        src/master/master.cpp, `Master::_failoverFramework`)."""
        for agent_id in list(self._held):
            self._unhold(agent_id)
        self._declining.clear()
        self._unheld.clear()  # the master cleared our filters too (`deactivateFramework`)

    def _touched(self, agent_id: str) -> None:
        """Something about the agent changed (a status update of its task, a launch, an
        operator's command, its loss): its offers may be held again."""
        self._unheld.pop(agent_id, None)

    def _stalled_refuse(self, agent_id: str, now: float, for_slot: bool) -> float:
        """How long to decline an agent whose held offer was released unused (or a slot
        waiter behind stalled slot holders), so that other frameworks get its resources:
        until the launch deadline of the stalled task it waits for (its own, or the earliest
        of the stalled slot holders'), when the plan kills that task and needs the agent
        again; `max_backoff_seconds` when it waits for a task that runs (no deadline).
        Between `offer_hold_seconds` and `long_refuse_seconds`. Anything that changes the
        agent sooner (the task starts or ends, a slot frees, an operator's command, new
        options) lifts the filter with a REVIVE (`_want_offers`, `_sync_slot`), so a long
        filter delays nothing; a short one (the 5 s of `wait_refuse_seconds`) gave the
        agent back to this framework, which held it again, for ever."""
        deadlines = []
        if for_slot:
            for task_id, (aid, _) in self._stalled.items():
                if aid in self.slots.holders and task_id in self._launching:
                    deadlines.append(self._launching[task_id][2])
        else:
            agent = self.agents.get(agent_id)
            for st in agent.steps.values() if agent is not None else ():
                if st.live and st.task_id in self._launching:
                    deadlines.append(self._launching[st.task_id][2])
        until = min(deadlines) - now if deadlines else self.config.max_backoff_seconds
        hold, longest = self.config.offer_hold_seconds, self.config.long_refuse_seconds
        return float(round(min(longest, max(hold, until)), 1))

    def _stalled_task(self, task_id: str, agent_id: str, step: str) -> StepState | None:
        """The step's state if `task_id` is still its task, live, STAGING or STARTING, and
        not being killed; else None."""
        st = self._step_state(agent_id, step)
        if st is None or st.task_id != task_id or st.state not in LAUNCHING or st.killing:
            return None
        return st

    def _slots_stalled(self) -> bool:
        """Every restart slot is held by an agent whose restarting task is stalled (still
        STAGING or STARTING after `stalled_seconds`): no slot can be expected to free within
        a hold, so slot waiters are not held. O(stalled launches)."""
        holders = self.slots.holders
        if not holders or not self._stalled:
            return False
        stalled = {
            aid
            for task_id, (aid, step) in self._stalled.items()
            if aid in holders and self._stalled_task(task_id, aid, step) is not None
        }
        return len(stalled) >= len(holders)

    def stalled_words(self, st: StepState, now: float) -> str | None:
        """What a stalled step waits for (`views.stall_words`), None if it is not stalled."""
        launch = self._launching.get(st.task_id or "")
        if launch is None or st.task_id not in self._stalled:
            return None
        if st.state not in LAUNCHING or st.killing:
            return None
        timeout = self.config.launch_timeout_seconds
        return stall_words(st.state or "", now - (launch[2] - timeout), timeout)

    def stalled_steps(self, now: float) -> list[tuple[str, str, str]]:
        """(agent_id, step, words) of every stalled step, for the views and the records."""
        found = []
        for task_id, (agent_id, step) in self._stalled.items():
            st = self._stalled_task(task_id, agent_id, step)
            words = self.stalled_words(st, now) if st is not None else None
            if words is not None:
                found.append((agent_id, step, words))
        return found

    def agent_records(self, now: float) -> dict[str, dict]:
        """Every agent's record (`records.agent_record`) as the API shows it: a stalled
        step's message says how long and what it waits for (words never stored: they
        change with the time)."""
        records = {aid: agent_record(agent) for aid, agent in self.agents.items()}
        for agent_id, step, words in self.stalled_steps(now):
            doc = records.get(agent_id, {}).get("steps", {}).get(step)
            if doc is not None:  # an uninstall's revert step lives in its progress
                doc["message"] = words
        return records

    def _decide(
        self, agent: AgentState, offer: Mapping, now: float, launched: set[str], out: list
    ) -> float | Hold | None:
        """What to do with an offer of a known agent (the plan's rules)."""
        raise NotImplementedError

    def _use_held(self, agent_id: str, now: float, out: list[Decision]) -> None:
        """The agent changed: decide again on its held offer (launch on it now, keep it, or
        DECLINE it with the next batch)."""
        held = self._held.get(agent_id)
        agent = self.agents.get(agent_id)
        if held is None or agent is None:
            return
        offer = offer_from_json(held[1])
        answer = self._decide(agent, offer, now, set(), out)
        if answer is HOLD:
            return
        self._unhold(agent_id)
        if answer is not None:
            self._declining.setdefault(answer, []).append(held[0])

    def _release_stale(self, now: float, out: list[Decision]) -> None:
        """Offers held `offer_hold_seconds` are declined, so that an agent whose step takes
        long does not keep its resources from other frameworks ("Do not hold onto offers",
        apache/mesos docs/app-framework-development-guide.md). The agent is then not held
        again until something about it changes (`_unheld`): its next offers, of every role
        the framework has (Mesos offers an agent once per role, and a DECLINE filters only
        the role of the offer it answers: src/master/allocator/mesos/hierarchical.cpp,
        `HierarchicalAllocatorProcess::recoverResources` keys filters by role), are declined
        for `_stalled_refuse` too, so the agent goes to other frameworks until then. One
        log line per release. O(offers released): the oldest first. Offers held for a
        restart slot are released at once when every slot holder is stalled
        (`_slots_stalled`): no slot can free within a hold."""
        if self._slot_held and self._slots_stalled():
            for agent_id in list(self._slot_held):
                offer_id, _, since = self._held[agent_id]
                self._release(agent_id, offer_id, since, now, out)
        expired = now - self.config.offer_hold_seconds
        while self._held:
            agent_id, (offer_id, _, since) = next(iter(self._held.items()))
            if since > expired:
                return
            self._release(agent_id, offer_id, since, now, out)

    def _release(
        self, agent_id: str, offer_id: str, since: float, now: float, out: list[Decision]
    ) -> None:
        """Decline a held offer, and hold the agent's offers no more until it changes."""
        for_slot = agent_id in self._slot_held
        self._unhold(agent_id)
        agent = self.agents.get(agent_id)
        refuse = self.config.wait_refuse_seconds
        if agent is not None:
            self._unheld[agent_id] = for_slot
            refuse = self._stalled_refuse(agent_id, now, for_slot)
            if for_slot:
                refuse = self._refuse_for_slot(agent, now, refuse)
            else:
                refuse = self._refuse(agent, refuse, now)
            out.append(Note(self._release_words(agent, now - since, refuse, for_slot), "info"))
        self._declining.setdefault(refuse, []).append(offer_id)

    def _unfinished(self, step: str, st: StepState) -> bool:
        """A step whose live task the agent's next step may wait for (the deploy plan
        leaves out those done: a daemon that runs)."""
        return st.live

    def _release_words(self, agent: AgentState, held: float, refuse: float, for_slot: bool) -> str:
        """The log line of a released hold: what the agent waits for, and for how long
        other frameworks get it."""
        what = "a restart slot"
        if not for_slot:
            busy = [(name, st) for name, st in agent.steps.items() if self._unfinished(name, st)]
            what = ", ".join(f"{name} ({st.state})" for name, st in busy) or "its step"
        return (
            f"{agent.name}: released its offer after holding it {span(held)} for its next "
            f"step, which still waits for {what}; its offers go to other frameworks for "
            f"{span(refuse)} (declined), or until that changes"
        )

    def _flush_declines(self, out: list[Decision]) -> None:
        """The held offers given up since the last batch, in one DECLINE per refuse time."""
        for refuse, ids in self._declining.items():
            out.extend(Decline(chunk, refuse) for chunk in in_calls(ids))
        self._declining.clear()

    # -- operator commands -----------------------------------------------------------------

    def interrupt(self, agent_id: str | None, now: float) -> list[Decision]:
        """No new launches (running tasks go on) on one agent, or everywhere."""
        return self._set_interrupted(agent_id, True, now)

    def proceed(self, agent_id: str | None, now: float) -> list[Decision]:
        """Undo `interrupt` (the plan API calls it `continue`)."""
        return self._set_interrupted(agent_id, False, now)

    def _set_interrupted(self, agent_id: str | None, value: bool, now: float) -> list[Decision]:
        raise NotImplementedError

    def on_agent_lost(self, agent_id: str, now: float) -> list[Decision]:
        raise NotImplementedError

    def on_agents_known(self, agent_ids: Iterable[str], now: float) -> list[Decision]:
        """The agents the master knows (registered, or recovered by a failed-over master),
        asked after each subscription: an agent removed or unreachable while the scheduler
        was away is gone, as if Mesos had said so (the same while it runs comes as a FAILURE
        event); one that comes back offers again."""
        known = set(agent_ids)
        out: list[Decision] = []
        for agent_id in [a for a in self.agents if a not in known]:
            out += self.on_agent_lost(agent_id, now)
        return out

    def _known(self, agent_id: str) -> AgentState:
        if agent_id not in self.agents:
            raise KeyError(f"unknown agent {agent_id}")
        return self.agents[agent_id]

    # -- offers ----------------------------------------------------------------------------

    def _refuse(self, agent: AgentState, seconds: float, now: float) -> float:
        """Decline the agent's offer for `seconds`, remembering the filter."""
        agent.filtered_after, agent.filtered_until = self._revive.sent, now + seconds
        self._filters_possible = True
        return float(seconds)

    def _fits(self, agent: AgentState, spec: StepSpec, offer: Mapping, out: list[Decision]) -> bool:
        """Whether the step's task fits the offer; if not, the reason is kept for the views
        and logged once per change."""
        reason = shortfall(offer, spec.needs, spec.task_name)
        if reason is None:
            return True
        self._explain_refusal(agent, f"{agent.name} {reason}", out)
        return False

    def _explain_refusal(self, agent: AgentState, note: str, out: list[Decision]) -> None:
        """Why the agent's offer was refused: on its step, and in the log once per change."""
        if self.offer_notes.get(agent.agent_id) != note:
            self.offer_notes[agent.agent_id] = note
            self._dirty(agent.agent_id)
            out.append(Note(note))

    # -- views -----------------------------------------------------------------------------

    def _dirty(self, agent_id: str) -> None:
        """The agent changed: its phase in `plan_view` must be built again."""
        self._phases.pop(agent_id, None)

    def _phase_cache(self, shared: tuple) -> dict[str, dict]:
        """The kept phases, forgotten when `shared` (what every phase may show: interrupt,
        free restart slots, the budget, the stage) differs from the last `plan_view`'s."""
        if shared != self._phases_shared:
            self._phases.clear()
            self._phases_shared = shared
        return self._phases

    @property
    def wake_at(self) -> float | None:
        """When (plan clock, seconds) `on_tick` should next be called, sooner than the
        periodic tick, because a decision waits for a time rather than for an event: a
        REVIVE wanted while its coalescing window is still open (`Reviver.opens_at`). None:
        the periodic tick suffices. The adapters tick then (`Scheduler`, `Simulation`)."""
        return self._revive.opens_at(self.config.revive_interval(len(self.agents)))

    def _revive_if_due(self, now: float, out: list[Decision]) -> None:
        interval = self.config.revive_interval(len(self.agents))
        out.extend(self._revive.due(now, interval))

    def _want_offers(self, agent: AgentState, start: float) -> None:
        """The agent has work from `start`: REVIVE if our filter hides it well past that."""
        if agent.filtered_until > start + REVIVE_WORTH_SECONDS:
            self._revive.want(agent.filtered_until, agent.filtered_after)

    # -- the life of a step's task ---------------------------------------------------------

    def _launch(
        self,
        agent: AgentState,
        st: StepState,
        spec: StepSpec,
        offer: Mapping,
        now: float,
        out: list[Decision],
    ) -> None:
        """A new task for the step (attempt + 1), stored before its ACCEPT leaves."""
        if st.gave_up:  # other options than those it gave up with: the count starts over
            st.host_failures, st.gave_up = 0, ""
        st.attempts += 1
        st.task_id = task_id_for(spec.name, agent.agent_id, spec.fingerprint, st.attempts)
        st.state, st.fingerprint, st.healthy = "TASK_STAGING", spec.fingerprint, None
        st.killing, st.message, st.updated, st.retry_at = False, "", now, 0.0
        st.kills, st.kill_at, st.late, st.launched_at = 0, 0.0, False, now
        st.kill_since = 0.0
        st.reason, st.host_caused, st.warning, st.warning_acknowledged_at = "", False, "", 0.0
        deadline = now + self.config.launch_timeout_seconds
        self._launching[st.task_id] = (agent.agent_id, spec.name, deadline)
        self._touched(agent.agent_id)
        self.offer_notes.pop(agent.agent_id, None)
        task = self.config.build_task(spec, agent.view, st.task_id, offer_role(offer))
        task = task_on_offer(task, offer)
        refuse = self._refuse(agent, self._accept_refuse_seconds(), now)
        self._save_launch(agent, out)
        out.append(Launch(offer["id"]["value"], agent.agent_id, task, refuse))

    def _accept_refuse_seconds(self) -> float:
        """The ACCEPT's filter on the offer's unused resources. `wait_refuse_seconds` here;
        the deploy plan, which holds offers, takes 0: the remainder comes back at the next
        allocation round, to be held until the step launched ends."""
        return self.config.wait_refuse_seconds

    def _save_launch(self, agent: AgentState, out: list[Decision]) -> None:
        raise NotImplementedError

    def _step_state(self, agent_id: str, step: str) -> StepState | None:
        """The state of `step` on the agent, if the plan has one."""
        raise NotImplementedError

    def _spec_of(self, step: str) -> StepSpec | None:
        """The spec of the step named `step` (a task ID's first part), if the plan runs it."""
        raise NotImplementedError

    def _saved(self, agent_id: str, now: float, out: list[Decision]) -> None:
        """Store what changed on the agent (its record, or the plan's progress)."""
        raise NotImplementedError

    def _track(self, agent_id: str, step: str, st: StepState, now: float) -> None:
        """Watch a task read back from the records: a KILL not confirmed is sent again
        (at once, once reconciled), a launch gets its deadline from its launch (from its
        last update in a record written before the launch time was stored)."""
        if not st.live:
            return
        if st.killing:
            self._killing[st.task_id] = (agent_id, step)
        elif st.state in LAUNCHING:
            deadline = (st.launched_at or st.updated) + self.config.launch_timeout_seconds
            self._launching[st.task_id] = (agent_id, step, deadline)
        elif st.state == "TASK_RUNNING":
            self._watch_stable(agent_id, step, st)

    def _watch_stable(self, agent_id: str, step: str, st: StepState) -> None:
        """A RUNNING task of a step that failed before: when it has stayed up
        `stable_seconds`, its count starts over (`_check_stable`, from the tick)."""
        if st.failures or st.host_failures or st.last_failure:
            due = st.running_since + self.config.stable_seconds
            self._stabilising[st.task_id] = (agent_id, step, due)

    def _check_stable(self, now: float, out: list[Decision]) -> None:
        """Tasks up for `stable_seconds` since they last became RUNNING: their step's count
        of failures starts over now, not at the next failure, which may never come. Without
        this, a daemon that failed a few times and then came up (its port freed) kept the
        service Degraded for ever. Called from every tick; O(tasks watched)."""
        for task_id, (agent_id, step, due) in list(self._stabilising.items()):
            st = self._step_state(agent_id, step)
            if st is None or st.task_id != task_id or st.state != "TASK_RUNNING":
                del self._stabilising[task_id]
            elif now >= due:
                del self._stabilising[task_id]
                st.failures = st.host_failures = 0
                st.last_failure = ""
                self._saved(agent_id, now, out)

    def _kill(self, agent_id: str, step: str, st: StepState, now: float, out: list) -> None:
        """KILL the step's task, and again with backoff until Mesos confirms an end."""
        st.killing, st.kills = True, st.kills + 1
        st.kill_since = st.kill_since or now
        st.kill_at, st.updated = now + self.config.kill_backoff(st.kills), now
        self._killing[st.task_id] = (agent_id, step)
        self._dirty(agent_id)
        out.append(Kill(st.task_id, agent_id))

    def _resend_kills(self, now: float, out: list[Decision], every: bool = False) -> None:
        """KILLs due again (`every`: all of them, after a (re)subscription); O(kills)."""
        for task_id, (agent_id, step) in list(self._killing.items()):
            st = self._step_state(agent_id, step)
            if st is None or st.task_id != task_id or not st.live or not st.killing:
                del self._killing[task_id]
            elif every or now >= st.kill_at:
                self._kill(agent_id, step, st, now, out)
                self._saved(agent_id, now, out)

    def _check_deadlines(self, now: float, out: list[Decision]) -> None:
        """Kill launches that missed their deadline (their end will count as a failure),
        unless we are killing them already (a kill we asked for is no failure); mark those
        STAGING or STARTING for `stalled_seconds` as stalled (`_stalled`: their step says
        so, the plan is Degraded, one log line)."""
        for task_id, (agent_id, step, deadline) in list(self._launching.items()):
            st = self._step_state(agent_id, step)
            if st is None or st.task_id != task_id or st.state not in LAUNCHING:
                del self._launching[task_id]
                self._stalled.pop(task_id, None)
            elif now >= deadline:
                del self._launching[task_id]
                self._stalled.pop(task_id, None)
                if st.killing:  # killed already at our asking (`plan restart`): not late,
                    continue  # its end no failure; `_resend_kills` keeps at the KILL
                timeout = self.config.launch_timeout_seconds
                st.late, st.message = True, f"still {st.state} after {timeout:g} s"
                self._kill(agent_id, step, st, now, out)
                self._saved(agent_id, now, out)
                out.append(Note(f"{self._agent_name(agent_id)}: {step} {st.message}: killed"))
            elif task_id not in self._stalled and not st.killing:
                launched = deadline - self.config.launch_timeout_seconds
                if now - launched >= self.config.stalled_seconds:
                    self._stalled[task_id] = (agent_id, step)
                    self._dirty(agent_id)
                    words = self.stalled_words(st, now)
                    out.append(Note(f"{self._agent_name(agent_id)}: {step} {words}"))

    def _agent_name(self, agent_id: str) -> str:
        agent = self.agents.get(agent_id)
        return agent.name if agent is not None else agent_id

    def _update(self, spec: StepSpec, st: StepState, status: Mapping, now: float) -> bool:
        """Apply a status update of the step's current task; False if it changes nothing.

        A task that reached a terminal state stays there: a later answer is stale. The master
        forgets a task once its terminal update is acknowledged, so a reconciliation asked
        before and answered after says TASK_GONE "Reconciliation: Task is unknown to the
        agent" (apache/mesos src/master/master.cpp, `_reconcileTasks`) of a task that has
        FINISHED; taken as news, it would run the step a second time."""
        state = status["state"]
        healthy = status.get("healthy", st.healthy)
        if st.state in TERMINAL_STATES or (state == st.state and healthy == st.healthy):
            return False
        if state == "TASK_RUNNING" and st.state != "TASK_RUNNING":
            st.running_since = now
            launch = self._launching.get(st.task_id or "")
            if launch is not None:  # how long a launch takes here: `Slots.step_seconds`
                self.slots.launched_in(now - (launch[2] - self.config.launch_timeout_seconds))
        st.state, st.healthy, st.updated = state, healthy, now
        st.kill_since = now if st.killing else 0.0  # heard of: the agent answers
        if state == "TASK_RUNNING" and st.task_id not in self._stabilising:
            self._watch_stable(self._agent_of(st.task_id), spec.name, st)
        if not st.late:  # the deadline's words stay until the task ends
            st.message = status.get("message", "") or st.message
        if state in ENDED and state != "TASK_FINISHED" and not st.killing and not st.late:
            st.message = failure_words(st.reason, status) or st.message
        if state in ENDED:
            if state != "TASK_FINISHED":
                self._ended(spec, st, status, now)
            st.killing, st.kills, st.late, st.kill_since = False, 0, False, 0.0
        return True

    def _ended(self, spec: StepSpec, st: StepState, status: Mapping, now: float) -> None:
        """Act on an unsuccessful end as `end_kind` classifies it."""
        kind = end_kind(spec, st, status["state"], status)
        if kind == "late":
            self._failed(st, False, now)
        elif kind == "cut off":
            st.cutoffs += 1
        elif kind == "failed":
            self._failed(st, host_caused(st.host_caused, status), now)

    def is_failure(self, status: Mapping) -> bool:
        """Whether this update ends a step's current task in what the plan counts as its
        failure (a crash, an error, a missed launch deadline: retried after backoff), so
        that the scheduler logs it as a WARNING. An end the plan expects is not: its own kill
        (`plan restart`, a replaced daemon, the uninstall's), the agent restart the step
        causes, a task Mesos lost track of (relaunched at once), a stale answer, a task that
        is not a step's current one. Reads the plan and changes nothing; call it before
        `on_status` of the same update."""
        state, task_id = status.get("state"), status.get("task_id", {}).get("value", "")
        parsed = parse_task_id(task_id)
        if state not in ENDED or state == "TASK_FINISHED" or parsed is None:
            return False
        st, spec = self._step_state(parsed[1], parsed[0]), self._spec_of(parsed[0])
        if st is None or spec is None or st.task_id != task_id or st.state in TERMINAL_STATES:
            return False
        return end_kind(spec, st, state, status) in ("late", "failed")

    def _failed(self, st: StepState, by_host: bool, now: float) -> None:
        """A failure: retried after backoff. The deploy plan also stops a step whose host
        keeps causing its failures (`Deploy._failed`). A task that had stayed up for
        `stable_seconds` starts the count over, as systemd's start limit counts only the
        starts within its interval (systemd.unit(5), StartLimitIntervalSec=): a daemon that
        crashes as soon as it starts backs off further each time and reads Degraded after
        three, instead of being relaunched every `retry_backoff_seconds` for ever."""
        if st.running_since and now - st.running_since >= self.config.stable_seconds:
            st.failures = st.host_failures = 0
        st.failures += 1
        st.retry_at = now + self.config.backoff(st.failures)
        st.last_failure = st.message

    @staticmethod
    def _agent_of(task_id: str | None) -> str:
        parsed = parse_task_id(task_id or "")
        return parsed[1] if parsed else ""

    def _failure_report(self, agent_id: str, report: Mapping, now: float) -> list[Decision]:
        """The installer's words on why its task failed (`failures`), kept for its end."""
        out: list[Decision] = []
        st = self._step_state(agent_id, report.get("step", ""))
        if st is None or st.task_id != report.get("task_id") or not st.live:
            return out
        st.reason, st.host_caused = report.get("reason", ""), bool(report.get("host_caused"))
        self._dirty(agent_id)
        return out

    def _warning_report(self, agent_id: str, report: Mapping, now: float) -> list[Decision]:
        """The installer's warning for its task (`report["warning"]`): the task ends well, but
        left something not as the options want it. Kept on the step while that task is its
        current one (the report may come before or after the task's end), shown with the
        step (done with a warning), as a problem (Degraded), in the record, and logged once."""
        out: list[Decision] = []
        step = report.get("step", "")
        st = self._step_state(agent_id, step)
        words = report.get("warning", "")
        if st is None or st.task_id != report.get("task_id") or not words:
            return out
        if st.warning != words:  # other words than an operator acknowledged: not those
            st.warning, st.warning_acknowledged_at = words, 0.0
            self._saved(agent_id, now, out)
            out.append(Note(f"{self._agent_name(agent_id)}: {step}: {words}"))
        return out

    def _ask_for_output(self, agent_id: str, st: StepState, status: Mapping, out: list) -> None:
        """A task that failed on its own (TASK_FAILED: its command exited non-zero) with no
        report from the installer: ask for the end of its `stderr`, where the command's own
        words are. Also a task whose URIs could not be fetched (`fetch_failed`: the agent's
        message names no URI; the fetcher program's line that does is in that `stderr`).
        Not for a task that finished, was killed (by us, or for a missed launch deadline:
        those words are already the reason), vanished, or never ran for another reason
        (TASK_ERROR, a launch the agent failed otherwise: Mesos' message says why)."""
        if (
            st.state == "TASK_FAILED"
            and st.task_id
            and not st.reason
            and (
                status.get("source", "SOURCE_EXECUTOR") == "SOURCE_EXECUTOR" or fetch_failed(status)
            )
        ):
            out.append(ReadStderr(st.task_id, agent_id, status.get("message", "") or ""))

    def on_task_output(self, task_id: str, output: str, message: str, now: float) -> list[Decision]:
        """The end of a failed task's `stderr` (`ReadStderr`'s answer: a few lines, bounded
        and redacted by the scheduler) becomes its step's reason, shown with Mesos' words
        (`message`), if the task is still the step's current one, still failed, and the
        installer gave no reason of its own (its report wins). Logged once (`Note`)."""
        out: list[Decision] = []
        parsed = parse_task_id(task_id)
        if parsed is None or not output:
            return out
        step, agent_id = parsed[0], parsed[1]
        st = self._step_state(agent_id, step)
        if st is None or st.task_id != task_id or st.state != "TASK_FAILED" or st.reason:
            return out
        st.reason = output
        words = output_words(output, message)
        st.message = gave_up_words(st.host_failures, words) if st.gave_up else words
        st.last_failure = words if st.failures else st.last_failure
        self._dirty(agent_id)
        self._saved(agent_id, now, out)
        out.append(Note(f"{self._agent_name(agent_id)}: {step} failed: {words}"))
        return out


def end_kind(spec: StepSpec, st: StepState, state: str, status: Mapping) -> str:
    """How a step's current task ended unsuccessfully in `state` (`status`: its update):
    "late" (killed for a missed launch deadline: a failure), "killed" (our kill), "cut off"
    (by the agent restart the step causes), "vanished" (Mesos lost track of it: relaunched
    at once) or "failed" (retried after backoff)."""
    if st.late:
        return "late"
    if st.killing:
        return "killed"
    if spec.restarts == Restarts.AGENT and cut_off_by_restart(status):
        return "cut off"
    if state in VANISHED:
        return "vanished"
    return "failed"
