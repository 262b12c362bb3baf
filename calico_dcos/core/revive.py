"""REVIVE, coalesced: offers come back when work appears on an agent our filters hide.

Every DECLINE and ACCEPT carries a filter (`refuse_seconds`) during which Mesos does not
offer the refused resources of that agent again; a REVIVE "clears all filters for its
role(s) that were previously set via ACCEPT and DECLINE" (apache/mesos
docs/scheduler-http-api.md, REVIVE) and the allocator then offers every agent at once
(src/master/allocator/mesos/hierarchical.cpp at 0166d4b, `reviveOffers`:
`reviveRoles(framework, roles.empty() ? framework.roles : roles)` erases `offerFilters[role]`
of each role, every role of the framework for a REVIVE naming none, as the scheduler's do;
then `generateOffers()`), done ones included. So:

- a REVIVE goes out as soon as work is ready on a hidden agent (a step done and the next
  one waiting, a restart slot freed, a retry due), at most one per coalescing window
  (`PlanConfig.revive_interval`): every want inside the window rides on one REVIVE;
- the window grows with the cluster (`revive_per_agent_seconds`), so that the agents
  offered again because of REVIVEs stay below ~2,500 per second at any size: "Do not
  REVIVE frequently: REVIVEing clears all filters, and therefore if REVIVE occurs
  frequently it is similar to always declining with a very short timeout" (apache/mesos
  docs/app-framework-development-guide.md, guideline 4);
- agents with nothing to do are declined for an hour (guideline 3, `long_refuse_seconds`).
  The scheduler never SUPPRESSes (guideline 1): it learns of a new agent only from that
  agent's offers, and a suppressed framework gets none, so guideline 3's long filters
  stand in for it once the install is done.

Every want says why (`REASONS`), and a REVIVE carries the reasons of the wants it answers
(`Revive.reasons`), so that the scheduler counts REVIVEs by reason (the metric
`calico_dcos_revives_total{reason}`) and the bench can say where each came from.

Which filters a REVIVE lifted is counted in REVIVEs, not seconds (`Reviver.sent`): the
decisions of one event share a timestamp, and a REVIVE decided after an ACCEPT leaves after
it (both on the sender's control lane, in decision order), so only order tells them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from calico_dcos.core.events import Revive

# A REVIVE makes Mesos offer every agent again, done ones included: not worth it for a
# filter that runs out within about one allocation interval (Mesos' default is 1 s; a
# filter never hides for less: `recoverResources` keeps it `allocationInterval` at least).
REVIVE_WORTH_SECONDS = 1.0

# Why a REVIVE is wanted (`Revive.reasons`, the label of `calico_dcos_revives_total`):
SUBSCRIBED = "subscribed"  # (re)subscribed and reconciled: filters set before may hide work
WORK = "work"  # an agent our filter hides has work now (its step ended, a retry is due, …)
SLOT_FREED = "slot_freed"  # a restart slot freed, agents refused one are filtered
TAIL = "tail"  # the install's tail: a step ready, its agent's offer waits for the next round
OPTIONS = "options"  # new options: agents with work again may be filtered
OPERATOR = "operator"  # an operator's command (continue, restart) gave filtered agents work
REASONS = (SUBSCRIBED, WORK, SLOT_FREED, TAIL, OPTIONS, OPERATOR)


@dataclass
class Reviver:
    """Wanted when work appears on an agent our filters still hide.

    It keeps only the latest end of such a filter, so that wanting costs O(1) and a REVIVE
    that would come after every filter ran out by itself is never sent. A REVIVE lifts every
    filter set before it, so a filter set before the last REVIVE needs none.
    """

    until: float = -math.inf  # the latest filter end of an agent that has work
    last: float = -math.inf  # when the last REVIVE was decided (plan clock, seconds)
    sent: int = 0  # REVIVEs decided so far: a filter set at `sent == n` is lifted by the n+1st
    round_until: float = -math.inf  # a want of the next round's offers, moot after this
    # each reason wanted since the last REVIVE -> the latest `until` wanted for it (a
    # handful of keys: `REASONS`)
    reasons: dict[str, float] = field(default_factory=dict)

    def want(self, until: float, after: int | None = None, reason: str = WORK) -> None:
        """Work for an agent filtered until `until` (plan clock) by a filter set when `after`
        REVIVEs had been decided (None: always counts, e.g. no filter recorded); `reason`:
        why (`REASONS`)."""
        if after is None or after >= self.sent:
            self.until = max(self.until, until)
            self.reasons[reason] = max(self.reasons.get(reason, -math.inf), until)

    def want_round(self, until: float, after: int) -> None:
        """Work is ready on an agent that no filter hides: its resources come back at the
        next allocation round, by `until` (plan clock) at the latest, the unused part of its
        last ACCEPT, set when `after` REVIVEs had been decided. A REVIVE brings that round
        forward (`reviveOffers` allocates at once). The caller decides where a round's wait
        is worth a REVIVE (`Deploy`: where it lengthens the install). A REVIVE decided
        since that ACCEPT has offered those resources already: no want."""
        if after >= self.sent:
            self.round_until = max(self.round_until, until)
            self.reasons[TAIL] = max(self.reasons.get(TAIL, -math.inf), until)

    def opens_at(self, interval: float) -> float | None:
        """When (plan clock) a REVIVE wanted now may go: the end of the coalescing window of
        `interval` seconds; None when none is wanted."""
        if self.until == -math.inf and self.round_until == -math.inf:
            return None
        return self.last + interval

    def due(self, now: float, interval: float) -> list[Revive]:
        """[Revive(reasons)] when wanted and at least `interval` seconds (the coalescing
        window) after the last one; [] otherwise (a want stays until then, a want of a round
        until that round has come by itself). `reasons`: those of the wants still standing,
        in `REASONS` order."""
        if self.until <= now + REVIVE_WORTH_SECONDS:
            self.until = -math.inf
        if self.round_until <= now:
            self.round_until = -math.inf
        if self.until == -math.inf and self.round_until == -math.inf:
            self.reasons.clear()
            return []
        if now < self.opens_at(interval):  # the same sum: a tick at `opens_at` finds it open
            return []
        reasons = tuple(
            reason
            for reason in REASONS
            if self.reasons.get(reason, -math.inf)
            > now + (0.0 if reason == TAIL else REVIVE_WORTH_SECONDS)
        )
        self.until = self.round_until = -math.inf
        self.reasons.clear()
        self.last = now
        self.sent += 1
        return [Revive(reasons)]
