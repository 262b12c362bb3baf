"""The restart budget: how many agents may restart Docker or themselves at once, and who
holds a slot now. The one place both live.

`rollout.max_concurrent_restarts` is a count (`2`) or a percentage of the agents that
should get Calico (`"10%"`, rounded down); the limit is never below 1. `RestartBudget.parse`
is the only reading of that rule (options, the benchmark and its command use it).

`Slots` holds the slots. Its invariant, asserted on every admission:

    An agent is admitted to `holders` (a step of it that restarts Docker or the agent is
    launched, or a running daemon of it is killed to be replaced) only while it already
    holds a slot or fewer than `limit` agents hold one.

An agent stays a holder until the step that took the slot is done, has ended and must wait
(backoff, interrupt), or the agent is gone. Holders are never revoked: when the limit
shrinks (agents leave, options change) or a restarted scheduler finds more restarts in
flight in its records than the limit, `holders` may exceed `limit` until enough end, and
no agent is admitted meanwhile.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartBudget:
    """`rollout.max_concurrent_restarts`, parsed: a `count`, or a `percent` of the agents."""

    count: int = 1
    percent: int | None = None

    @classmethod
    def parse(cls, value: int | str | RestartBudget) -> RestartBudget:
        """`2`, `"2"` or `"10%"` (1–100). Raises ValueError naming what is wrong."""
        if isinstance(value, RestartBudget):
            return value
        text = str(value).strip()
        if text.endswith("%"):
            number = text[:-1]
            if number.isdigit() and 0 < int(number) <= 100:
                return cls(count=0, percent=int(number))
            raise ValueError(f"expected a percentage from 1% to 100%, not {value!r}")
        if text.isdigit() and int(text) > 0:
            return cls(count=int(text))
        raise ValueError(f"expected a count (1) or a percentage (10%), not {value!r}")

    def limit(self, agents: int) -> int:
        """Agents that may restart at once among `agents`: rounded down, at least 1."""
        if self.percent is not None:
            return max(1, self.percent * agents // 100)
        return max(1, self.count)

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


@dataclass
class Slots:
    """Who holds a restart slot, and who was refused one (to be offered again when one
    frees). See the module's invariant. O(1) per call."""

    budget: RestartBudget
    holders: set[str] = field(default_factory=set)
    # refused an offer for want of a slot -> that refusal's filter: (REVIVEs decided before
    # it, until, plan clock); see `Reviver`
    waiters: dict[str, tuple[int, float]] = field(default_factory=dict)
    # the same filters, earliest end first; an entry is stale once its agent no longer
    # waits or was refused again since (`waiters` has another filter for it)
    _ends: list[tuple[float, int, str]] = field(default_factory=list)
    # each waiter's place in line: a ticket, given at its first refusal and kept while it
    # waits (a waiter refused again keeps its place); tickets given so far
    _tickets: dict[str, int] = field(default_factory=dict)
    _issued: int = 0
    # when each holder was admitted (plan clock), and how long a slot is held, on average of
    # the recent ones (None until one ends): how fast slots free (`Deploy._slot_pool`)
    since: dict[str, float] = field(default_factory=dict)
    held_seconds: float | None = None
    # launch to TASK_RUNNING of any step, the same kind of average: a slot is held at least
    # this long, the best guess of `held_seconds` before a slot has ended
    step_seconds: float | None = None

    def limit(self, agents: int) -> int:
        """The budget's slots among `agents`."""
        return self.budget.limit(agents)

    def free_for(self, agent_id: str, agents: int) -> bool:
        """The agent holds a slot already, or one is free."""
        return agent_id in self.holders or len(self.holders) < self.limit(agents)

    def admit(self, agent_id: str, agents: int, now: float | None = None) -> None:
        """Give `agent_id` a slot for a launch or a replacement it is about to send (at
        `now`, plan clock, if known: the slot's time is measured from it)."""
        assert self.free_for(agent_id, agents), (
            f"restart budget exceeded: {sorted(self.holders)} hold {self.limit(agents)} slots"
        )
        if agent_id not in self.holders and now is not None:
            self.since[agent_id] = now
        self.holders.add(agent_id)
        self.not_waiting(agent_id)

    def launched_in(self, seconds: float) -> None:
        """A task of ours went from launch to TASK_RUNNING in `seconds`."""
        last = self.step_seconds
        took = max(0.0, seconds)
        self.step_seconds = took if last is None else 0.8 * last + 0.2 * took

    def expected_hold(self) -> float | None:
        """How long the next slot will likely be held: `held_seconds`, or before any slot
        ended `step_seconds`; None before anything was seen."""
        return self.held_seconds if self.held_seconds is not None else self.step_seconds

    def refused(self, agent_id: str, after: int, until: float) -> None:
        """An offer of the agent was declined for want of a slot, filtered until `until`
        by a filter set after `after` REVIVEs (`calico_dcos.core.revive.Reviver`).
        O(log waiters)."""
        if agent_id not in self._tickets:
            self._tickets[agent_id] = self._issued
            self._issued += 1
        self.waiters[agent_id] = (after, until)
        heapq.heappush(self._ends, (until, after, agent_id))

    def not_waiting(self, agent_id: str) -> None:
        """The agent no longer waits for a slot (its next step needs none, or it is done)."""
        self.waiters.pop(agent_id, None)
        self._tickets.pop(agent_id, None)

    def ahead_of(self, agent_id: str) -> int:
        """How many waiters are ahead of the agent in line: its place, if it waits already
        (taking those that stopped waiting to have been the first in line), else all of
        them (it joins at the end). O(1). An agent refused again keeps its place: counting
        every waiter as ahead of it (until 2026-11-29) filtered the first in line as long
        as the last, so the held offers ran out with every waiter still hidden for tens of
        seconds, and each freed slot wanted a REVIVE (`freed_filter`)."""
        ticket = self._tickets.get(agent_id)
        if ticket is None:
            return len(self.waiters)
        gone = self._issued - len(self.waiters)  # tickets that no longer wait
        return min(len(self.waiters) - 1, max(0, ticket - gone))

    def sync(self, agent_id: str, holds: bool, now: float | None = None) -> bool:
        """Record what the agent's state says (it holds a slot or not); True if that freed a
        slot. Holding without `admit` happens only for state read back from records or a
        task adopted after a restart: what is already running keeps its slot. A slot freed
        at `now` after an `admit` with a time counts in `held_seconds` (a moving average
        weighing the latest fifth)."""
        held = agent_id in self.holders
        if holds:
            self.holders.add(agent_id)
        else:
            self.holders.discard(agent_id)
            start = self.since.pop(agent_id, None)
            if held and start is not None and now is not None:
                took = max(0.0, now - start)
                last = self.held_seconds
                self.held_seconds = took if last is None else 0.8 * last + 0.2 * took
        return held and not holds

    def freed_filter(self) -> tuple[int, float] | None:
        """After a slot frees: the filter that hides the first of the refused agents to be
        offered again, (REVIVEs decided before it, until), the earliest end among them; None
        when none waits. A REVIVE is worth it only if even that one is hidden for long
        (`Reviver.want`: not for a filter a REVIVE lifted already, nor one that ends within
        about an allocation round): each REVIVE offers every agent again, and one wanted for
        the last in line (until 2026-11-29: the latest refusal's filter) came while the next
        waiters' filters were about to end, as `_slot_refuse_seconds` times them (at their
        turn), so it bought little and cost an offer of every agent. Amortised
        O(log waiters): stale entries go as they reach the front."""
        ends = self._ends
        if not self.waiters:
            ends.clear()
            return None
        while ends:
            until, after, agent_id = ends[0]
            if self.waiters.get(agent_id) == (after, until):
                return after, until
            heapq.heappop(ends)
        return None
