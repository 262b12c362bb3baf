"""The plan alone at 50,000 agents: the pure decision core fed synthetic offers and status
updates on a virtual clock, no sockets, no store, no threads (`calico-dcos bench --simulate`).

What stands in for Mesos, and why it is shaped so:

- One OFFERS event per allocation round holding every agent that is neither offered
  already nor filtered: Mesos' hierarchical allocator allocates all agents in one pass and
  hands each framework its whole share in one callback, which the master sends as one
  OFFERS event (apache/mesos src/master/allocator/mesos/hierarchical.cpp, `__allocate`;
  src/master/master.cpp, `Master::offer`). At the first round that is one event with an
  offer from every agent: the largest single decision batch the plan ever gets.
- An ACCEPT's or DECLINE's `refuse_seconds` filters the agent for that long; REVIVE clears
  every filter and allocates at once (hierarchical.cpp, `reviveOffers`: `reviveRoles` then
  `generateOffers()`, `allocate()` in older releases).
- Each task goes STARTING after half of `step_seconds`, RUNNING (healthy) after
  `step_seconds`, and a restarting step's one-shot FINISHED `restart_seconds` later: the
  bench's synthetic executor. Every update is one event, as on the subscription stream.
- The scheduler's tick every `tick_seconds`; implicit reconciliation answered with the
  latest state of every task, as the master does (src/master/master.cpp, `reconcile`).

Measured: the core's CPU time for the whole install (`time.process_time` around each call),
events per CPU second, the peak RSS growth per agent (the simulator's own bookkeeping
included: an upper bound), the longest single call and its size, and the virtual time to
converge (which the allocation interval and the restart budget decide, not the CPU).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from calico_dcos import plans
from calico_dcos.core import events as ev
from calico_dcos.core.deploy import Deploy
from calico_dcos.options import load_options

ARTIFACTS = "http://scheduler.marathon.l4lb.thisdcos.directory:8080"
RESTARTING = ("calico-docker", "calico-cni")


@dataclass
class SimSettings:
    """The bench's settings (`calico_dcos.bench.Settings`), on a virtual clock."""

    agents: int = 50_000
    restart_budget: str = "10%"
    allocation_interval: float = 1.0
    step_seconds: float = 0.1
    restart_seconds: float = 0.2
    tick_seconds: float = 0.5
    max_virtual_seconds: float = 3600.0


@dataclass
class SimResult:
    agents: int
    converged: bool
    virtual_seconds: float
    core_cpu_seconds: float
    events: int
    updates: int
    offers: int
    decisions: int
    largest_call_seconds: float
    largest_call_event: str
    largest_call_size: int  # offers in that event (1 for an update or a tick)
    largest_call_decisions: int
    rss_growth_bytes: int

    @property
    def events_per_cpu_second(self) -> float:
        return self.events / self.core_cpu_seconds if self.core_cpu_seconds else 0.0

    def as_dict(self) -> dict:
        return {
            **self.__dict__,
            "events_per_cpu_second": self.events_per_cpu_second,
            "rss_bytes_per_agent": self.rss_growth_bytes / self.agents,
        }


def offer(offer_id: str, agent_id: str, hostname: str) -> dict:
    """A Mesos v1 Offer of a private agent's unreserved resources (role `*`)."""

    def scalar(name: str, value: float) -> dict:
        return {
            "name": name,
            "type": "SCALAR",
            "scalar": {"value": value},
            "role": "*",
            "allocation_info": {"role": "*"},
        }

    return {
        "id": {"value": offer_id},
        "agent_id": {"value": agent_id},
        "hostname": hostname,
        "allocation_info": {"role": "*"},
        "resources": [scalar("cpus", 4.0), scalar("mem", 8192.0), scalar("disk", 10240.0)],
    }


class Simulation:
    """One install on `settings.agents` agents; `run()` returns the figures."""

    def __init__(self, settings: SimSettings) -> None:
        self.s = settings
        self.now = 0.0
        self.agents = [f"5f1c0000-sim-S{i}" for i in range(settings.agents)]
        self.hostnames = {aid: f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i, aid in
                          enumerate(self.agents)}  # fmt: skip
        self.offered: dict[str, str] = {}  # offer ID -> agent ID, outstanding
        self.agent_offer: set[str] = set()  # agents with an outstanding offer
        self.filtered: dict[str, float] = {}  # agent ID -> filtered until
        self.tasks: dict[str, tuple[str, str]] = {}  # task ID -> (agent ID, latest state)
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ids = itertools.count()
        self.cpu = 0.0
        self.events = self.updates = self.offers_sent = self.decisions = 0
        self.largest = (0.0, "", 0, 0)
        options = load_options(None, {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS":
                                      settings.restart_budget})  # fmt: skip
        self.core = Deploy(plans.config_from_options(options, ARTIFACTS), {}, None)

    # -- the virtual clock --------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), action))

    def run(self) -> SimResult:
        process = psutil.Process()
        rss_before = process.memory_info().rss
        self.call("subscribed", 1, lambda: self.core.on_subscribed("fw-sim", self.now))
        self.at(0.0, self.allocate)
        self.at(self.s.tick_seconds, self.tick)
        peak = rss_before
        while self._queue and not self.core.complete and self.now < self.s.max_virtual_seconds:
            self.now, _, action = heapq.heappop(self._queue)
            action()
            if self.events % 20_000 == 0:
                peak = max(peak, process.memory_info().rss)
        peak = max(peak, process.memory_info().rss)
        seconds, event, size, decisions = self.largest
        return SimResult(
            agents=self.s.agents,
            converged=self.core.complete,
            virtual_seconds=self.now,
            core_cpu_seconds=self.cpu,
            events=self.events,
            updates=self.updates,
            offers=self.offers_sent,
            decisions=self.decisions,
            largest_call_seconds=seconds,
            largest_call_event=event,
            largest_call_size=size,
            largest_call_decisions=decisions,
            rss_growth_bytes=peak - rss_before,
        )

    # -- events into the core -------------------------------------------------------------

    def call(self, event: str, size: int, handler: Callable[[], list[ev.Decision]]) -> None:
        started = time.process_time()
        decisions = handler()
        spent = time.process_time() - started
        self.cpu += spent
        self.events += 1
        self.decisions += len(decisions)
        if spent > self.largest[0]:
            self.largest = (spent, event, size, len(decisions))
        self.apply(decisions)

    def allocate(self, periodic: bool = True) -> None:
        """One allocation round: an offer from every agent not offered and not filtered."""
        offers = []
        for aid in self.agents:
            if aid in self.agent_offer or self.filtered.get(aid, 0.0) > self.now:
                continue
            offer_id = f"o{next(self._ids)}"
            self.offered[offer_id] = aid
            self.agent_offer.add(aid)
            offers.append(offer(offer_id, aid, self.hostnames[aid]))
        if offers:
            self.offers_sent += len(offers)
            self.call("offers", len(offers), lambda: self.core.on_offers(offers, self.now))
        if periodic:
            self.at(self.now + self.s.allocation_interval, self.allocate)

    def tick(self) -> None:
        self.call("tick", 1, lambda: self.core.on_tick(self.now))
        self.at(self.now + self.s.tick_seconds, self.tick)

    def update(self, task_id: str, state: str, **extra: object) -> None:
        agent_id, _ = self.tasks[task_id]
        self.tasks[task_id] = (agent_id, state)
        status = {
            "task_id": {"value": task_id},
            "agent_id": {"value": agent_id},
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "timestamp": self.now,
            **extra,
        }
        self.updates += 1
        self.call("update", 1, lambda: self.core.on_status(status, self.now))

    # -- decisions into the simulated Mesos -----------------------------------------------

    def apply(self, decisions: list[ev.Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, ev.Launch):
                self._answered(decision.offer_id, decision.refuse_seconds)
                self._launch(decision)
            elif isinstance(decision, ev.Decline):
                for offer_id in decision.offer_ids:
                    self._answered(offer_id, decision.refuse_seconds)
            elif isinstance(decision, ev.Revive):
                self.filtered.clear()
                self.at(self.now, lambda: self.allocate(periodic=False))
            elif isinstance(decision, ev.Reconcile):
                self._reconcile(decision)

    def _answered(self, offer_id: str, refuse_seconds: float) -> None:
        agent_id = self.offered.pop(offer_id, None)
        if agent_id is not None:
            self.agent_offer.discard(agent_id)
            self.filtered[agent_id] = self.now + refuse_seconds

    def _launch(self, launch: ev.Launch) -> None:
        task_id = launch.task_info["task_id"]["value"]
        name = launch.task_info.get("name", "")
        self.tasks[task_id] = (launch.agent_id, "TASK_STAGING")
        step = self.s.step_seconds
        self.at(self.now + step / 2, lambda: self.update(task_id, "TASK_STARTING"))
        self.at(self.now + step, lambda: self.update(task_id, "TASK_RUNNING", healthy=True))
        if name in RESTARTING:
            done = self.now + step + self.s.restart_seconds
            self.at(done, lambda: self.update(task_id, "TASK_FINISHED"))

    def _reconcile(self, call: ev.Reconcile) -> None:
        asked = [task_id for task_id, _ in call.tasks] or list(self.tasks)
        for task_id in asked:
            if task_id in self.tasks:
                state = self.tasks[task_id][1]
                self.at(self.now, lambda t=task_id, s=state: self.update(
                    t, s, reason="REASON_RECONCILIATION"))  # fmt: skip
