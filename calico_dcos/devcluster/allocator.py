"""The allocator: offer each agent's free resources the way Mesos' hierarchical allocator does.

Source: apache/mesos `src/master/allocator/mesos/hierarchical.cpp`
(`HierarchicalAllocatorProcess::__generateOffers`, `recoverResources`, `isFiltered`,
`deactivateFramework`, `reviveOffers`) and `sorter/drf/sorter.hpp` (`compareDRF`):

- Each round shuffles the connected agents (`std::random_shuffle`; here a `random.Random`
  that a seed makes reproducible). For each agent the roles are visited in DRF order (lowest
  dominant share first, then fewest allocations, then name), and in each role its frameworks
  in the same order. A framework gets what is `allocatableTo(role)`: the **unreserved**
  resources, which therefore go to whichever of its roles comes first, plus those reserved
  to that role. One offer per agent per role, all of a round in one OFFERS event per framework.
- Offers below the minimum allocatable resources (`cpus:0.01|mem:32`) are not made.
- A refusal (DECLINE, or the unused part of an ACCEPT) installs a filter holding exactly the
  refused resources, for `max(allocation_interval, refuse_seconds)`; it hides an offer only
  when the refused resources contain it (`RefusedOfferFilter::filter`). Resources recovered
  without filters (freed by a task, a rescinded offer) come back unfiltered; a framework's
  filters are cleared when it disconnects (`deactivateFramework`) and per role on REVIVE.
- REVIVE, a framework subscribing and an agent (re-)registering ask for an allocation at
  once (`generateOffers`), besides the periodic one.
- Scalars are added in Mesos' fixed point, thousandths (`convertToFixed` in
  src/common/values.cpp), so shares are exact and ties are ties.

What it costs (Python, where Mesos is C++): a round visits every agent in the shuffled order,
as `__generateOffers` does, but what it computes there is kept between rounds: the DRF sums
are a ledger updated as offers and tasks come and go (`Ledger`; rebuilt from scratch only
after a master failover or a framework's removal), the roles' and frameworks' sort orders
are computed again only after an offer changed a share, and an agent that offered nothing
is skipped until its free resources, the frameworks wanting offers, or their filters change,
or its earliest filter expires (`_Idle`); one with nothing free (all of it offered or used)
is skipped at once. Such an agent yields nothing in the skipped rounds
either, so the offers made, their order and the random draws are those of the full walk.
`CALICO_DEVCLUSTER_CHECKS=1` (set by the tests) checks both shortcuts against the full
computation on every round.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from calico_dcos.devcluster.framework import Framework, Offer, OfferFilter
from calico_dcos.devcluster.resources import Resources

if TYPE_CHECKING:
    from calico_dcos.devcluster.agent import Agent
    from calico_dcos.devcluster.master import Master

MIN_CPUS = 0.01
MIN_MEM = 32.0
SHARE_RESOURCES = ("cpus", "mem", "disk")

Pools = dict[str, Resources]

# Why an offer ended without ACCEPT or DECLINE (the timeline's `rescind` entries, `reason`).
OFFER_TIMEOUT = "OFFER_TIMEOUT"  # the master's --offer_timeout (`Master::offerTimeout`)
AGENT_DISCONNECTED = "AGENT_DISCONNECTED"  # its agent restarts (`Master::disconnect(Slave*)`)
AGENT_UNREACHABLE = "AGENT_UNREACHABLE"  # its agent is lost or removed (`markUnreachable`)
FRAMEWORK_FAILED_OVER = "FRAMEWORK_FAILED_OVER"  # a new SUBSCRIBE with the framework's ID
FRAMEWORK_DISCONNECTED = "FRAMEWORK_DISCONNECTED"  # its SUBSCRIBE stream closed
FRAMEWORK_REMOVED = "FRAMEWORK_REMOVED"  # TEARDOWN or the failover timeout
MASTER_FAILOVER = "MASTER_FAILOVER"  # a new leading master: old offers die with the old one
_ROLE_KEYS = ("role keys",)  # in a round's `order`: each role's DRF sort key (never a role)


def _has_free(agent: Agent) -> bool:
    """Some pool of the agent's free resources is not empty (`Resources.is_empty`)."""
    for pool in agent.available.values():
        for value in pool.scalars.values():
            if value > 0:
                return True
        for ranges in pool.ranges.values():
            if ranges:
                return True
    return False


def _cpus_mem(pools: Pools) -> tuple[float, float]:
    """The pools' cpus and mem added together (as `Resources.add` adds: to 3 decimals)."""
    cpus = mem = 0.0
    for pool in pools.values():
        scalars = pool.scalars
        cpus = round(cpus + scalars.get("cpus", 0.0), 3)
        mem = round(mem + scalars.get("mem", 0.0), 3)
    return cpus, mem


def allocatable(pool: Resources) -> bool:
    """Mesos offers only resources worth offering (`--min_allocatable_resources`)."""
    return pool.scalars.get("cpus", 0.0) >= MIN_CPUS or pool.scalars.get("mem", 0.0) >= MIN_MEM


def _allocatable_pools(pools: Pools) -> bool:
    """`allocatable` of the pools added together (as `Resources.add` adds: to 3 decimals)."""
    cpus = mem = 0.0
    for pool in pools.values():
        scalars = pool.scalars
        if "cpus" in scalars:
            cpus = round(cpus + scalars["cpus"], 3)
        if "mem" in scalars:
            mem = round(mem + scalars["mem"], 3)
    return cpus >= MIN_CPUS or mem >= MIN_MEM


Amounts = dict[str, int]  # scalar name -> thousandths


def _add_scalars(into: Amounts, pools: Pools, sign: int = 1) -> None:
    """Add (or with `sign` -1 take away) the pools' scalars, in thousandths."""
    for pool in pools.values():
        for name, value in pool.scalars.items():
            into[name] = into.get(name, 0) + sign * round(value * 1000)


def _nonzero(amounts: dict[Any, Amounts]) -> dict[Any, Amounts]:
    out = {}
    for key, values in amounts.items():
        kept = {name: value for name, value in values.items() if value}
        if kept:
            out[key] = kept
    return out


class Ledger:
    """Scalars offered or held by live tasks, per role and per (framework ID, role), kept up
    to date by the master as offers are made and recovered and tasks take and free resources
    (DRF's `allocated`, `DRFSorter`). `dirty`: some change was not followed one by one (a
    master failover, a framework removed); the next round rebuilds it from scratch."""

    def __init__(self) -> None:
        self.by_role: dict[str, Amounts] = {}
        self.by_framework: dict[tuple[str, str], Amounts] = {}
        self.dirty = True

    def add(self, framework_id: str, role: str, pools: Pools, sign: int = 1) -> None:
        if self.dirty or not pools:
            return
        by_role = self.by_role.setdefault(role, {})
        by_framework = self.by_framework.setdefault((framework_id, role), {})
        for pool in pools.values():
            for name, value in pool.scalars.items():
                amount = sign * round(value * 1000)
                by_role[name] = by_role.get(name, 0) + amount
                by_framework[name] = by_framework.get(name, 0) + amount


class OfferBook(dict):
    """The master's outstanding offers by ID; the ledger follows what enters and leaves."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def __setitem__(self, offer_id: str, offer: Offer) -> None:
        old = self.get(offer_id)
        if old is not None:
            self.ledger.add(old.framework_id, old.role, old.pools, -1)
        super().__setitem__(offer_id, offer)
        self.ledger.add(offer.framework_id, offer.role, offer.pools)

    def pop(self, offer_id: str, *default: Any) -> Any:
        offer = super().pop(offer_id, *default)
        if isinstance(offer, Offer):
            self.ledger.add(offer.framework_id, offer.role, offer.pools, -1)
        return offer

    def __delitem__(self, offer_id: str) -> None:
        self.pop(offer_id)

    def clear(self) -> None:
        super().clear()
        self.ledger.dirty = True


@dataclass
class _Idle:
    """An agent that offered nothing: while `epoch` (the frameworks wanting offers and their
    filter clearings) and its free resources stay as they were, and before `until` (its
    earliest live filter's expiry), it offers nothing again."""

    epoch: tuple
    available: Pools
    until: float


class Allocator:
    def __init__(
        self,
        master: Master,
        interval: float,
        offer_timeout: float | None,
        seed: int | None = None,
    ) -> None:
        """`seed`: makes the agents' shuffle, and so which role gets an agent's unreserved
        resources when shares tie, reproducible."""
        self.master = master
        self.interval = interval
        self.offer_timeout = offer_timeout
        self.random = random.Random(seed)
        self.rounds: deque[tuple[float, int]] = deque(maxlen=10_000)
        self.offers_made = 0
        self.counts: dict[str, int] = {}
        self.framework_counts: dict[tuple[str, str], int] = {}
        self._requested: asyncio.Handle | None = None
        self.ledger = Ledger()
        self._totals_key: tuple[str, ...] = ()
        self._totals: Amounts = {}
        self._idle: dict[str, _Idle] = {}
        self.skipped = 0  # agent visits skipped as idle (for profiles and tests)
        self.checks = os.environ.get("CALICO_DEVCLUSTER_CHECKS") == "1"

    async def run(self) -> None:
        """Allocate forever, one round per interval (a late round starts the next at once)."""
        while True:
            self._timed_round()
            await asyncio.sleep(max(0.0, self.interval - self.rounds[-1][0]))

    def _timed_round(self) -> None:
        started = time.monotonic()
        count = self.allocate()
        self.rounds.append((time.monotonic() - started, count))

    def request(self) -> None:
        """Allocate as soon as the loop is free (one round however many ask)."""
        if self._requested is None:
            self._requested = asyncio.get_running_loop().call_soon(self._requested_round)

    def _requested_round(self) -> None:
        self._requested = None
        self._timed_round()

    # One round --------------------------------------------------------------------------

    def allocate(self) -> int:
        now = time.monotonic()
        members = self._role_members()
        if not members:
            return 0
        agents = [
            a for a in self.master.agents.values()
            if a.connected and not a.removed and not a.unreachable and not a.recovering
        ]  # fmt: skip
        totals = self._agent_totals(agents)
        role_alloc, framework_alloc = self._ledger_allocations()
        epoch = tuple(
            (role, tuple((f.id, id(f), f.filters_cleared) for f in frameworks))
            for role, frameworks in members.items()
        )
        self.random.shuffle(agents)
        batches: dict[str, list[dict]] = {}
        order: dict[Any, list] = {}  # sort orders, forgotten when an offer changes a share
        for agent in agents:
            if not _has_free(agent):  # nothing to offer, whatever the frameworks and filters
                self.skipped += 1
                continue
            idle = self._idle.get(agent.agent_id)
            skip = (
                idle is not None
                and idle.until > now
                and idle.epoch == epoch
                and idle.available == agent.available
            )
            if skip and not self.checks:
                self.skipped += 1
                continue
            offered, until = self._allocate_agent(
                agent, members, role_alloc, framework_alloc, totals, order, batches, now
            )
            if skip and offered:
                raise AssertionError(f"agent {agent.agent_id} was taken as idle but offered")
            if offered:
                self._idle.pop(agent.agent_id, None)
            else:
                # The snapshot of the agent's free resources: the previous one while they
                # are still what it holds (cheaper to compare than to copy).
                if idle is not None and idle.available == agent.available:
                    available = idle.available
                else:
                    available = {r: p.copy() for r, p in agent.available.items()}
                self._idle[agent.agent_id] = _Idle(epoch, available, until)
        made = 0
        for framework_id, offers in batches.items():
            framework = self.master.frameworks[framework_id]
            framework.send({"type": "OFFERS", "offers": {"offers": offers}})
            made += len(offers)
        self.offers_made += made
        return made

    def _allocate_agent(
        self,
        agent: Agent,
        members: dict[str, list[Framework]],
        role_alloc: dict[str, Amounts],
        framework_alloc: dict[tuple, Amounts],
        totals: Amounts,
        order: dict[Any, list],
        batches: dict[str, list[dict]],
        now: float,
    ) -> tuple[bool, float]:
        """One agent's turn in a round: whether it was offered, and else until when (at
        the latest) it would offer nothing again (infinity when no filter is involved)."""
        offered, until = False, math.inf
        if not _has_free(agent):
            return offered, until
        for role in self._role_order(order, members, role_alloc, totals):
            if not _has_free(agent):
                break
            frameworks = order.get(role)
            if frameworks is None:
                frameworks = order[role] = self._sorted_frameworks(
                    role, members[role], framework_alloc, totals
                )
            for framework in frameworks:
                pools = self._allocatable_to(agent, role)
                if not pools:
                    break
                if not _allocatable_pools(pools):
                    continue
                expiry = framework.filtered_until(role, agent.agent_id, pools, now)
                if expiry:
                    until = min(until, expiry)
                    continue
                offer = self._make_offer(framework, agent, role, pools)
                batches.setdefault(framework.id, []).append(offer.json)
                offered = True
                # The role's share and count moved, and the framework's within the role;
                # no other role's or framework's did.
                order.pop(None, None)
                order.pop(role, None)
                order.get(_ROLE_KEYS, {}).pop(role, None)
        return offered, until

    def _role_order(
        self,
        order: dict[Any, list],
        members: dict[str, list[Framework]],
        role_alloc: dict[str, Amounts],
        totals: Amounts,
    ) -> list[str]:
        roles = order.get(None)
        if roles is None:
            # One role is its own order: no shares to work out. With more, only the key of
            # the role that was offered last is worked out again (`_allocate_agent`).
            if len(members) == 1:
                roles = order[None] = list(members)
            else:
                keys = order.setdefault(_ROLE_KEYS, {})
                for role in members:
                    if role not in keys:
                        keys[role] = self._role_key(role, role_alloc, totals)
                roles = order[None] = sorted(members, key=keys.__getitem__)
                if self.checks and roles != self._sorted_roles(members, role_alloc, totals):
                    raise AssertionError(f"allocator role order {roles} is stale")
        return roles

    def _sorted_frameworks(
        self,
        role: str,
        frameworks: list[Framework],
        framework_alloc: dict[tuple, Amounts],
        totals: Amounts,
    ) -> list[Framework]:
        """The role's frameworks in DRF order (`compareDRF` within the role)."""
        if len(frameworks) == 1:
            return frameworks
        return sorted(
            frameworks, key=lambda f: self._framework_key(f, role, framework_alloc, totals)
        )

    def _agent_totals(self, agents: list[Agent]) -> Amounts:
        """The agents' total scalars (DRF's denominators), computed again only when the set of
        agents changes (an agent's total never does)."""
        key = tuple(a.agent_id for a in agents)
        if key != self._totals_key:
            totals: Amounts = {}
            for agent in agents:
                _add_scalars(totals, agent.total)
            self._totals_key, self._totals = key, totals
        return self._totals

    def _ledger_allocations(self) -> tuple[dict[str, Amounts], dict[tuple, Amounts]]:
        ledger = self.ledger
        if ledger.dirty:
            ledger.by_role, ledger.by_framework = self._allocations()
            ledger.dirty = False
        elif self.checks:
            expected = tuple(_nonzero(a) for a in self._allocations())
            actual = (_nonzero(ledger.by_role), _nonzero(ledger.by_framework))
            if expected != actual:
                raise AssertionError(f"allocator ledger {actual} != recomputed {expected}")
        return ledger.by_role, ledger.by_framework

    def _role_members(self) -> dict[str, list[Framework]]:
        """Each role's frameworks that want offers for it (connected, not suppressed)."""
        members: dict[str, list[Framework]] = {}
        for framework in self.master.frameworks.values():
            if not framework.connected:
                continue
            for role in framework.roles:
                if role not in framework.suppressed:
                    members.setdefault(role, []).append(framework)
        return members

    def _allocations(self) -> tuple[dict[str, Amounts], dict[tuple, Amounts]]:
        """Scalars offered or used by live tasks, per role and per (framework, role), from
        scratch (the ledger's reference)."""
        by_role: dict[str, Amounts] = {}
        by_framework: dict[tuple, Amounts] = {}
        for offer in self.master.offers.values():
            _add_scalars(by_role.setdefault(offer.role, {}), offer.pools)
            _add_scalars(by_framework.setdefault((offer.framework_id, offer.role), {}), offer.pools)
        for framework in self.master.frameworks.values():
            for task in framework.tasks.values():
                if task.pools:
                    _add_scalars(by_role.setdefault(task.role, {}), task.pools)
                    key = (framework.id, task.role)
                    _add_scalars(by_framework.setdefault(key, {}), task.pools)
        return by_role, by_framework

    @staticmethod
    def _share(allocated: Amounts, totals: Amounts) -> float:
        """DRF's dominant share (`DRFSorter::calculateShare`), weight 1."""
        shares = [
            allocated.get(name, 0) / totals[name]
            for name in SHARE_RESOURCES
            if totals.get(name, 0) > 0
        ]
        return max(shares, default=0.0)

    def _sorted_roles(
        self,
        members: dict[str, list[Framework]],
        role_alloc: dict[str, Amounts],
        totals: Amounts,
    ) -> list[str]:
        """`compareDRF`: share, then allocation count, then name."""
        return sorted(members, key=lambda r: self._role_key(r, role_alloc, totals))

    def _role_key(self, role: str, role_alloc: dict[str, Amounts], totals: Amounts) -> tuple:
        return (self._share(role_alloc.get(role, {}), totals), self.counts.get(role, 0), role)

    def _framework_key(
        self,
        framework: Framework,
        role: str,
        framework_alloc: dict[tuple, Amounts],
        totals: Amounts,
    ) -> tuple:
        key = (framework.id, role)
        share = self._share(framework_alloc.get(key, {}), totals)
        return (share, self.framework_counts.get(key, 0), framework.id)

    @staticmethod
    def _allocatable_to(agent: Agent, role: str) -> Pools:
        """`Resources::allocatableTo(role)`: unreserved, and reserved to `role`."""
        return {
            reserved: pool
            for reserved, pool in agent.available.items()
            if (reserved == "*" or reserved == role) and not pool.is_empty()
        }

    def _make_offer(self, framework: Framework, agent: Agent, role: str, pools: Pools) -> Offer:
        offer_id = self.master.new_offer_id()
        for reserved in pools:
            agent.available[reserved] = Resources()
        self.counts[role] = self.counts.get(role, 0) + 1
        key = (framework.id, role)
        self.framework_counts[key] = self.framework_counts.get(key, 0) + 1
        refinement = "RESERVATION_REFINEMENT" in framework.capabilities
        resources = []
        for reserved, pool in pools.items():
            resources += pool.to_json(reserved, role, refinement)
        offer_json = {
            "id": {"value": offer_id},
            "framework_id": {"value": framework.id},
            "agent_id": {"value": agent.agent_id},
            "hostname": agent.hostname,
            "url": {
                "scheme": "http",
                "address": {"hostname": agent.hostname, "ip": agent.ip, "port": agent.port},
                "path": "/slave(1)",
            },
            "resources": resources,
            "allocation_info": {"role": role},
        }
        if agent.attributes:
            offer_json["attributes"] = agent.attributes
        offer = Offer(offer_id, framework.id, agent.agent_id, role, pools, offer_json)
        framework.offers[offer_id] = offer
        self.master.offers[offer_id] = offer
        cpus, mem = _cpus_mem(pools)
        self.master.record(
            "offer", agent_id=agent.agent_id, hostname=agent.hostname, offer_id=offer_id,
            role=role, framework_id=framework.id, cpus=cpus, mem=mem,
        )  # fmt: skip
        if self.offer_timeout:
            loop = asyncio.get_running_loop()
            loop.call_later(self.offer_timeout, self.rescind, offer_id, OFFER_TIMEOUT)
        return offer

    # Resources coming back --------------------------------------------------------------

    def recover(self, offer_id: str, refuse_seconds: float | None = None) -> Offer | None:
        """Return an offer's resources to its agent; with `refuse_seconds` > 0, filter
        exactly these resources for `max(allocation_interval, refuse_seconds)`."""
        offer = self.master.offers.pop(offer_id, None)
        if offer is None:
            return None
        framework = self.master.frameworks.get(offer.framework_id)
        # The offer's pools are its own (`_make_offer` took them out of the agent's free
        # resources, `accept` built new ones for the unused part) and are not changed after
        # it is gone: the filter can hold them as they are.
        refused = {r: p for r, p in offer.pools.items() if not p.is_empty()}
        if framework:
            framework.offers.pop(offer_id, None)
            if refuse_seconds and refuse_seconds > 0 and refused:
                expiry = time.monotonic() + max(self.interval, refuse_seconds)
                framework.add_filter(offer.role, offer.agent_id, OfferFilter(refused, expiry))
        agent = self.master.agents.get(offer.agent_id)
        if agent and not agent.removed:
            for reserved, pool in offer.pools.items():
                agent.available.setdefault(reserved, Resources()).add(pool)
        return offer

    def rescind(self, offer_id: str, reason: str) -> None:
        """Take an offer back and tell its framework (RESCIND); no filter. `reason` goes to
        the timeline's `rescind` entry (`OFFER_TIMEOUT`, `AGENT_DISCONNECTED`, …): Mesos'
        RESCIND event itself carries no reason. An offer already accepted or declined is
        left alone (an offer timeout that fires late)."""
        offer = self.recover(offer_id)
        if offer is None:
            return
        framework = self.master.frameworks.get(offer.framework_id)
        if framework:
            framework.send({"type": "RESCIND", "rescind": {"offer_id": {"value": offer_id}}})
        self.record_end(offer, reason, framework is not None)

    def rescind_agent(self, agent_id: str, reason: str) -> None:
        for offer_id in [o.offer_id for o in self.master.offers.values() if o.agent_id == agent_id]:
            self.rescind(offer_id, reason)

    def drop_framework_offers(self, framework: Framework, reason: str) -> None:
        """Discard a framework's offers, no RESCIND reaching it (apache/mesos
        src/master/master.cpp: `_failoverFramework` and `removeFramework` discard them;
        `deactivate(framework, true)` after a disconnection rescinds them on a stream that is
        gone); the timeline still says they ended (`rescind`, `sent` false)."""
        for offer_id in list(framework.offers):
            offer = self.recover(offer_id)
            if offer is not None:
                self.record_end(offer, reason, False)

    def record_end(self, offer: Offer, reason: str, sent: bool) -> None:
        """The timeline's `rescind` entry: the offer is gone without ACCEPT or DECLINE;
        `sent`: a RESCIND event went to the framework."""
        self.master.record(
            "rescind", agent_id=offer.agent_id, offer_id=offer.offer_id,
            framework_id=offer.framework_id, reason=reason, sent=sent,
        )  # fmt: skip

    def stats(self) -> dict:
        durations = [d for d, _ in self.rounds]
        return {
            "rounds": len(durations),
            "offers_made": self.offers_made,
            "max_round_seconds": max(durations, default=0.0),
            "mean_round_seconds": sum(durations) / len(durations) if durations else 0.0,
            "late_rounds": sum(1 for d in durations if d > self.interval),
            "interval": self.interval,
        }
