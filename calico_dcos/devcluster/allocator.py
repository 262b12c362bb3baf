"""The allocator: every allocation interval, offer each agent's free resources.

One offer per agent per role, in one OFFERS event per framework per round, as the real
hierarchical allocator batches them. A round walks the agents once per framework, and the
filters and offers are dictionaries, so a round costs O(agents x frameworks).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from calico_dcos.devcluster.framework import Framework, Offer
from calico_dcos.devcluster.resources import Resources

if TYPE_CHECKING:
    from calico_dcos.devcluster.agent import Agent
    from calico_dcos.devcluster.master import Master

MIN_CPUS = 0.01
MIN_MEM = 32.0


def allocatable(pool: Resources) -> bool:
    """Mesos offers only resources worth offering (the allocator's minimums)."""
    return pool.scalars.get("cpus", 0.0) >= MIN_CPUS or pool.scalars.get("mem", 0.0) >= MIN_MEM


class Allocator:
    def __init__(self, master: Master, interval: float, offer_timeout: float | None) -> None:
        self.master = master
        self.interval = interval
        self.offer_timeout = offer_timeout
        self.rounds: deque[tuple[float, int]] = deque(maxlen=10_000)
        self.offers_made = 0

    async def run(self) -> None:
        """Allocate forever, one round per interval (a late round starts the next at once)."""
        while True:
            started = time.monotonic()
            count = self.allocate()
            elapsed = time.monotonic() - started
            self.rounds.append((elapsed, count))
            await asyncio.sleep(max(0.0, self.interval - elapsed))

    def allocate(self) -> int:
        now = time.monotonic()
        made = 0
        for framework in list(self.master.frameworks.values()):
            if framework.connected:
                made += self._allocate_to(framework, now)
        self.offers_made += made
        return made

    def _allocate_to(self, framework: Framework, now: float) -> int:
        roles = [r for r in framework.roles if r not in framework.suppressed]
        if not roles:
            return 0
        offers = []
        for agent in self.master.agents.values():
            if not agent.connected:
                continue
            for role, pools in self._offerable(agent, roles).items():
                if not framework.filtered(role, agent.agent_id, now):
                    offers.append(self._make_offer(framework, agent, role, pools))
        if offers:
            framework.send({"type": "OFFERS", "offers": {"offers": [o.json for o in offers]}})
        return len(offers)

    @staticmethod
    def _offerable(agent: Agent, roles: list[str]) -> dict[str, dict[str, Resources]]:
        """Free pools by the role they would be allocated to: reserved ones to their role,
        unreserved ones to `*` if the framework has it, else to its first role."""
        result: dict[str, dict[str, Resources]] = {}
        for reserved, pool in agent.available.items():
            if not allocatable(pool):
                continue
            if reserved == "*":
                target = "*" if "*" in roles else roles[0]
            elif reserved in roles:
                target = reserved
            else:
                continue
            result.setdefault(target, {})[reserved] = pool
        return result

    def _make_offer(
        self, framework: Framework, agent: Agent, role: str, pools: dict[str, Resources]
    ) -> Offer:
        offer_id = self.master.new_offer_id()
        for reserved in pools:
            agent.available[reserved] = Resources()
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
        self.master.record(
            "offer", agent_id=agent.agent_id, hostname=agent.hostname, offer_id=offer_id, role=role
        )
        if self.offer_timeout:
            loop = asyncio.get_running_loop()
            loop.call_later(self.offer_timeout, self.rescind, offer_id)
        return offer

    def recover(self, offer_id: str, refuse_seconds: float = 0.0) -> Offer | None:
        """Return an offer's resources to its agent, filtering them for `refuse_seconds`."""
        offer = self.master.offers.pop(offer_id, None)
        if offer is None:
            return None
        framework = self.master.frameworks.get(offer.framework_id)
        if framework:
            framework.offers.pop(offer_id, None)
            if refuse_seconds > 0:
                expiry = time.monotonic() + refuse_seconds
                framework.filters[(offer.role, offer.agent_id)] = expiry
        agent = self.master.agents.get(offer.agent_id)
        if agent and not agent.removed:
            for reserved, pool in offer.pools.items():
                agent.available.setdefault(reserved, Resources()).add(pool)
        return offer

    def rescind(self, offer_id: str) -> None:
        """Take an offer back and tell its framework (RESCIND)."""
        offer = self.recover(offer_id)
        framework = offer and self.master.frameworks.get(offer.framework_id)
        if framework:
            framework.send({"type": "RESCIND", "rescind": {"offer_id": {"value": offer_id}}})

    def rescind_agent(self, agent_id: str) -> None:
        for offer_id in [o.offer_id for o in self.master.offers.values() if o.agent_id == agent_id]:
            self.rescind(offer_id)

    def drop_framework_offers(self, framework: Framework) -> None:
        """Discard a framework's offers without RESCIND (failover, disconnection)."""
        for offer_id in list(framework.offers):
            self.recover(offer_id)

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
