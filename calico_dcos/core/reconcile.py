"""Reconciliation: after (re)subscribing, ask Mesos about every task the records think
alive, with backoff until each is answered; then implicitly, now and periodically.

Mesos answers an explicit reconciliation with the latest state of each task it knows, and
TASK_LOST/TASK_UNKNOWN (PARTITION_AWARE) for one it does not; an implicit one (no tasks)
with every task of the framework it knows (apache/mesos docs/reconciliation.md). Until the
explicit round is answered the plan launches nothing, so no step runs twice. An explicit
round goes in calls of at most `events.MAX_IDS_PER_CALL` tasks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from calico_dcos.core.events import Decision, Reconcile, in_calls


class Reconciler:
    """Explicit rounds with backoff (at most `max_rounds`), then implicit every `period`."""

    def __init__(
        self, backoff_seconds: float, max_backoff_seconds: float, max_rounds: int, period: float
    ) -> None:
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_rounds = max_rounds
        self.period = period
        self.pending: dict[str, str] = {}  # task_id -> agent_id, not answered yet
        self.explicit = False  # an explicit round is waiting for answers
        self._round = 0
        self._retry_at = 0.0
        self._implicit_at = math.inf

    def start(self, tasks: Iterable[tuple[str, str]], now: float, out: list[Decision]) -> bool:
        """Ask about `(task_id, agent_id)`; True if there was anything to ask (else the
        caller finishes at once)."""
        self.pending = dict(tasks)
        self._round = 0
        if not self.pending:
            return False
        self.explicit = True
        out.extend(Reconcile(tasks) for tasks in in_calls(self.pending.items()))
        self._retry_at = now + self.backoff_seconds
        return True

    def answered(self, task_id: str) -> bool:
        """A status of `task_id` came; True when that was the last one awaited."""
        self.pending.pop(task_id, None)
        return self.explicit and not self.pending

    def finish(self, now: float, out: list[Decision]) -> None:
        """Explicit round over (answered, or given up): one implicit round, then periodic."""
        self.explicit = False
        self.pending = {}
        out.append(Reconcile(()))
        self._implicit_at = now + self.period

    def forget(self) -> None:
        """The framework is gone: nothing to wait for."""
        self.explicit = False
        self.pending = {}

    def tick(self, now: float, out: list[Decision]) -> bool:
        """Retry or periodic round when due; True when the explicit round was given up
        (the caller then finishes as if answered)."""
        if self.explicit and now >= self._retry_at:
            self._round += 1
            if self._round >= self.max_rounds:
                return True
            out.extend(Reconcile(tasks) for tasks in in_calls(self.pending.items()))
            delay = self.backoff_seconds * 2**self._round
            self._retry_at = now + min(delay, self.max_backoff_seconds)
        elif not self.explicit and now >= self._implicit_at:
            out.append(Reconcile(()))
            self._implicit_at = now + self.period
        return False
