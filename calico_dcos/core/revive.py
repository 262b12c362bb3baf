"""REVIVE, rate-limited: offers come back when work appears on an agent our filters hide.

Every DECLINE and ACCEPT carries a filter (`refuse_seconds`) during which Mesos does not
offer that agent's resources again; a REVIVE lifts every filter of the framework and makes
Mesos offer every agent anew (apache/mesos src/master/allocator/mesos/hierarchical.cpp,
`reviveOffers`), so the core sends one only when it is worth it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from calico_dcos.core.events import Revive

# A REVIVE makes Mesos offer every agent again, done ones included: not worth it for a
# filter that runs out within about one allocation interval (Mesos' default is 1 s).
REVIVE_WORTH_SECONDS = 1.0


@dataclass
class Reviver:
    """Wanted when work appears on an agent our filters still hide.

    It keeps only the latest end of such a filter, so that wanting costs O(1) and a REVIVE
    that would come after every filter ran out by itself is never sent. A REVIVE lifts every
    filter set before it, so a filter older than the last REVIVE needs none.
    """

    until: float = -math.inf  # the latest filter end of an agent that has work
    last: float = -math.inf

    def want(self, until: float, since: float = math.inf) -> None:
        """Work for an agent filtered from `since` to `until` (always, by default)."""
        if since > self.last:
            self.until = max(self.until, until)

    def due(self, now: float, interval: float) -> list[Revive]:
        """[Revive()] when wanted and at least `interval` seconds after the last one."""
        if self.until <= now + REVIVE_WORTH_SECONDS:
            self.until = -math.inf
            return []
        if now - self.last < interval:
            return []
        self.until, self.last = -math.inf, now
        return [Revive()]
