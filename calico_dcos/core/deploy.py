"""The deploy plan: Calico's chain of steps on every agent, within the restart budget.

One phase per agent, one step per enabled step of the chain, run in order: a step starts
on an agent only when the one before is done there. Steps that restart Docker or the agent
take a slot of the restart budget; a changed option re-runs exactly the steps whose
fingerprint changed, and a running daemon is replaced (killed, then launched anew) within
the same budget.

Cost: every per-offer and per-update path touches one agent only (indices keep the slot
holders, the done set and the agents waiting for a slot), because the scheduler must stay
cheap at thousands of agents. Only option changes, (re)subscription and the views walk
every agent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from calico_dcos.core.config import PlanConfig, StepKind, StepSpec
from calico_dcos.core.engine import LAUNCHING, Engine
from calico_dcos.core.events import (
    ENDED,
    UNSAVED_STATES,
    Decision,
    DeleteAgent,
    Kill,
    Note,
    Reconcile,
    SaveAgent,
    SaveFrameworkId,
    SaveMeta,
    in_calls,
)
from calico_dcos.core.failures import gave_up_words
from calico_dcos.core.offers import (
    Hold,
    chain_shortfall,
    offer_attributes,
    offer_is_public,
    offer_scalars,
)
from calico_dcos.core.reconcile import Reconciler
from calico_dcos.core.records import (
    AgentState,
    StepState,
    agent_from_record,
    agent_record,
    parse_task_id,
)
from calico_dcos.core.revive import OPERATOR, OPTIONS, SLOT_FREED, SUBSCRIBED
from calico_dcos.core.views import (
    INTERRUPTED,
    MAX_GONE_NAMED,
    acknowledged_words,
    continue_words,
    done_words,
    failing,
    forced,
    forced_words,
    gone_doc,
    gone_label,
    gone_state,
    gone_words,
    interrupted_words,
    offer_words,
    phase_doc,
    plan_doc,
    slot_words,
    step_doc,
    summary_doc,
    task_words,
    unreachable_problem,
    utc_words,
    waiting_for_operator,
)


@dataclass(frozen=True)
class Action:
    """What an agent needs next: done, skip, launch, replace, wait, delay, interrupted."""

    kind: str
    step: StepSpec | None = None
    until: float = 0.0


DONE = Action("done")
SKIP = Action("skip")
PRESENT = "skipped: Calico already present on this host"
_NO_TASK = StepState()  # read only: a step never launched on an agent


def step_done(spec: StepSpec, st: StepState) -> bool:
    """One-shot: FINISHED; daemon: RUNNING (and healthy if it has a health check); or
    force-completed with the current options."""
    if st.forced is not None and st.forced == spec.fingerprint:
        return True
    if st.fingerprint != spec.fingerprint:
        return False
    if spec.kind == StepKind.ONESHOT:
        return st.state == "TASK_FINISHED"
    return st.state == "TASK_RUNNING" and (not spec.health_checked or st.healthy is True)


# An update in one of these states says nothing of a gone agent being back: the master's
# TASK_UNREACHABLE for it, or a task ended (the master makes TASK_LOST, TASK_GONE… itself).
GONE_STATES = ENDED | {"TASK_UNREACHABLE"}


def _toggle(index: set[str], key: str, present: bool) -> None:
    if present:
        index.add(key)
    else:
        index.discard(key)


# REVIVEs that must fit in one allocation interval for one to be worth sending instead of
# waiting for the round (`Deploy._round_worth_revive`)
ROUND_REVIVES = 4
# The deploy plan's own stored document (`store.put_meta`): `{"interrupted": bool}`, the
# whole-plan interrupt (`plan interrupt` without a phase).
META_KEY = "deploy"


class Deploy(Engine):
    """Per-agent chains plus the rollout policy. Not thread-safe: the caller serialises."""

    def __init__(
        self,
        config: PlanConfig,
        records: Mapping[str, Mapping] = (),
        framework_id=None,
        flags: Mapping | None = None,
    ):
        """`records`: the stored agents' records; `flags`: the stored `META_KEY` document
        (`{"interrupted": bool}`), so that a whole-plan interrupt outlives the scheduler."""
        super().__init__(config, framework_id)
        self.interrupted = bool((flags or {}).get("interrupted", False))
        self.reconciler = Reconciler(
            config.reconcile_backoff_seconds,
            config.reconcile_max_backoff_seconds,
            config.reconcile_max_rounds,
            config.implicit_reconcile_seconds,
        )
        self._eligible: set[str] = set()
        self._done: set[str] = set()
        self._replace_queue: dict[str, None] = {}  # agents waiting for a slot to replace
        self._replace_now: set[str] = set()  # slot holders with a daemon to replace
        self._steps = {s.name: s for s in config.steps}
        self._gone: dict[str, float] = {}  # agent_id -> lost_at (0: not known yet)
        # tasks of agents that came back (`_rejoin`), asked about in an explicit RECONCILE
        # and not answered yet: task_id -> agent_id; the next ask, and how many so far
        self._rejoined: dict[str, str] = {}
        self._rejoin_at = 0.0
        self._rejoin_round = 0
        for agent_id, record in dict(records).items():
            agent = agent_from_record({"agent_id": agent_id, **record})
            agent.wanted = config.wants_agent(agent.view)
            self.agents[agent_id] = agent
            self._index(agent, 0.0)
            for name, st in agent.steps.items():
                self._track(agent_id, name, st, 0.0)
            if agent.lost:
                self._gone[agent_id] = agent.lost_at

    # -- rollout state ---------------------------------------------------------------

    @property
    def reconciling(self) -> dict[str, str]:
        """Tasks of the explicit reconciliation not answered yet: task_id -> agent_id."""
        return self.reconciler.pending

    def restart_limit_agents(self) -> int:
        """A percentage budget counts the agents that should get Calico."""
        return len(self._eligible)

    def eligible(self, agent: AgentState) -> bool:
        """Should get Calico: present, wanted, and not running Calico by other means."""
        return not agent.lost and agent.calico_present is None and agent.wanted

    def next_action(self, agent: AgentState, now: float) -> Action:
        """The first step of the chain that is not done, and what it needs."""
        if not self.eligible(agent):
            return SKIP
        for spec in self.config.enabled_steps:
            st = agent.steps.get(spec.name) or StepState()
            if step_done(spec, st):
                continue
            if st.live:
                if (
                    spec.kind == StepKind.DAEMON
                    and st.fingerprint != spec.fingerprint
                    and not st.killing
                ):
                    return Action("replace", spec)
                return Action("wait", spec)
            if st.gave_up and st.gave_up == self._options_key:
                return Action("gave_up", spec)  # until an operator acts or options change
            if st.retry_at > now:
                return Action("delay", spec, st.retry_at)
            if self.interrupted or agent.interrupted:
                return Action("interrupted", spec)
            return Action("launch", spec)
        return DONE

    def _holds_slot(self, agent: AgentState) -> bool:
        """A daemon of it is being replaced, or its first restarting step not done has a
        task that has not finished (live, or ended and waiting to run again)."""
        if not self.eligible(agent):
            return False
        for spec in self.config.enabled_steps:
            st = agent.steps.get(spec.name)
            if st is None:
                continue
            if st.replacing:
                return True
            if spec.restarts and st.task_id and st.state != "TASK_FINISHED":
                # its task may be restarting Docker or the agent until Mesos says it ended,
                # even force-completed (killed, not confirmed yet). A step that gave up
                # waits for the operator, not for its host: the installer rolled the host
                # back, so others may use the slot meanwhile
                return st.live or (not step_done(spec, st) and not st.gave_up)
        return False

    def _index(self, agent: AgentState, now: float) -> Action:
        """Recompute this agent's place in the indices: O(steps), never O(agents)."""
        aid = agent.agent_id
        self._dirty(aid)  # every change to an agent passes here
        for spec in self.config.enabled_steps:
            st = agent.steps.get(spec.name)
            if st is not None and st.replacing and step_done(spec, st):
                st.replacing = False
        _toggle(self._eligible, aid, self.eligible(agent))
        self._sync_slot(aid, self._holds_slot(agent), now)
        action = self.next_action(agent, now)
        _toggle(self._done, aid, action.kind == "done")
        if action.kind != "launch":
            self.slots.not_waiting(aid)
            self.offer_notes.pop(aid, None)
        self._replace_queue.pop(aid, None)
        self._replace_now.discard(aid)
        if action.kind == "replace" and aid in self.slots.holders:
            self._replace_now.add(aid)  # its own slot: no need to wait for another
        elif action.kind == "replace":
            self._replace_queue[aid] = None
        return action

    def _touch(self, agent: AgentState, now: float, out: list[Decision]) -> None:
        """After a change: reindex; launch on the agent's held offer if its next step can
        run now (else keep or release it); with none held, ask for offers if the agent is
        filtered and has work (to launch now, or when its retry is due)."""
        self._touched(agent.agent_id)
        action = self._index(agent, now)
        if agent.agent_id in self._held:
            self._use_held(agent.agent_id, now, out)
        elif action.kind in ("launch", "delay"):
            self._want_offers(agent, max(now, action.until))
            if action.kind == "launch" and self._round_worth_revive(agent, action.step):
                until = max(agent.filtered_until, now + self.config.allocation_interval_seconds)
                self._revive.want_round(until, agent.filtered_after)
        self._pump(now, out)

    def _round_worth_revive(self, agent: AgentState, spec: StepSpec) -> bool:
        """Is a step ready to launch, with no offer of its agent held, worth a REVIVE rather
        than the next allocation round (up to `allocation_interval_seconds` away)? Only in
        the install's tail: while agents wait for a restart slot the slots pace the install
        and a step that waits a round delays nothing (its agent is not the slowest), but
        once none waits, every round a step waits is added to the install's time (with
        offers held, a step's successor waits about one round for the unused part of the
        step's ACCEPT: `--simulate` measured the last agents' two daemons waiting 1.5 s at
        any size). And only where REVIVEs come much faster than rounds: each re-offers every
        agent, so they are spaced by `PlanConfig.revive_interval`, which grows with the
        cluster; only while at least `ROUND_REVIVES` fit in one allocation interval (up to
        625 agents by default), since a REVIVE that saves less than most of a round costs
        an offer of every agent for little. Measured (`calico-dcos bench --agents 1000`, two
        runs each way, load ~4, 2026-11-29): tail REVIVEs at 1,000 agents gave no shorter
        wall time (12.5 and 13.8 s against 12.5 and 12.5) and 2-3 more offers per agent; at
        100 agents the install took 4.1-4.6 s instead of 5.1-6.8."""
        if self.slots.waiters or self._slot_held:
            return False
        if spec.restarts and not self._slot_free(agent.agent_id):
            return False
        interval = self.config.revive_interval(len(self.agents))
        return interval * ROUND_REVIVES <= self.config.allocation_interval_seconds

    def _pump(self, now: float, out: list[Decision]) -> None:
        """Replace the running daemons that must be: first on agents that hold a restart slot
        already (a restarting step of theirs waits for a retry; without this they would wait
        for a slot they hold themselves), then as free slots allow, in the order asked; then
        launch on the held offers of agents waiting for a slot, in line, while slots are
        free; and REVIVE if that is due."""
        # the whole plan interrupted: the replacements stay in line until `plan continue`
        # (`_replace` would drop them, and nothing else puts them back)
        while self._replace_now and not self.interrupted:
            self._replace(self._replace_now.pop(), now, out)
        while (
            self._replace_queue and not self.interrupted and len(self.slots.holders) < self.budget
        ):
            aid = next(iter(self._replace_queue))
            del self._replace_queue[aid]
            self._replace(aid, now, out)
        while self._slot_held:  # O(launches): the first in line, while slots are free
            aid = next(iter(self._slot_held))
            if not self._slot_free(aid):
                break
            self._use_held(aid, now, out)
            if aid in self._slot_held:  # kept, not launched: the rest wait behind it
                break
        if self._slot_free("") and not self._slot_held:
            waited = self.slots.freed_filter()  # slots free, no offer held to take them
            if waited is not None:
                self._revive.want(waited[1], waited[0], SLOT_FREED)
        self._revive_if_due(now, out)

    def _accept_refuse_seconds(self) -> float:
        """0 while offers are held: the ACCEPT's unused resources come back unfiltered at
        the next allocation round (a filter of 0 s is none: apache/mesos
        src/master/allocator/mesos/hierarchical.cpp, `recoverResources`), and the plan
        holds them until the step just launched ends, so the next step launches at once."""
        return 0.0 if self.holding else super()._accept_refuse_seconds()

    def _slot_pool(self) -> int:
        """How many offers of agents waiting for a restart slot to hold: the budget (the
        next agents in line), or as many budgets as free in one allocation interval when
        slots are held for less than one (as in the bench: their offers come back only at
        the next round, so fewer would leave slots idle until then), at most 10. How long a
        slot is held: `Slots.expected_hold` (what slots took, or before one ended, what a
        launch took)."""
        seconds = self.slots.expected_hold()
        budget = self.budget
        if seconds is None:
            return budget
        interval = self.config.allocation_interval_seconds
        rounds = math.ceil(1.25 * interval / seconds) if seconds > 0 else 10
        return budget * max(1, min(10, rounds))

    def _slot_refuse_seconds(self, agent_id: str) -> float:
        """How long to decline an agent waiting for a slot behind those held: about until
        its turn (the agents ahead of it: those held, and the waiters before it in line,
        `Slots.ahead_of`; in waves of the budget, each wave as long as a slot is held,
        `Slots.expected_hold`, or an allocation interval before any news), less one
        allocation interval so it is offered and held before then; at most
        `max_backoff_seconds`. 0 (back at the next round) when its turn is that close. An
        estimate too long costs a REVIVE (`_pump`); too short, an offer declined again."""
        seconds = self.slots.expected_hold() or self.config.allocation_interval_seconds
        ahead = len(self._slot_held) + self.slots.ahead_of(agent_id)
        turn = ahead / max(1, self.budget) * seconds - self.config.allocation_interval_seconds
        return min(self.config.max_backoff_seconds, max(0.0, round(turn, 1)))

    def _replace(self, aid: str, now: float, out: list[Decision]) -> None:
        """Kill the agent's daemon that runs with old options, holding a slot meanwhile."""
        agent = self.agents[aid]
        action = self.next_action(agent, now)
        if action.kind != "replace" or self.interrupted or agent.interrupted:
            return
        st = agent.step(action.step.name)
        st.replacing = True
        self._admit(aid)
        kills: list[Decision] = []
        self._kill(aid, action.step.name, st, now, kills)
        out.append(SaveAgent(aid, agent_record(agent)))
        out.extend(kills)

    # -- events ----------------------------------------------------------------------

    def _start(self, now: float, out: list[Decision]) -> None:
        """Explicitly reconcile every task the records think alive, before any launch."""
        live = (
            (st.task_id, agent.agent_id)
            for agent in self.agents.values()
            for st in agent.steps.values()
            if st.live
        )
        if not self.reconciler.start(live, now, out):
            self._finish_reconciliation(now, out)

    def on_framework_removed(self) -> list[Decision]:
        """Mesos removed the framework and killed its tasks: register afresh, keep progress."""
        self.framework_id = None
        self.subscribed = False
        self._forget_held()
        self.reconciler.forget()
        return [SaveFrameworkId(None)]

    def _finish_reconciliation(self, now: float, out: list[Decision]) -> None:
        """Then implicit reconciliation, periodically, offers for every agent again, and
        every KILL not confirmed sent again (one may have been lost while we were away).

        Offers again: a REVIVE, since offers declined while reconciling were filtered, and a
        framework that fails over under the same ID may find the filters of its previous
        subscription (the master clears them only when it deactivates the framework:
        apache/mesos src/master/allocator/mesos/hierarchical.cpp, `deactivateFramework`).
        None for a framework the master has just registered (a new framework ID) that has
        refused nothing yet: it has no filters, and the master offered every agent when it
        added it (`addFramework` calls `generateOffers()`), so a REVIVE would only make the
        allocator walk every agent again for nothing."""
        self.reconciler.finish(now, out)
        self._resend_kills(now, out, every=True)
        if self._filters_possible:
            self._revive.want(math.inf, reason=SUBSCRIBED)
        self._pump(now, out)  # replacements wait for reconciliation too

    def on_tick(self, now: float) -> list[Decision]:
        """Timers: reconciliation retries, periodic implicit reconciliation, revive."""
        out: list[Decision] = []
        if not self.subscribed:
            return out
        if self.reconciler.tick(now, out):
            self._finish_reconciliation(now, out)
        elif not self.reconciler.explicit:
            self._resend_kills(now, out)
            self._check_deadlines(now, out)
            self._check_stable(now, out)
            self._forget_gone(now, out)
            self._retry_rejoined(now, out)
        self._release_stale(now, out)
        self._pump(now, out)
        self._flush_declines(out)
        return out

    def _use_offer(
        self, offer: Mapping, now: float, launched: set[str], out: list[Decision]
    ) -> float | Hold | None:
        agent = self._agent_from_offer(offer, now, out)
        return self._decide(agent, offer, now, launched, out)

    def _decide(
        self, agent: AgentState, offer: Mapping, now: float, launched: set[str], out: list
    ) -> float | Hold | None:
        """Launch the agent's next step on the offer; hold the offer if that step waits for
        a step of ours still running (it launches the moment that one is done) or for a
        restart slot with the agent among the next in line (`_slot_pool`); else decline."""
        short = self.config.wait_refuse_seconds
        if self.reconciling or not self.subscribed or agent.agent_id in launched:
            return self._refuse(agent, short, now)
        action = self.next_action(agent, now)
        if action.kind == "skip" and not agent.wanted and agent.calico_present is None:
            return self._refuse(agent, self.config.unwanted_refuse_seconds, now)
        if action.kind in ("done", "skip", "gave_up"):
            return self._refuse(agent, self.config.long_refuse_seconds, now)
        if action.kind == "delay":
            return self._refuse(
                agent, min(action.until - now, self.config.long_refuse_seconds), now
            )
        if action.kind == "wait" and self.holding and not (self.interrupted or agent.interrupted):
            if agent.agent_id in self._unheld:  # held once for nothing: others' turn
                return self._refuse(agent, self._stalled_refuse(agent.agent_id, now, False), now)
            return self._hold(agent, offer, now, for_slot=False)
        if action.kind != "launch" or not self._fits(agent, action.step, offer, out):
            return self._refuse(agent, short, now)
        if action.step.restarts:
            if not self._chain_fits(agent, offer, out):
                return self._refuse(agent, short, now)
            if not self._slot_free(agent.agent_id):
                aid = agent.agent_id
                if self.holding and (aid in self._unheld or self._slots_stalled()):
                    # no slot will free within a hold: the agent goes to others meanwhile
                    refuse = self._stalled_refuse(aid, now, True)
                    return self._refuse_for_slot(agent, now, refuse)
                if self.holding and (
                    aid in self._slot_held or len(self._slot_held) < self._slot_pool()
                ):
                    return self._hold(agent, offer, now, for_slot=True)
                if self.holding:
                    return self._refuse_for_slot(agent, now, self._slot_refuse_seconds(aid))
                return self._refuse_for_slot(agent, now)
            self._admit(agent.agent_id, now)
        launched.add(agent.agent_id)
        st = agent.step(action.step.name)
        self._launch(agent, st, action.step, offer, now, out)
        self._index(agent, now)
        return None

    def _chain_fits(self, agent: AgentState, offer: Mapping, out: list[Decision]) -> bool:
        """Before a step that restarts Docker or the agent: can the agent hold the whole
        enabled chain, daemons that stay running included? If not, restarting anything
        there would be for nothing (the later steps could never launch), so it waits, and
        the step says which resource is short by how much."""
        have = offer_scalars(offer)
        chain = []
        for spec in self.config.enabled_steps:
            st = agent.steps.get(spec.name)
            if st is not None and st.live:  # ours already, so not in the offer
                for name, amount in spec.needs.items():
                    have[name] = have.get(name, 0.0) + amount
            chain.append((spec.needs, spec.kind == StepKind.DAEMON))
        short = chain_shortfall(have, chain)
        if not short:
            return True
        words = "; ".join(
            f"can give Calico {have.get(name, 0.0):g} {name}, the whole chain needs "
            f"{need:g} ({missing:g} short)"
            for name, (need, missing) in sorted(short.items())
        )
        self._explain_refusal(agent, f"{agent.name} {words}: nothing restarted until it fits", out)
        return False

    @property
    def _options_key(self) -> str:
        """What a step that gave up remembers of the options (never empty)."""
        return self.config.options_digest or "given"

    def _failed(self, st: StepState, by_host: bool, now: float) -> None:
        """Retry after backoff, but stop after `max_host_failures` failures in a row that the
        host causes: retrying those only restarts Docker or the agent again for nothing."""
        super()._failed(st, by_host, now)
        st.host_failures = st.host_failures + 1 if by_host else 0
        if st.host_failures >= self.config.max_host_failures:
            st.gave_up, st.retry_at = self._options_key, 0.0
            st.message = gave_up_words(st.host_failures, st.message)

    def _unfinished(self, step: str, st: StepState) -> bool:
        spec = self._steps.get(step)
        return st.live and (spec is None or not step_done(spec, st))

    def _save_launch(self, agent: AgentState, out: list[Decision]) -> None:
        out.append(SaveAgent(agent.agent_id, agent_record(agent)))

    def _step_state(self, agent_id: str, step: str) -> StepState | None:
        agent = self.agents.get(agent_id)
        return agent.steps.get(step) if agent is not None else None

    def _spec_of(self, step: str) -> StepSpec | None:
        return self._steps.get(step)

    def _saved(self, agent_id: str, now: float, out: list[Decision]) -> None:
        agent = self.agents[agent_id]
        self._index(agent, now)
        out.append(SaveAgent(agent_id, agent_record(agent)))

    def _agent_from_offer(self, offer: Mapping, now: float, out: list[Decision]) -> AgentState:
        aid = offer["agent_id"]["value"]
        agent = self.agents.get(aid)
        attrs = offer_attributes(offer)
        public = offer_is_public(offer)
        hostname = offer.get("hostname", "")
        if agent is not None and not agent.lost and agent.hostname == hostname:
            if public != agent.public or attrs != agent.attributes:
                # DC/OS agents may gain attributes when they restart under the same ID: read
                # them from every offer, so constraints see them. Public-ness is what the agent
                # is, from its offer; this also mends a record that an older version marked
                # public from an offer allocated to `slave_public`.
                agent.public = public
                agent.attributes = attrs
                agent.wanted = self.config.wants_agent(agent.view)
                self._index(agent, now)
                out.append(SaveAgent(aid, agent_record(agent)))
            return agent
        if agent is None:
            agent = self.agents[aid] = AgentState(aid)
        was_lost, since = agent.lost, agent.lost_at
        agent.hostname, agent.attributes, agent.lost = hostname, attrs, False
        agent.public = public
        agent.wanted = self.config.wants_agent(agent.view)
        if was_lost:
            self._rejoin(agent, since, "Mesos offers it again", now, out)
        self._index(agent, now)
        out.append(SaveAgent(aid, agent_record(agent)))
        return agent

    def _rejoin(
        self, agent: AgentState, since: float, how: str, now: float, out: list[Decision]
    ) -> None:
        """A gone agent is back (an offer of it, or an update of a task on it): it counts
        again, and its live tasks are reconciled explicitly now, by task and agent ID.

        Their records still say what Mesos said when the agent went (TASK_UNREACHABLE,
        "health check timed out"), which the step would show, and wait on, until news.
        The master's own word is not to be counted on: it sends one update per task of an
        unreachable agent that re-registers ("Unreachable agent re-reregistered",
        REASON_SLAVE_REREGISTERED), without a uuid, and drops it for a framework not
        connected then (apache/mesos src/master/master.cpp, `Master::__reregisterSlave`),
        so the scheduler asks, as apache/mesos docs/reconciliation.md has a scheduler do
        when it is unsure of a task's state; else the periodic implicit reconciliation
        (`implicit_reconcile_seconds`, 10 minutes) would be the first news. Unanswered
        tasks are asked again with backoff (`_retry_rejoined`). Not during the plan's own
        explicit round, which asks about every live task already. Said in a `Note`."""
        aid = agent.agent_id
        agent.lost, agent.lost_at = False, 0.0
        self._gone.pop(aid, None)
        self._touched(aid)
        tasks = [(st.task_id, aid) for st in agent.steps.values() if st.live and st.task_id]
        words = f"{agent.name} is back ({how})"
        if since:
            words += f"; gone since {utc_words(since)}"
        if tasks and not self.reconciler.explicit:
            self._rejoined.update(tasks)
            self._rejoin_round = 0
            self._rejoin_at = now + self.config.reconcile_backoff_seconds
            out.extend(Reconcile(chunk) for chunk in in_calls(tasks))
            count = "1 task" if len(tasks) == 1 else f"{len(tasks)} tasks"
            words += f": reconciling its {count} with Mesos"
        out.append(Note(words, "info"))

    def _retry_rejoined(self, now: float, out: list[Decision]) -> None:
        """Ask again, with backoff (`reconcile_backoff_seconds` doubling, at most
        `reconcile_max_backoff_seconds`, `reconcile_max_rounds` asks in all), about the
        tasks of agents come back that Mesos has not answered for yet; those no longer
        current and live, or on an agent gone again, are dropped. After the last ask the
        periodic implicit reconciliation is left to answer. O(tasks awaited)."""
        if not self._rejoined or now < self._rejoin_at:
            return
        for task_id, aid in list(self._rejoined.items()):
            parsed = parse_task_id(task_id)
            st = self._step_state(aid, parsed[0]) if parsed else None
            agent = self.agents.get(aid)
            if st is None or st.task_id != task_id or not st.live or agent is None or agent.lost:
                del self._rejoined[task_id]
        self._rejoin_round += 1
        if self._rejoin_round >= self.config.reconcile_max_rounds:
            for aid in set(self._rejoined.values()):
                self._dirty(aid)  # its steps no longer say "being asked"
            self._rejoined.clear()
        if not self._rejoined:
            return
        out.extend(Reconcile(chunk) for chunk in in_calls(self._rejoined.items()))
        delay = self.config.reconcile_backoff_seconds * 2**self._rejoin_round
        self._rejoin_at = now + min(delay, self.config.reconcile_max_backoff_seconds)

    def on_status(self, status: Mapping, now: float) -> list[Decision]:
        """A task status update (or a reconciliation answer)."""
        out: list[Decision] = []
        task_id = status["task_id"]["value"]
        last = self.reconciler.answered(task_id)
        self._rejoined.pop(task_id, None)
        parsed = parse_task_id(task_id)
        agent = self.agents.get(parsed[1]) if parsed else None
        if agent is not None and agent.lost and status["state"] not in GONE_STATES:
            # the agent runs this task: it is back before its first offer
            self._rejoin(
                agent, agent.lost_at, f"Mesos sent {status['state']} of {task_id}", now, out
            )
            self._index(agent, now)
            out.append(SaveAgent(agent.agent_id, agent_record(agent)))
        if parsed is None or agent is None or parsed[0] not in self._steps:
            if status["state"] not in ENDED:
                out.append(Kill(task_id, status.get("agent_id", {}).get("value", "")))
        elif agent.step(parsed[0]).task_id == task_id:
            self._transition(agent, self._steps[parsed[0]], status, now, out)
        else:
            self._unknown_task(agent, self._steps[parsed[0]], parsed, status, now, out)
        if last:
            self._finish_reconciliation(now, out)
        return out

    def _transition(
        self, agent: AgentState, spec: StepSpec, status: Mapping, now: float, out: list[Decision]
    ) -> None:
        st = agent.step(spec.name)
        if not self._update(spec, st, status, now):
            return
        self._ask_for_output(agent.agent_id, st, status, out)
        if step_done(spec, st) and spec.kind == StepKind.ONESHOT:
            # a daemon's count starts over only once it has stayed up (`_check_stable`)
            st.failures = st.host_failures = 0
            st.last_failure = ""
        self._touch(agent, now, out)
        if status["state"] not in UNSAVED_STATES:
            out.append(SaveAgent(agent.agent_id, agent_record(agent)))

    def _unknown_task(
        self,
        agent: AgentState,
        spec: StepSpec,
        parsed: tuple[str, str, str, int],
        status: Mapping,
        now: float,
        out: list[Decision],
    ) -> None:
        """A task the records do not know: adopt it if it is what we would launch now."""
        state = status["state"]
        if state in ENDED:
            return
        st = agent.step(spec.name)
        current = spec.enabled and spec.fingerprint.startswith(parsed[2])
        if current and not st.live and self.eligible(agent):
            st.task_id, st.state, st.fingerprint = (
                status["task_id"]["value"],
                state,
                spec.fingerprint,
            )
            st.attempts = max(st.attempts, parsed[3])
            st.healthy, st.updated, st.killing = status.get("healthy"), now, False
            st.message, st.launched_at = status.get("message", ""), 0.0  # launch unknown
            if step_done(spec, st):
                st.failures = 0
            self._touch(agent, now, out)
            out.append(SaveAgent(agent.agent_id, agent_record(agent)))
            return
        out.append(Kill(status["task_id"]["value"], agent.agent_id))

    def on_agent_lost(self, agent_id: str, now: float) -> list[Decision]:
        """The agent left the cluster: it no longer counts, nor holds a restart slot."""
        out: list[Decision] = []
        agent = self.agents.get(agent_id)
        if agent is None or agent.lost:
            return out
        agent.lost, agent.lost_at = True, now
        self._gone[agent_id] = now
        for st in agent.steps.values():
            self._rejoined.pop(st.task_id or "", None)
        # the master rescinds the offers of an agent it removes (apache/mesos
        # docs/scheduler-http-api.md, FAILURE): nothing to decline
        self._unhold(agent_id)
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        if agent.wanted and agent.calico_present is None:
            words = gone_words(now, self._unreachable(agent))
            out.append(Note(f"{agent.name} ({agent_id}) is {words}; not counted meanwhile"))
        return out

    def _forget_gone(self, now: float, out: list[Decision]) -> None:
        """Delete the records of agents gone for `gone_retention_seconds`; O(gone agents)."""
        for agent_id, lost_at in list(self._gone.items()):
            agent = self.agents.get(agent_id)
            if agent is None or not agent.lost:
                del self._gone[agent_id]
            elif not lost_at:  # read back from a record written before lost_at existed
                self._gone[agent_id] = agent.lost_at = now
            elif now - lost_at >= self.config.gone_retention_seconds:
                del self._gone[agent_id], self.agents[agent_id]
                self._index_removed(agent_id)
                out.append(DeleteAgent(agent_id))

    def _index_removed(self, agent_id: str) -> None:
        self._unhold(agent_id)
        for index in (self._eligible, self._done):
            index.discard(agent_id)
        self._replace_queue.pop(agent_id, None)
        self._sync_slot(agent_id, False)
        self.slots.not_waiting(agent_id)
        self.offer_notes.pop(agent_id, None)
        self._dirty(agent_id)

    def on_report(self, agent_id: str, report: Mapping, now: float) -> list[Decision]:
        """The installer found Calico already on the host (no Calico steps for it), or says
        why its task is failing (`failures`: kept for when the task ends)."""
        if report.get("failed"):
            return self._failure_report(agent_id, report, now)
        if report.get("warning"):
            return self._warning_report(agent_id, report, now)
        out: list[Decision] = []
        agent = self.agents.get(agent_id)
        if agent is None or not report.get("calico_present"):
            return out
        agent.calico_present = {"step": report.get("step"), "found": report.get("found")}
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        return out

    def on_options(self, config: PlanConfig, now: float) -> list[Decision]:
        """New options: steps whose fingerprint changed re-run, within the restart budget."""
        out: list[Decision] = []
        self.config = config
        self.slots.budget = config.budget
        self._steps = {s.name: s for s in config.steps}
        self._unheld.clear()  # every agent's plan may have changed: held again
        for agent in self.agents.values():
            agent.wanted = config.wants_agent(agent.view)
            self._index(agent, now)
            if agent.agent_id not in self._done:
                self._revive.want(agent.filtered_until, agent.filtered_after, OPTIONS)
        for aid in list(self._held):
            self._use_held(aid, now, out)
        self._pump(now, out)
        return out

    # -- operator commands -----------------------------------------------------------

    def _set_interrupted(self, agent_id: str | None, value: bool, now: float) -> list[Decision]:
        """`interrupt` / `proceed`, said in a `Note` (the log, and the command's reply: what
        stops, what goes on, and what an interrupt left in place still holds: the whole
        plan's over an agent's own, and the agents' own over the plan's continue)."""
        out: list[Decision] = []
        if agent_id is None:
            before = self.interrupted
            self.interrupted = value
            # Stored, as an agent's mark is in its record: an operator who stopped the rollout
            # must not see it resume because Marathon restarted the scheduler.
            out.append(SaveMeta(META_KEY, {"interrupted": value}))
            if not value:
                self._revive.want(math.inf, reason=OPERATOR)
                self._unheld.clear()
            for aid in list(self._held):
                self._use_held(aid, now, out)
            self._pump(now, out)
            out.append(Note(self._interrupt_words(None, before, value), "info"))
            return out
        agent = self._known(agent_id)
        before = agent.interrupted
        agent.interrupted = value
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        out.append(Note(self._interrupt_words(agent, before, value), "info"))
        return out

    def _interrupt_words(self, agent: AgentState | None, before: bool, value: bool) -> str:
        """What an interrupt or a continue did (`agent` None: the whole plan's)."""
        name = "the plan" if agent is None else agent.name
        where = "anywhere" if agent is None else "there"
        resume = continue_words(agent is None, [] if agent is None else [agent.name])
        gone = self._gone_words(agent) if agent is not None else ""
        if value:
            again = "already " if before else ""
            return (
                f"{name} {again}interrupted by an operator: running tasks go on; nothing is "
                f"launched, replaced or relaunched {where} until {resume} (a task not yet "
                f"RUNNING that `plan restart` names is still killed){gone}"
            )
        words = f"{name} continues" if before else f"{name} was not interrupted: nothing changed"
        words += gone
        if agent is not None and self.interrupted:
            words += f"; the whole plan is still interrupted ({interrupted_words(None)})"
        elif agent is None:
            own = sorted(a.name for a in self.agents.values() if a.interrupted and not a.lost)
            if own:
                who = "1 agent stays" if len(own) == 1 else f"{len(own)} agents stay"
                words += f"; {who} interrupted on its own ({continue_words(False, own)})"
        return words

    def _gone_words(self, agent: AgentState) -> str:
        """For an operator's reply about a gone agent: what it is since when, and what
        happens when it is back (`_rejoin`: its live tasks reconciled at once, its
        interrupt mark kept, in its record); "" for an agent in the cluster."""
        if not agent.lost:
            return ""
        gone = gone_state(agent.lost_at, self._unreachable(agent))
        mark = "interrupted" if agent.interrupted else "not interrupted"
        return (
            f"; {agent.name} is {gone}: nothing reaches it now; when it is back its tasks "
            f"are reconciled with Mesos at once and it stays {mark}"
        )

    def restart(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Run a step again on an agent, as if its options had changed: forgetting the
        fingerprint makes it not done, and keeps its task's real state, so an ended task is
        relaunched (within the budget if it restarts Docker or the agent), a task that has
        not reached TASK_RUNNING is killed (KILL, sent again until Mesos confirms an end)
        and launched again (it keeps its restart slot meanwhile), a live daemon is replaced
        within the budget, and a RUNNING one-shot runs again once it has ended: killing a
        Docker restart half-way could leave the host without Docker. What happens, and
        when, is said in a `Note` (the log, and the command's reply): the reply names what
        holds it back, so that it is never taken to happen now when it does not.

        - The agent is gone (unreachable, or removed): nothing reaches it now. The master
          moved its tasks to `unreachableTasks`, so a KILL of one is of a task it does not
          know: it answers with a reconciliation (TASK_UNREACHABLE) and keeps no kill to
          send when the agent re-registers, as it does for one merely disconnected
          (apache/mesos src/master/master.cpp, `Master::kill`: "because it is unknown;
          performing reconciliation", "Kill will be retried if the agent reregisters").
          So nothing is sent; the restart is kept and happens when the agent is back
          (`_rejoin`: Mesos offers it, or sends news of its tasks), within the budget as
          ever.
        - The plan or the agent is interrupted: a task that has not started is killed now
          (it could still start, and restart Docker or the agent), but nothing is replaced
          or launched until `plan continue`, as any interrupt holds launches.

        dcos-commons' `plan restart` sets the step PENDING (mesosphere/dcos-commons
        sdk/scheduler/.../plan/AbstractStep.java, `restart`), and the next offer cycle kills
        whatever task of the step is not terminal before launching it again
        (`DefaultPlanScheduler.killTasks`, for the steps the strategy offers as candidates,
        whatever agent the offers are of): on an unreachable agent that KILL goes out and
        is lost as above, and the step waits for an offer of the agent to launch. An
        interrupted strategy offers no candidates (`DependencyStrategyHelper.getCandidates`),
        so nothing of its steps is killed until `proceed`, as here for a running daemon.
        Here a RUNNING one-shot is spared, for the reason above."""
        out: list[Decision] = []
        agent, spec = self._known(agent_id), self._spec(step)
        st = agent.step(spec.name)
        st.forced, st.failures, st.retry_at, st.fingerprint = None, 0, 0.0, None
        st.host_failures, st.gave_up, st.last_failure = 0, "", ""
        budget = " within the restart budget" if spec.restarts else ""
        task = f"its task {st.task_id} ({st.state})"
        if agent.lost:
            gone = gone_state(agent.lost_at, self._unreachable(agent))
            if st.live and spec.kind == StepKind.ONESHOT:
                later = f"it runs again{budget} once {task} has ended"
            elif st.live:
                later = f"{task} is replaced then (killed, then launched again){budget}"
            else:
                later = f"it is launched again then{budget}"
            words = (
                f"{agent.name} is {gone}: nothing can be killed or launched there now; the "
                f"restart happens when the agent is back: {later}"
            )
        else:
            held = self._held_back(agent)
            when = f" once the interrupt is lifted ({held})" if held else ""
            if st.live and st.killing:
                words = (
                    f"{task} is being killed already; it runs again{budget} once that ends{when}"
                )
            elif st.live and st.state in LAUNCHING:
                self._kill(agent_id, spec.name, st, now, out)
                words = f"{task} had not started: killed, and launched again{budget}{when}"
            elif st.live and spec.kind == StepKind.ONESHOT:
                words = (
                    f"{task} is running: it runs again once that task ends{when} (not "
                    "killed: stopping it half-way could leave the host broken)"
                )
            elif st.live and held:
                words = (
                    f"nothing is killed now: {held}; then {task} is replaced (killed, then "
                    f"launched again){budget}"
                )
            elif st.live:
                words = f"{task} is replaced (killed, then launched again){budget}"
            elif held:
                words = f"nothing is launched now: {held}; then it is launched again{budget}"
            else:
                words = f"launched again{budget}"
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        out.append(Note(f"{agent.name}: {spec.name} restarted by an operator: {words}", "info"))
        return out

    def _held_back(self, agent: AgentState) -> str | None:
        """What an operator's interrupt holds back on the agent (`views.interrupted_words`:
        the whole plan's, else the agent's own), or None."""
        if self.interrupted and agent.interrupted:
            return (
                f"{interrupted_words(None)}; then {agent.name} stays interrupted on its own "
                f"until {continue_words(False, [agent.name])}"
            )
        if self.interrupted:
            return interrupted_words(None)
        if agent.interrupted:
            return interrupted_words(agent.name)
        return None

    @staticmethod
    def _unreachable(agent: AgentState) -> bool:
        """Did Mesos say the agent's tasks are TASK_UNREACHABLE (the agent may come back)?"""
        return any(st.state == "TASK_UNREACHABLE" for st in agent.steps.values())

    def force_complete(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Count a step as done with the current options, whatever its task did. A task of
        the step that has not reached TASK_RUNNING is killed (it could still start, and
        restart Docker or the agent outside the budget, after the operator said the step is
        done); a RUNNING one is left alone: a daemon is what the step is for, and stopping a
        one-shot half-way through a Docker or agent restart could leave the host broken. A
        restart slot the task holds is kept until Mesos confirms its end. dcos-commons'
        `forceComplete` only sets the step COMPLETE (AbstractStep.java), leaving its task to
        run.

        A step done with its installer's warning (`warning`) is left as it is, and the
        warning is acknowledged instead (`_acknowledge`): the operator has looked at the host
        and accepts it, so the plan stops counting it a problem (Degraded)."""
        out: list[Decision] = []
        agent, spec = self._known(agent_id), self._spec(step)
        st = agent.steps.get(spec.name)
        if st is not None and st.warning and step_done(spec, st):
            return self._acknowledge(agent, spec, st, now)
        done = self._done_already(agent, spec)
        if done is not None:  # no record change, no FORCED mark: its task did run
            again = "; `calico-dcos plan restart` runs it again" if done != PRESENT else ""
            out.append(Note(f"{agent.name}: {spec.name} {done}: nothing changed{again}", "info"))
            return out
        st = agent.step(spec.name)
        st.forced, st.failures, st.retry_at, st.replacing = spec.fingerprint, 0, 0.0, False
        st.host_failures, st.gave_up, st.last_failure, st.warning = 0, "", "", ""
        words = "done"
        task = f"its task {st.task_id} ({st.state})"
        if st.live and st.killing:
            words = f"done; {task} is being killed already"
        elif st.live and st.state in LAUNCHING:
            words = f"done; {task} had not started: killed"
            self._kill(agent_id, spec.name, st, now, out)
        elif st.live and spec.kind == StepKind.ONESHOT:
            slot = "; its restart slot is kept until it ends" if spec.restarts else ""
            words = (
                f"done; {task} is left to finish (not killed: stopping it half-way could "
                f"leave the host broken){slot}"
            )
        elif st.live:
            words = f"done; {task} is left running"
        if agent.lost:  # a KILL above reaches it only once back (`restart`'s docstring)
            gone = gone_state(agent.lost_at, self._unreachable(agent))
            kill = ", and its task killed if it still runs" if st.live and st.killing else ""
            words += (
                f"; {agent.name} is {gone}: when it is back its tasks are reconciled with "
                f"Mesos at once{kill}; the plan counts it again once it is back"
            )
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        words = f"{agent.name}: {spec.name} force-completed by an operator: {words}"
        out.append(Note(words, "info"))
        return out

    def _acknowledge(
        self, agent: AgentState, spec: StepSpec, st: StepState, now: float
    ) -> list[Decision]:
        """An operator's force-complete of a step done with its installer's warning: the step
        stays COMPLETE and keeps the warning's words, marked acknowledged at `now`
        (`warning_acknowledged_at`, in the agent's record, so that a restarted or failed-over
        scheduler still knows), and is no longer a problem. The step's next launch (`plan
        restart`, options that change it) clears both. Nothing is killed or launched. Once
        acknowledged, the same command changes nothing and says when it was."""
        out: list[Decision] = []
        again = "`calico-dcos plan restart` runs it again"
        if st.warning_acknowledged_at:
            when = utc_words(st.warning_acknowledged_at)
            words = f"'s warning was acknowledged already, at {when}: nothing changed; {again}"
            out.append(Note(f"{agent.name}: {spec.name}{words}", "info"))
            return out
        st.warning_acknowledged_at = now
        self._dirty(agent.agent_id)
        out.append(SaveAgent(agent.agent_id, agent_record(agent)))
        words = (
            f"{agent.name}: {spec.name} was done already, with a warning; acknowledged by an "
            f"operator at {utc_words(now)}: no longer counted a problem (Degraded), the step "
            f"stays done with the host as it is ({again}): {st.warning}"
        )
        out.append(Note(words, "info"))
        return out

    @staticmethod
    def _done_already(agent: AgentState, spec: StepSpec) -> str | None:
        """Why a step needs no force-complete (done with the current options: by its task,
        by an earlier force-complete, or Calico was on the host already), or None. Forcing
        it would mark it FORCED, "its task may never have run", which is false then. (A step
        done with its installer's warning is acknowledged instead: `_acknowledge`.)"""
        if agent.calico_present is not None:
            return PRESENT
        st = agent.steps.get(spec.name) or _NO_TASK
        if not step_done(spec, st):
            return None
        if forced(st, spec.fingerprint):
            return "was force-completed already"
        ran = "finished" if spec.kind == StepKind.ONESHOT else "is running"
        return f"was done already (its task {ran})"

    def _spec(self, step: str) -> StepSpec:
        if step not in self._steps:
            raise KeyError(f"unknown step {step} (the steps are {', '.join(self._steps)})")
        return self._steps[step]

    # -- views for people ------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Every agent done, as Mesos confirmed: subscribed and reconciled."""
        if not self.subscribed or self.reconciler.explicit or not self._eligible:
            return False
        return len(self._done) >= len(self._eligible) and self._done >= self._eligible

    def progress(self) -> tuple[int, int]:
        """(agents done, agents that should get Calico)."""
        return len(self._done & self._eligible), len(self._eligible)

    def step_status(
        self, agent: AgentState, spec: StepSpec, now: float, action: Action | None = None
    ) -> tuple[str, str]:
        """dcos-commons status and a message a person can act on (`action`: the agent's
        `next_action`, if the caller has it)."""
        if agent.calico_present is not None:
            return "COMPLETE", PRESENT
        st = agent.steps.get(spec.name) or StepState()
        if step_done(spec, st):
            return "COMPLETE", done_words(st, spec.fingerprint)
        stalled = self.stalled_words(st, now) if st.live else None
        if stalled is not None:
            return "STARTING", stalled
        return self._held_words(agent, spec, st, now) or self._waiting(agent, spec, action, now)

    def _held_words(
        self, agent: AgentState, spec: StepSpec, st: StepState, now: float
    ) -> tuple[str, str] | None:
        """`views.task_words`; for a running daemon to be replaced (`plan restart`, new
        options) that an interrupt holds back, why it is not replaced yet; for a task Mesos
        last said TASK_UNREACHABLE on an agent that is back, that this is old news and
        whether its state is being asked (`_rejoin`)."""
        if st.live and st.state == "TASK_UNREACHABLE" and not agent.lost:
            asking = (
                "its state is being asked of Mesos (explicit reconciliation)"
                if st.task_id in self._rejoined
                else "its state comes with the next reconciliation"
            )
            why = f" ({st.message})" if st.message else ""
            return (
                "STARTED",
                f"Mesos said TASK_UNREACHABLE while the agent was unreachable{why}; the "
                f"agent is back: {asking}",
            )
        words = task_words(st, now)
        held = self._held_back(agent) if words is not None and st.live else None
        if held is None or spec.kind != StepKind.DAEMON or st.killing:
            return words
        if st.fingerprint == spec.fingerprint:
            return words
        status, message = words
        resume = continue_words(self.interrupted, [agent.name] if agent.interrupted else [])
        waits = f"to be replaced once the interrupt is lifted ({resume})"
        return status, f"{message}; {waits}" if message else waits

    def _waiting(
        self, agent: AgentState, spec: StepSpec, action: Action | None, now: float
    ) -> tuple[str, str]:
        """A step that is neither done nor has a task to show: what it waits for."""
        action = action or self.next_action(agent, now)
        if action.step is not spec:
            return "PENDING", ""
        if action.kind == "interrupted":
            return "WAITING", INTERRUPTED
        if spec.restarts and not self._slot_free(agent.agent_id):
            return slot_words(self.budget, agent.agent_id in self._slot_held)
        if spec.restarts and action.kind == "launch" and agent.agent_id in self.slots.waiters:
            return slot_words(self.budget, free=True)
        if action.kind == "launch":
            return offer_words(self.offer_notes.get(agent.agent_id))
        return "PENDING", ""

    def plan_view(self, now: float) -> dict:
        """The deploy plan in dcos-commons' shape: one phase per agent, one step per step.
        O(agents × steps), each step's state read once."""
        kept = self._phase_cache((self.interrupted, self._slot_free(""), self.budget))
        shown = [a for a in self.agents.values() if not a.lost and a.wanted]
        shown.sort(key=lambda a: (a.hostname, a.agent_id))
        phases = [kept.get(a.agent_id) or self._phase(a, now) for a in shown]
        # dcos-commons' strategy says whether phases (agents) run one after another or
        # together: they always progress together; only restarts wait for the budget
        doc = plan_doc(phases, "parallel", self.interrupted)
        if self.interrupted:  # `plan show` says so (`views.interrupted_words`)
            doc["interrupted"] = True
        gone = self._gone_agents()
        if gone:
            labels = self._gone_labels(gone[:MAX_GONE_NAMED], {a.name for a in shown})
            doc["gone"] = [
                gone_doc(a.agent_id, a.name, a.lost_at, self._unreachable(a), labels[a.agent_id])
                for a in gone[:MAX_GONE_NAMED]
            ]
            doc["gone_total"] = len(gone)
        return doc

    def _gone_line(self, gone: list[AgentState], labels: Mapping[str, str]) -> str:
        """The summary's words on the agents gone from the cluster: the first few by name,
        with what they are and since when (`views.gone_state`)."""
        shown = [
            f"{labels[a.agent_id]} {gone_state(a.lost_at, self._unreachable(a))}" for a in gone[:3]
        ]
        more = f" and {len(gone) - 3} more" if len(gone) > 3 else ""
        count = "1 agent" if len(gone) == 1 else f"{len(gone)} agents"
        return f"{count} gone, not counted: {', '.join(shown)}{more}"

    def _gone_labels(self, gone: list[AgentState], in_plan: set[str]) -> dict[str, str]:
        """`{agent ID: views.gone_label}` of agents gone: a name also in the plan's phases
        (`in_plan`) or of another agent gone gets the end of its agent ID. O(gone + named)."""
        names = Counter(a.name for a in gone)
        return {
            a.agent_id: gone_label(a.name, a.agent_id, a.name in in_plan or names[a.name] > 1)
            for a in gone
        }

    def _gone_agents(self) -> list[AgentState]:
        """The agents gone from the cluster that would otherwise be in the plan (wanted,
        not running Calico by other means), by name: they are no phase (nothing can run
        there), but they are not forgotten either (until `gone_retention_seconds`).
        O(gone agents)."""
        gone = [
            a
            for aid in self._gone
            if (a := self.agents.get(aid)) is not None
            and a.lost
            and a.wanted
            and a.calico_present is None
        ]
        gone.sort(key=lambda a: (a.hostname, a.agent_id))
        return gone

    def _phase(self, agent: AgentState, now: float) -> dict:
        """The agent's phase, kept for the next `plan_view` unless it counts down a retry."""
        aid, present = agent.agent_id, agent.calico_present is not None
        countdown = False
        action = None  # the agent's next action, worked out only if a step waits
        steps = []
        for spec in self.config.enabled_steps:
            st = agent.steps.get(spec.name) or _NO_TASK
            by_operator = False  # COMPLETE only by an operator's force-complete
            warned = None  # done: its state, for the installer's warning, if any
            if present:
                status, message = "COMPLETE", PRESENT
            elif step_done(spec, st):
                status, message = "COMPLETE", done_words(st, spec.fingerprint)
                by_operator = forced(st, spec.fingerprint)
                warned = st
            else:
                words = self._held_words(agent, spec, st, now)
                stalled = self.stalled_words(st, now) if st.live else None
                if stalled is not None:
                    words = ("STARTING", stalled)
                countdown = countdown or st.retry_at > now or stalled is not None
                if words is None:
                    action = action or self.next_action(agent, now)
                    words = self._waiting(agent, spec, action, now)
                status, message = words
            step_id = st.task_id or f"{aid}:{spec.name}"
            steps.append(step_doc(step_id, spec.name, status, message, by_operator, warned))
        phase = phase_doc(aid, agent.name, steps, agent.interrupted)
        if agent.interrupted:
            phase["interrupted"] = True
        if not countdown:
            self._phases[aid] = phase
        return phase

    def summary(self, now: float) -> dict:
        """Available / Progressing / Degraded, each with words for people.

        Degraded: a step failing now (`views.failing`; a done step is only with a warning no
        one acknowledged), or an agent the plan wants unreachable (`views.unreachable_problem`:
        not one Mesos removed for good). Progressing:
        something will move without the operator (reconciling, or an agent not done whose
        next action is not to wait for the operator: a step that gave up, an interrupt), as
        Kubernetes' Progressing condition is false once a rollout cannot go on by itself
        (kubernetes.io "Deployments", "Failed Deployment"). The message says what the rest
        waits for."""
        done, total = self.progress()
        problems = []
        moving, gave_up, held, by_operator, acknowledged = 0, 0, 0, 0, 0
        held_own: list[str] = []  # names of the held agents interrupted on their own
        replacing: dict[str, str] = {}  # slot holders replacing a running daemon: its step
        for a in self.agents.values():
            if a.agent_id not in self._eligible:
                continue
            for spec in self.config.enabled_steps:
                st = a.steps.get(spec.name)
                if st is not None:
                    step_is_done = step_done(spec, st)
                    if a.calico_present is None and forced(st, spec.fingerprint):
                        by_operator += 1  # as `_phase` marks it
                    if st.replacing:  # holds a slot (`_holds_slot`), for this daemon
                        replacing[a.agent_id] = spec.name
                    if step_is_done and st.warning and st.warning_acknowledged_at:
                        acknowledged += 1
                    line = failing(a.name, spec.name, st, step_is_done)
                    if line is not None:
                        problems.append(line)
            if a.agent_id in self._done:
                continue
            kind = self.next_action(a, now).kind
            if kind == "gave_up":
                gave_up += 1
            elif kind == "interrupted" or (kind == "replace" and self._held_back(a)):
                held += 1
                if a.interrupted:
                    held_own.append(a.name)
            else:
                moving += 1
        for agent_id, step, words in self.stalled_steps(now):
            problems.append(f"{self._agent_name(agent_id)}: {step} {words}")
        present = sum(1 for a in self.agents.values() if a.calico_present and not a.lost)
        message = f"{done} of {total} agents done"
        if by_operator:
            message += f"; {forced_words(by_operator)}"
        if acknowledged:
            message += f"; {acknowledged_words(acknowledged)}"
        if present:
            message += f"; {present} already run Calico by other means"
        if self.reconciling:
            message += f"; reconciling {len(self.reconciling)} tasks with Mesos"
        if gave_up:
            message += f"; {waiting_for_operator(gave_up)}"
        if held:
            resume = continue_words(self.interrupted, sorted(held_own))
            message += f"; {held} interrupted by an operator ({resume})"
        gone = self._gone_agents()
        labels: dict[str, str] = {}
        if gone:  # a name the plan shows again carries the end of the agent ID
            in_plan = {a.name for a in self.agents.values() if not a.lost and a.wanted}
            labels = self._gone_labels(gone, in_plan)
            message += f"; {self._gone_line(gone, labels)}"
        problems.extend(
            unreachable_problem(labels[a.agent_id], a.lost_at) for a in gone if self._unreachable(a)
        )
        return summary_doc(
            available=self.complete,
            progressing=moving > 0 or bool(self.reconciling),
            message=message,
            problems=problems,
            restarting=self.slots.holders,
            budget=self.budget,
            interrupted=self.interrupted,
            forced_steps=by_operator,
            replacing=replacing,
            acknowledged_warnings=acknowledged,
        )
