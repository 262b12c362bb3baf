"""Frameworks known to the embedded master, and their event streams (subscriptions)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from calico_dcos.devcluster.resources import Resources, pools_contain


class Subscription:
    """One SUBSCRIBE stream: events queue here and the HTTP handler writes them out."""

    def __init__(self, framework_id: str, heartbeat_interval: float, first: dict | None) -> None:
        self.framework_id = framework_id
        self.stream_id = str(uuid.uuid4())
        self.queue: asyncio.Queue[dict | None] = asyncio.Queue()
        self.closed = False
        self.silenced = False
        if first is not None:
            self.queue.put_nowait(first)
            self.queue.put_nowait({"type": "HEARTBEAT"})
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(heartbeat_interval))

    async def _beat(self, interval: float) -> None:
        """A HEARTBEAT every `interval` seconds after the immediate one."""
        while not self.closed:
            await asyncio.sleep(interval)
            self.send({"type": "HEARTBEAT"})

    def send(self, event: dict) -> None:
        if not self.closed and not self.silenced:
            self.queue.put_nowait(event)

    def close(self, error: str | None = None) -> None:
        """End the stream, after an ERROR event when `error` is given."""
        if self.closed:
            return
        if error is not None:
            self.queue.put_nowait({"type": "ERROR", "error": {"message": error}})
        self.closed = True
        self._heartbeat.cancel()
        self.queue.put_nowait(None)


@dataclass
class Task:
    """The master's view of a task."""

    info: dict
    framework_id: str
    agent_id: str
    role: str
    pools: dict[str, Resources]
    state: str = "TASK_STAGING"
    status_update_state: str | None = None
    latest: dict | None = None
    statuses: list[dict] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return self.info["task_id"]["value"]


@dataclass
class OfferFilter:
    """`RefusedOfferFilter` (apache/mesos `src/master/allocator/mesos/hierarchical.cpp`):
    the refused resources by reservation role, and when the filter ends (monotonic)."""

    refused: dict[str, Resources]
    expiry: float


@dataclass
class Offer:
    offer_id: str
    framework_id: str
    agent_id: str
    role: str
    pools: dict[str, Resources]
    json: dict
    created: float = field(default_factory=time.monotonic)


class Framework:
    """A framework: its FrameworkInfo, live subscription, tasks, offers and filters."""

    def __init__(self, framework_id: str, info: dict, principal: str | None) -> None:
        self.id = framework_id
        self.principal = principal
        self.info: dict = {}
        self.update_info(info)
        self.subscription: Subscription | None = None
        self.tasks: dict[str, Task] = {}
        self.completed_tasks: deque[Task] = deque(maxlen=1000)
        # IDs of tasks that went TASK_UNREACHABLE (the master's `unreachableTasks` cache,
        # `--max_unreachable_tasks_per_framework`, default 1000): a LAUNCH may not reuse them.
        self.unreachable_tasks: dict[str, Task] = {}
        self.offers: dict[str, Offer] = {}
        self.filters: dict[tuple[str, str], list[OfferFilter]] = {}  # (role, agent) ->
        # Counts the times filters were removed before they expired (REVIVE, disconnection):
        # the allocator's note that an agent offers nothing holds only while it is unchanged.
        self.filters_cleared = 0
        self.suppressed: set[str] = set()
        self.registered_time = time.time()
        self.unregistered_time = 0.0
        self.failover_timer: asyncio.TimerHandle | None = None

    def update_info(self, info: dict) -> None:
        """Take a (re-)subscribe's FrameworkInfo; `user` and `checkpoint` never change."""
        keep = {k: self.info[k] for k in ("user", "checkpoint") if k in self.info}
        self.info = {**info, **keep, "id": {"value": self.id}}
        if self.principal:
            self.info["principal"] = self.principal
        self._capabilities = frozenset(c.get("type", "") for c in self.info.get("capabilities", []))

    @property
    def roles(self) -> list[str]:
        if "MULTI_ROLE" in self.capabilities:
            return list(self.info.get("roles", []))
        return [self.info.get("role", "*")]

    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    @property
    def checkpoint(self) -> bool:
        return bool(self.info.get("checkpoint", False))

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities

    @property
    def connected(self) -> bool:
        return self.subscription is not None

    @property
    def failover_timeout(self) -> float:
        return float(self.info.get("failover_timeout", 0.0))

    def send(self, event: dict) -> None:
        if self.subscription:
            self.subscription.send(event)

    def filtered(self, role: str, agent_id: str, pools: dict[str, Resources], now: float) -> bool:
        """True when an unexpired filter of `role` on the agent holds all of `pools`
        (`RefusedOfferFilter::filter`: the refused resources are a superset)."""
        return self.filtered_until(role, agent_id, pools, now) > 0.0

    def filtered_until(
        self, role: str, agent_id: str, pools: dict[str, Resources], now: float
    ) -> float:
        """0.0 when no unexpired filter of `role` on the agent holds all of `pools`; else the
        earliest expiry (monotonic seconds) among that key's live filters, before which the
        answer cannot change unless filters are cleared."""
        filters = self.filters.get((role, agent_id))
        if not filters:
            return 0.0
        live = [f for f in filters if f.expiry > now]
        if len(live) != len(filters):
            if live:
                self.filters[(role, agent_id)] = live
            else:
                del self.filters[(role, agent_id)]
        if any(pools_contain(f.refused, pools) for f in live):
            return min(f.expiry for f in live)
        return 0.0

    def add_filter(self, role: str, agent_id: str, offer_filter: OfferFilter) -> None:
        self.filters.setdefault((role, agent_id), []).append(offer_filter)

    def revive(self, roles: list[str]) -> None:
        """Unsuppress `roles` and clear their filters."""
        self.suppressed.difference_update(roles)
        for key in [k for k in self.filters if k[0] in roles]:
            del self.filters[key]
        self.filters_cleared += 1

    def remove_agent_filters(self, agent_id: str) -> None:
        """The agent's filters go, of every role (`HierarchicalAllocatorProcess::removeSlave`
        calls `removeFilters(slaveId)`: apache/mesos src/master/allocator/mesos/
        hierarchical.cpp), so an agent that comes back is offered unfiltered."""
        for key in [k for k in self.filters if k[1] == agent_id]:
            del self.filters[key]
        self.filters_cleared += 1

    def clear_filters(self) -> None:
        """All filters go (`HierarchicalAllocatorProcess::deactivateFramework`)."""
        self.filters.clear()
        self.filters_cleared += 1
