"""The plan alone at 50,000 agents: the pure decision core fed synthetic offers and status
updates on a virtual clock, no sockets, no store, no threads (`calico-dcos bench --simulate`).

What stands in for Mesos, and why it is shaped so:

- One OFFERS event per allocation round holding every agent that is neither offered
  already nor filtered: Mesos' hierarchical allocator allocates all agents in one pass and
  hands each framework its whole share in one callback, which the master sends as one
  OFFERS event (apache/mesos src/master/allocator/mesos/hierarchical.cpp, `__allocate`;
  src/master/master.cpp, `Master::offer`). At the first round that is one event with an
  offer from every agent: the largest single decision batch the plan ever gets. The master
  allocates when it adds the framework (`addFramework` calls `generateOffers()`); its
  periodic rounds keep their own phase, taken as half an interval after the subscription.
- Two roles, as the framework subscribes with (`*` and `slave_public`, MULTI_ROLE): a
  private agent's unreserved resources may be offered under either, a public agent's are
  reserved to `slave_public` (DC/OS starts public agents with
  MESOS_DEFAULT_ROLE=slave_public) and offered under that role only
  (`Resources::allocatableTo`). For each agent the roles are tried in DRF order (the lower
  dominant share of what is offered or used under it first, then fewer offers made, then
  the name: `DRFSorter`, `compareDRF`), and its resources go to the first role that does
  not filter them. A filter is the role's (`isFiltered(framework, role, slave, …)` looks
  in `offerFilters[role][slave]`, where `recoverResources` puts a refusal under the role
  of the refused offer): an agent declined under one role is offered under the other at
  the next round. The bench's devcluster allocates so too; this is ~22% of its offers.
- Each agent has `AGENT_CPUS` and `AGENT_MEM`; a task holds its resources until it ends (a
  one-shot's come back at FINISHED, a daemon's stay), an outstanding offer holds the rest.
- A refusal (DECLINE, or the unused part of an ACCEPT) filters exactly the refused
  resources, for the offer's role, for `max(allocation_interval, refuse_seconds)`, none at
  all for 0; the filter hides the agent only while the refused resources contain what it
  could offer, so a one-shot's freed resources come back at the next round unfiltered
  (hierarchical.cpp, `recoverResources`, `RefusedOfferFilter::filter`). Recovered
  resources wait for the next round (no allocation on recovery: MESOS-3078 in
  `recoverResources`); a REVIVE naming no role clears the filters of every role of the
  framework and allocates at once (`reviveOffers`: `reviveRoles(framework, roles.empty() ?
  framework.roles : roles)`, which erases `offerFilters[role]`, then `generateOffers()`).
- `latency_seconds` between a decision and Mesos acting on it: the group commit and the
  sender (0 by default: the plan's own pace).
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

import dataclasses
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from calico_dcos import plans
from calico_dcos.core import events as ev
from calico_dcos.core.deploy import Deploy
from calico_dcos.mesos import PUBLIC_ROLE
from calico_dcos.options import load_options

ARTIFACTS = "http://scheduler.marathon.l4lb.thisdcos.directory:8080"
# the framework's roles (options' `service.roles` default), and the one public agents'
# resources are reserved to (`calico_dcos.mesos.PUBLIC_ROLE`)
ROLES = ("*", PUBLIC_ROLE)
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
    latency_seconds: float = 0.0  # decision to Mesos (group commit, sender)
    public_agents: int = 0  # of `agents`, public ones (reserved to slave_public; the bench has 0)
    timings: dict[str, float] | None = None  # PlanConfig timings, for experiments


AGENT_CPUS = 4.0
AGENT_MEM = 8192.0
TOLERANCE = 1e-9


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
    revives: int = 0
    offers_by_role: dict[str, int] = dataclasses.field(default_factory=dict)  # role -> offers
    revive_reasons: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> REVIVEs
    held_peak: int = 0  # most offers the plan held at once (after an allocation round)

    @property
    def events_per_cpu_second(self) -> float:
        return self.events / self.core_cpu_seconds if self.core_cpu_seconds else 0.0

    lower_bound_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            **self.__dict__,
            "events_per_cpu_second": self.events_per_cpu_second,
            "rss_bytes_per_agent": self.rss_growth_bytes / self.agents,
        }


def offer(
    offer_id: str,
    agent_id: str,
    hostname: str,
    cpus: float = AGENT_CPUS,
    mem: float = AGENT_MEM,
    role: str = "*",
    reserved: str = "*",
) -> dict:
    """A Mesos v1 Offer allocated to `role` of an agent's resources reserved to `reserved`
    (`*`: unreserved, a private agent's; `slave_public`: a public agent's), in the format
    before reservation refinement (`Resource.role`, as the scheduler does not ask for
    RESERVATION_REFINEMENT)."""

    def scalar(name: str, value: float) -> dict:
        return {
            "name": name,
            "type": "SCALAR",
            "scalar": {"value": value},
            "role": reserved,
            "allocation_info": {"role": role},
        }

    return {
        "id": {"value": offer_id},
        "agent_id": {"value": agent_id},
        "hostname": hostname,
        "allocation_info": {"role": role},
        "resources": [scalar("cpus", cpus), scalar("mem", mem), scalar("disk", 10240.0)],
    }


class Simulation:
    """One install on `settings.agents` agents; `run()` returns the figures."""

    def __init__(self, settings: SimSettings) -> None:
        self.s = settings
        self.now = 0.0
        self.agents = [f"5f1c0000-sim-S{i}" for i in range(settings.agents)]
        self.hostnames = {aid: f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i, aid in
                          enumerate(self.agents)}  # fmt: skip
        # offer ID -> (agent ID, cpus, mem, role), outstanding
        self.offered: dict[str, tuple[str, float, float, str]] = {}
        self.held_peak = 0  # most offers the plan held at once
        # (role, agent ID) -> (until, refused cpus, refused mem): `RefusedOfferFilter`
        self.filtered: dict[tuple[str, str], tuple[float, float, float]] = {}
        # the first `public_agents` agents are public: their resources are slave_public's
        self.public = set(self.agents[: settings.public_agents])
        # DRF: cpus and mem offered or used under each role, and offers made under it
        self.role_cpus = dict.fromkeys(ROLES, 0.0)
        self.role_mem = dict.fromkeys(ROLES, 0.0)
        self.role_offers = dict.fromkeys(ROLES, 0)
        self.task_roles: dict[str, str] = {}  # task ID -> the role its resources are under
        self.free = {aid: (AGENT_CPUS, AGENT_MEM) for aid in self.agents}  # not offered, not used
        self.tasks: dict[str, tuple[str, str]] = {}  # task ID -> (agent ID, latest state)
        self.task_needs: dict[str, tuple[float, float]] = {}  # task ID -> (cpus, mem)
        self.revives = 0
        self.revive_reasons: dict[str, int] = {}  # reason -> REVIVEs carrying it
        self.revive_log: list[tuple[float, tuple[str, ...]]] = []  # (virtual time, reasons)
        self._wakes: set[float] = set()  # the plan's `wake_at`s a tick is queued for
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ids = itertools.count()
        self.cpu = 0.0
        self.events = self.updates = self.offers_sent = self.decisions = 0
        self.largest = (0.0, "", 0, 0)
        options = load_options(None, {"CALICO_ROLLOUT_MAX_CONCURRENT_RESTARTS":
                                      settings.restart_budget})  # fmt: skip
        config = plans.config_from_options(options, ARTIFACTS)
        interval = settings.allocation_interval
        config = dataclasses.replace(config, allocation_interval_seconds=interval)
        if settings.timings:
            config = dataclasses.replace(config, **settings.timings)
        self.core = Deploy(config, {}, None)

    # -- the virtual clock --------------------------------------------------------------

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), action))

    def run(self) -> SimResult:
        process = psutil.Process()
        rss_before = process.memory_info().rss
        self.call("subscribed", 1, lambda: self.core.on_subscribed("fw-sim", self.now))
        # the master offers every agent when it adds the framework (`addFramework` calls
        # `generateOffers()`); its periodic rounds keep their own phase, which is unrelated
        # to the subscription: taken as half an interval later, its expected value
        self.at(0.0, lambda: self.allocate(periodic=False))
        self.at(self.s.allocation_interval / 2, self.allocate)
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
            revives=self.revives,
            offers_by_role=dict(self.role_offers),
            revive_reasons=dict(self.revive_reasons),
            held_peak=self.held_peak,
            lower_bound_seconds=self.lower_bound(),
        )

    def lower_bound(self) -> float:
        """The bench's bound (`calico_dcos.bench.lower_bound`) for these settings."""
        from calico_dcos.bench import Settings, lower_bound

        restarts = {name: self.s.restart_seconds for name in RESTARTING}
        settings = Settings(
            restart_budget=self.s.restart_budget,
            step_seconds=self.s.step_seconds,
            restart_seconds=restarts,
            allocation_interval=self.s.allocation_interval,
        )
        return lower_bound(settings, self.s.agents)

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
        self._wake()

    def _wake(self) -> None:
        """A tick at the plan's `wake_at`, as the scheduler's ticker does, once per time."""
        wake = self.core.wake_at
        if wake is not None and wake not in self._wakes:
            self._wakes.add(wake)
            self.at(max(wake, self.now), self._woken_tick)

    def _woken_tick(self) -> None:
        self.call("tick", 1, lambda: self.core.on_tick(self.now))

    def allocate(self, periodic: bool = True) -> None:
        """One allocation round: an offer of every agent's free resources (neither offered
        nor used) that are allocatable and not filtered, under the first of its roles in DRF
        order that does not filter them (`_role_for`). Resources outstanding in an offer
        are not offered again; an agent with an offer outstanding is offered what was freed
        since, as a second offer (hierarchical.cpp `__allocate` allocates an agent's
        `available()` resources, which exclude those offered; `isAllocatable`: at least
        MIN_CPUS 0.01 or MIN_MEM 32 MB, src/master/constants.hpp). The agents are visited in
        a fixed order, not shuffled as Mesos does: they are all alike here."""
        offers = []
        for aid in self.agents:
            cpus, mem = self.free[aid]
            if cpus < 0.01 and mem < 32:
                continue
            role = self._role_for(aid)
            if role is None:
                continue
            offer_id = f"o{next(self._ids)}"
            self.offered[offer_id] = (aid, cpus, mem, role)
            self.free[aid] = (0.0, 0.0)
            self._allocated(role, cpus, mem)
            self.role_offers[role] += 1
            reserved = PUBLIC_ROLE if aid in self.public else "*"
            offers.append(offer(offer_id, aid, self.hostnames[aid], cpus, mem, role, reserved))
        if offers:
            self.offers_sent += len(offers)
            self.call("offers", len(offers), lambda: self.core.on_offers(offers, self.now))
            self.held_peak = max(self.held_peak, self.core.held_offers)
        if periodic:
            self.at(self.now + self.s.allocation_interval, self.allocate)

    def _role_for(self, aid: str) -> str | None:
        """The role the agent's free resources are offered under this round, None if every
        role that may have them filters them: a public agent's go to slave_public only; a
        private agent's to the role of lower dominant share, then fewer offers, then name
        (`compareDRF`), unless that role filters them."""
        if aid in self.public:
            return None if self._hidden(PUBLIC_ROLE, aid) else PUBLIC_ROLE
        for role in sorted(ROLES, key=self._drf_key):
            if not self._hidden(role, aid):
                return role
        return None

    def _drf_key(self, role: str) -> tuple[float, int, str]:
        """`compareDRF`: the role's dominant share (cpus or mem, of every agent's), the
        offers made under it, its name."""
        agents = len(self.agents)
        share = max(self.role_cpus[role] / (agents * AGENT_CPUS),
                    self.role_mem[role] / (agents * AGENT_MEM))  # fmt: skip
        return share, self.role_offers[role], role

    def _allocated(self, role: str, cpus: float, mem: float) -> None:
        """Resources offered or used under `role` (negative: given back)."""
        self.role_cpus[role] += cpus
        self.role_mem[role] += mem

    def _hidden(self, role: str, aid: str) -> bool:
        """`RefusedOfferFilter::filter` of the role: the refused resources contain what is
        free."""
        until, cpus, mem = self.filtered.get((role, aid), (0.0, 0.0, 0.0))
        if until <= self.now:
            return False
        free = self.free[aid]
        return free[0] <= cpus + TOLERANCE and free[1] <= mem + TOLERANCE

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
        if self.s.latency_seconds and decisions:
            self.at(self.now + self.s.latency_seconds, lambda: self._apply(decisions))
        else:
            self._apply(decisions)

    def _apply(self, decisions: list[ev.Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, ev.Launch):
                self._answered(decision.offer_id, decision.refuse_seconds, decision.task_info)
            elif isinstance(decision, ev.Decline):
                for offer_id in decision.offer_ids:
                    self._answered(offer_id, decision.refuse_seconds)
            elif isinstance(decision, ev.Revive):
                self.revives += 1
                self.revive_log.append((self.now, decision.reasons))
                for reason in decision.reasons or ("unknown",):
                    self.revive_reasons[reason] = self.revive_reasons.get(reason, 0) + 1
                self.filtered.clear()
                self.at(self.now, lambda: self.allocate(periodic=False))
            elif isinstance(decision, ev.Reconcile):
                self._reconcile(decision)

    def _answered(self, offer_id: str, refuse_seconds: float, task: dict | None = None) -> None:
        """The offer's resources back to its agent but a launched task's (used under the
        offer's role until the task ends); the rest filtered for the offer's role for
        `max(allocation_interval, refuse_seconds)`, or not at all for 0."""
        if offer_id not in self.offered:
            return
        agent_id, cpus, mem, role = self.offered.pop(offer_id)
        self._allocated(role, -cpus, -mem)
        if task is not None:
            needs = {r["name"]: r["scalar"]["value"] for r in task.get("resources", ())
                     if r.get("type", "SCALAR") == "SCALAR"}  # fmt: skip
            used = (needs.get("cpus", 0.0), needs.get("mem", 0.0))
            cpus, mem = cpus - used[0], mem - used[1]
            self._allocated(role, *used)
            self.task_roles[task["task_id"]["value"]] = role
            self._launch(agent_id, task, used)
        free = self.free[agent_id]
        self.free[agent_id] = (free[0] + cpus, free[1] + mem)
        if refuse_seconds > 0:
            until = self.now + max(self.s.allocation_interval, refuse_seconds)
            self.filtered[(role, agent_id)] = (until, cpus, mem)

    def _launch(self, agent_id: str, task: dict, used: tuple[float, float]) -> None:
        task_id = task["task_id"]["value"]
        name = task.get("name", "")
        self.tasks[task_id] = (agent_id, "TASK_STAGING")
        self.task_needs[task_id] = used
        step = self.s.step_seconds
        self.at(self.now + step / 2, lambda: self.update(task_id, "TASK_STARTING"))
        self.at(self.now + step, lambda: self.update(task_id, "TASK_RUNNING", healthy=True))
        if name in RESTARTING:
            done = self.now + step + self.s.restart_seconds
            self.at(done, lambda: self._finished(task_id))

    def _finished(self, task_id: str) -> None:
        """A one-shot ends: its resources come back to the agent, unfiltered."""
        agent_id, _ = self.tasks[task_id]
        used = self.task_needs.pop(task_id, (0.0, 0.0))
        self._allocated(self.task_roles.pop(task_id, "*"), -used[0], -used[1])
        free = self.free[agent_id]
        self.free[agent_id] = (free[0] + used[0], free[1] + used[1])
        self.update(task_id, "TASK_FINISHED")

    def _reconcile(self, call: ev.Reconcile) -> None:
        asked = [task_id for task_id, _ in call.tasks] or list(self.tasks)
        for task_id in asked:
            if task_id in self.tasks:
                state = self.tasks[task_id][1]
                self.at(self.now, lambda t=task_id, s=state: self.update(
                    t, s, reason="REASON_RECONCILIATION"))  # fmt: skip
