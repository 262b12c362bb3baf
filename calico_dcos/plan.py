"""The decision core: every rule about ordering, budgets, retries and reconciliation.

Pure: events and the clock go in, decisions come out. No sockets, threads or pymesos, so
each rule is unit-tested on its own. `scheduler.py` feeds the events and applies the
decisions (store writes first, then driver calls).

Cost: every per-offer and per-update path touches one agent only (indices below keep the
restart budget, the done count and the agents waiting for a slot), because the scheduler
must stay cheap at thousands of agents. Only option changes, (re)subscription and the
human views walk every agent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from calico_dcos import steps as catalog
from calico_dcos.mesos import TERMINAL_STATES
from calico_dcos.options import agent_constraints
from calico_dcos.steps import AgentView

# Ended for our purposes: a PARTITION_AWARE framework hears TASK_UNKNOWN for a task the
# master never heard of (a launch recorded just before a crash, never accepted).
ENDED = TERMINAL_STATES | {"TASK_UNKNOWN"}
# Mesos lost track of the task (agent gone, unknown to the master): relaunch, not a failure.
VANISHED = frozenset(
    {"TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN"}
)
# How a task that restarts its own agent ends when the restart cuts it off.
AGENT_RESTART_REASONS = frozenset(
    {
        "REASON_AGENT_RESTARTED",
        "REASON_AGENT_DISCONNECTED",
        "REASON_AGENT_REMOVED",
        "REASON_EXECUTOR_TERMINATED",
        "REASON_EXECUTOR_UNREGISTERED",
        "REASON_SLAVE_RESTARTED",
        "REASON_SLAVE_DISCONNECTED",
        "REASON_SLAVE_REMOVED",
    }
)
DEGRADED_FAILURES = 3
# Transitions not worth a store write (each is an fsync on the scheduler's one thread): a
# task that STARTS is as live as a STAGING one, for every decision and after a restart.
UNSAVED_STATES = frozenset({"TASK_STARTING"})


# ---------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class StepSpec:
    """One chain step as the plan sees it (built from `steps.py` and the options)."""

    name: str
    kind: str  # "daemon" (done when RUNNING, and healthy if health_checked) | "oneshot"
    restarts: str | None = None  # "docker" | "agent" | None
    health_checked: bool = False
    enabled: bool = True
    fingerprint: str = ""
    cpus: float = 0.1
    mem: float = 64.0


TaskBuilder = Callable[[StepSpec, AgentView, str, str], dict]


@dataclass(frozen=True)
class PlanConfig:
    """Everything the plan decides by. Timings are short in tests, Mesos-friendly in run."""

    steps: tuple[StepSpec, ...]
    build_task: TaskBuilder
    restart_budget: int | str = 1
    retry_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 300.0
    wants_agent: Callable[[AgentView], bool] = lambda agent: True
    long_refuse_seconds: float = 3600.0
    wait_refuse_seconds: float = 5.0  # running steps, restart slots, and every ACCEPT
    revive_interval_seconds: float = 1.0  # about Mesos' allocation interval: none sooner
    revive_per_agent_seconds: float = 0.0004  # each REVIVE re-offers every agent
    reconcile_backoff_seconds: float = 2.0
    reconcile_max_backoff_seconds: float = 60.0
    reconcile_max_rounds: int = 8
    implicit_reconcile_seconds: float = 600.0

    @cached_property
    def enabled_steps(self) -> tuple[StepSpec, ...]:
        return tuple(s for s in self.steps if s.enabled)

    def revive_interval(self, agents: int) -> float:
        """At least `revive_interval_seconds` between REVIVEs, and longer in a big cluster:
        Mesos answers each with an offer of every agent (done ones too), which the scheduler
        must decline, so their cost stays a small share of its time (0.4 ms per agent:
        2 s at 5,000 agents)."""
        return max(self.revive_interval_seconds, agents * self.revive_per_agent_seconds)


def config_from_options(options: Mapping, artifacts_url: str, **timings: float) -> PlanConfig:
    """The plan's view of the options: the catalog's steps, fingerprints, budget, filters."""
    specs = tuple(_spec(step, options) for step in catalog.STEPS)

    def build_task(spec: StepSpec, agent: AgentView, task_id: str, role: str) -> dict:
        step = catalog.BY_NAME[spec.name]
        return catalog.build_task_info(step, options, agent, task_id, role, artifacts_url)

    rollout = options["rollout"]
    return PlanConfig(
        steps=specs,
        build_task=build_task,
        restart_budget=rollout["max_concurrent_restarts"],
        retry_backoff_seconds=rollout["retry_backoff_seconds"],
        max_backoff_seconds=rollout["max_backoff_seconds"],
        wants_agent=agent_filter(options),
        **timings,
    )


def agent_filter(options: Mapping) -> Callable[[AgentView], bool]:
    """Public agents only if included, and every `agents.constraints` entry must hold."""
    include_public = options["agents"]["include_public"]
    constraints = agent_constraints(options)

    def wanted(agent: AgentView) -> bool:
        if agent.public and not include_public:
            return False
        return all(c.matches(agent.hostname, agent.attributes) for c in constraints)

    return wanted


def _spec(step: catalog.Step, options: Mapping) -> StepSpec:
    resources = step.resources(options)
    return StepSpec(
        name=step.name,
        kind=step.kind,
        restarts=step.restarts,
        health_checked=step.health_checked,
        enabled=step.enabled(options),
        fingerprint=step.fingerprint(options),
        cpus=resources["cpus"],
        mem=resources["mem"],
    )


# ---------------------------------------------------------------------------------------
# Decisions


@dataclass(frozen=True)
class Launch:
    offer_id: str
    agent_id: str
    task_info: dict
    refuse_seconds: float  # the ACCEPT's filter on the offer's unused resources


@dataclass(frozen=True)
class Decline:
    offer_ids: tuple[str, ...]
    refuse_seconds: float


@dataclass(frozen=True)
class Kill:
    task_id: str
    agent_id: str


@dataclass(frozen=True)
class Reconcile:
    tasks: tuple[tuple[str, str], ...]  # (task_id, agent_id); empty = implicit


@dataclass(frozen=True)
class Revive:
    pass


# A REVIVE makes Mesos offer every agent again, done ones included: not worth it for a
# filter that runs out within about one allocation interval (Mesos' default is 1 s).
REVIVE_WORTH_SECONDS = 1.0


@dataclass
class Reviver:
    """REVIVE, rate-limited: wanted when work appears on an agent our filters still hide.

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
        if self.until <= now + REVIVE_WORTH_SECONDS:
            self.until = -math.inf
            return []
        if now - self.last < interval:
            return []
        self.until, self.last = -math.inf, now
        return [Revive()]


@dataclass(frozen=True)
class SaveAgent:
    agent_id: str
    record: dict


@dataclass(frozen=True)
class SaveFrameworkId:
    framework_id: str | None


Decision = Launch | Decline | Kill | Reconcile | Revive | SaveAgent | SaveFrameworkId


# ---------------------------------------------------------------------------------------
# Per-agent state


@dataclass
class StepState:
    task_id: str | None = None
    state: str | None = None
    fingerprint: str | None = None
    attempts: int = 0  # launches ever; makes every task ID unique
    failures: int = 0  # consecutive failures; drives the backoff
    cutoffs: int = 0  # times an agent restart cut the task off (not failures)
    retry_at: float = 0.0
    updated: float = 0.0
    message: str = ""
    healthy: bool | None = None
    killing: bool = False  # we asked Mesos to kill it: its end is not a failure
    replacing: bool = False  # a live daemon is being replaced: holds a restart slot
    forced: str | None = None  # fingerprint an operator force-completed

    @property
    def live(self) -> bool:
        return self.task_id is not None and self.state not in ENDED


@dataclass
class AgentState:
    agent_id: str
    hostname: str = ""
    public: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    calico_present: dict | None = None
    interrupted: bool = False
    lost: bool = False
    wanted: bool = True  # passes agents.include_public and agents.constraints
    filtered_since: float = 0.0  # the filter of our last decline or ACCEPT, from
    filtered_until: float = 0.0  # … to

    @property
    def view(self) -> AgentView:
        return AgentView(self.agent_id, self.hostname, self.public, dict(self.attributes))

    def step(self, name: str) -> StepState:
        return self.steps.setdefault(name, StepState())


@dataclass(frozen=True)
class Action:
    """What an agent needs next: done, skip, launch, replace, wait, delay, interrupted."""

    kind: str
    step: StepSpec | None = None
    until: float = 0.0


DONE = Action("done")
SKIP = Action("skip")


def step_done(spec: StepSpec, st: StepState) -> bool:
    """One-shot: FINISHED; daemon: RUNNING (and healthy if it has a health check)."""
    if st.forced is not None and st.forced == spec.fingerprint:
        return True
    if st.fingerprint != spec.fingerprint:
        return False
    if spec.kind == "oneshot":
        return st.state == "TASK_FINISHED"
    return st.state == "TASK_RUNNING" and (not spec.health_checked or st.healthy is True)


def task_id_for(step: str, agent_id: str, fingerprint: str, attempt: int) -> str:
    """`calico-<step>__<agent_id>__<fingerprint[:8]>__<attempt>` (docs/CONTRACTS.md)."""
    return f"calico-{step}__{agent_id}__{fingerprint[:8]}__{attempt}"


def parse_task_id(task_id: str) -> tuple[str, str, str, int] | None:
    """(step, agent_id, fingerprint prefix, attempt); None for a task that is not ours.

    Reconciliation answers carry no labels, so the task ID is what says which options
    a task was launched with.
    """
    parts = task_id.split("__")
    if len(parts) != 4 or not parts[0].startswith("calico-") or not parts[3].isdigit():
        return None
    return parts[0].removeprefix("calico-"), parts[1], parts[2], int(parts[3])


def restart_budget(value: int | str, agents: int) -> int:
    """`rollout.max_concurrent_restarts`: a count, or a percentage of `agents` rounded down;
    at least 1."""
    if isinstance(value, str) and value.endswith("%"):
        return max(1, int(value[:-1]) * agents // 100)
    return max(1, int(value))


def backoff(failures: int, base: float, cap: float) -> float:
    """Exponential: base, 2·base, 4·base … up to cap."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** (failures - 1))


# ---------------------------------------------------------------------------------------
# Offers


def offer_scalars(offer: Mapping) -> dict[str, float]:
    totals: dict[str, float] = {}
    for res in offer.get("resources", ()):
        if res.get("type", "SCALAR") == "SCALAR" and "scalar" in res:
            totals[res["name"]] = totals.get(res["name"], 0.0) + float(res["scalar"]["value"])
    return totals


def offer_role(offer: Mapping) -> str:
    role = offer.get("allocation_info", {}).get("role")
    if role:
        return role
    for res in offer.get("resources", ()):
        alloc = res.get("allocation_info", {}).get("role") or res.get("role")
        if alloc:
            return alloc
    return "*"


def offer_attributes(offer: Mapping) -> dict[str, str]:
    attrs = {}
    for attr in offer.get("attributes", ()):
        kind = attr.get("type", "TEXT")
        if kind == "TEXT":
            attrs[attr["name"]] = attr["text"]["value"]
        elif kind == "SCALAR":
            attrs[attr["name"]] = str(attr["scalar"]["value"])
    return attrs


def offer_is_public(offer: Mapping, attrs: Mapping[str, str]) -> bool:
    """DC/OS public agents offer role `slave_public` and carry `public_ip:true`."""
    return offer_role(offer) == "slave_public" or attrs.get("public_ip") == "true"


OfferUse = Callable[[Mapping, set[str], list], float | None]


def answer_offers(offers: Iterable[Mapping], use: OfferUse) -> list:
    """Offers are never held: `use(offer, launched, out)` launches on each (None) or says
    for how long to refuse its agent; the declines go in one call per refuse time."""
    out: list = []
    declines: dict[float, list[str]] = {}
    launched: set[str] = set()
    for offer in offers:
        refuse = use(offer, launched, out)
        if refuse is not None:
            declines.setdefault(refuse, []).append(offer["id"]["value"])
    out.extend(Decline(tuple(ids), refuse) for refuse, ids in declines.items())
    return out


def fits(offer: Mapping, spec: StepSpec) -> bool:
    have = offer_scalars(offer)
    return have.get("cpus", 0.0) >= spec.cpus - 1e-9 and have.get("mem", 0.0) >= spec.mem - 1e-9


# ---------------------------------------------------------------------------------------
# Records (the store's per-agent document, see docs/CONTRACTS.md)

STEP_FIELDS = (
    "task_id",
    "state",
    "fingerprint",
    "attempts",
    "failures",
    "cutoffs",
    "retry_at",
    "updated",
    "message",
    "healthy",
    "killing",
    "replacing",
    "forced",
)


def agent_record(agent: AgentState) -> dict:
    return {
        "agent_id": agent.agent_id,
        "hostname": agent.hostname,
        "public": agent.public,
        "attributes": dict(agent.attributes),
        "calico_present": agent.calico_present,
        "interrupted": agent.interrupted,
        "lost": agent.lost,
        "steps": {
            name: {k: getattr(st, k) for k in STEP_FIELDS} for name, st in agent.steps.items()
        },
    }


def agent_from_record(record: Mapping) -> AgentState:
    steps = {
        name: StepState(**{k: v for k, v in doc.items() if k in STEP_FIELDS})
        for name, doc in record.get("steps", {}).items()
    }
    return AgentState(
        agent_id=record["agent_id"],
        hostname=record.get("hostname", ""),
        public=bool(record.get("public", False)),
        attributes=dict(record.get("attributes", {})),
        steps=steps,
        calico_present=record.get("calico_present"),
        interrupted=bool(record.get("interrupted", False)),
        lost=bool(record.get("lost", False)),
    )


# ---------------------------------------------------------------------------------------
# The plan


class Plan:
    """Per-agent chains plus the rollout policy. Not thread-safe: the caller serialises."""

    def __init__(self, config: PlanConfig, records: Mapping[str, Mapping] = (), framework_id=None):
        self.config = config
        self.framework_id: str | None = framework_id
        self.agents: dict[str, AgentState] = {}
        self.interrupted = False
        self.subscribed = False
        self.reconciling: dict[str, str] = {}  # task_id -> agent_id, explicit round pending
        self._explicit = False  # an explicit reconciliation is waiting for answers
        self._reconcile_round = 0
        self._reconcile_at = 0.0
        self._implicit_at = math.inf
        self._revive = Reviver()
        self._eligible: set[str] = set()
        self._done: set[str] = set()
        self._holders: set[str] = set()  # agents holding a restart slot
        self._slot_waiters: set[str] = set()  # declined for want of a restart slot
        self._slot_wait = (0.0, -math.inf)  # the latest such decline's filter: since, until
        self._replace_queue: dict[str, None] = {}  # agents waiting for a slot to replace
        self._steps = {s.name: s for s in config.steps}
        for agent_id, record in dict(records).items():
            agent = agent_from_record({"agent_id": agent_id, **record})
            agent.wanted = config.wants_agent(agent.view)
            self.agents[agent_id] = agent
            self._index(agent, 0.0)

    # -- rollout state ---------------------------------------------------------------

    @property
    def budget(self) -> int:
        """Agents that may restart at once: a count, or a percentage rounded down, at least 1."""
        return restart_budget(self.config.restart_budget, len(self._eligible))

    @property
    def restarting(self) -> frozenset[str]:
        return frozenset(self._holders)

    def eligible(self, agent: AgentState) -> bool:
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
                if spec.kind == "daemon" and st.fingerprint != spec.fingerprint and not st.killing:
                    return Action("replace", spec)
                return Action("wait", spec)
            if st.retry_at > now:
                return Action("delay", spec, st.retry_at)
            if self.interrupted or agent.interrupted:
                return Action("interrupted", spec)
            return Action("launch", spec)
        return DONE

    def _slot_free(self, agent: AgentState) -> bool:
        """The agent holds a restart slot already, or one is free."""
        return agent.agent_id in self._holders or len(self._holders) < self.budget

    def _holds_slot(self, agent: AgentState) -> bool:
        if not self.eligible(agent):
            return False
        for spec in self.config.enabled_steps:
            st = agent.steps.get(spec.name)
            if st is None:
                continue
            if st.replacing:
                return True
            if spec.restarts and st.task_id and st.state != "TASK_FINISHED":
                return not step_done(spec, st)
        return False

    def _index(self, agent: AgentState, now: float) -> Action:
        """Recompute this agent's place in the indices: O(steps), never O(agents)."""
        aid = agent.agent_id
        for spec in self.config.enabled_steps:
            st = agent.steps.get(spec.name)
            if st is not None and st.replacing and step_done(spec, st):
                st.replacing = False
        _toggle(self._eligible, aid, self.eligible(agent))
        held = aid in self._holders
        _toggle(self._holders, aid, self._holds_slot(agent))
        if held and aid not in self._holders:
            self._slot_freed()
        action = self.next_action(agent, now)
        _toggle(self._done, aid, action.kind == "done")
        if action.kind != "launch":
            self._slot_waiters.discard(aid)
        if action.kind == "replace" and aid not in self._holders:
            self._replace_queue[aid] = None
        else:
            self._replace_queue.pop(aid, None)
        return action

    def _slot_freed(self) -> None:
        """Agents declined while they waited for a slot get offers again at once."""
        if self._slot_waiters:
            since, until = self._slot_wait
            self._revive.want(until, since)

    def _touch(self, agent: AgentState, now: float, out: list[Decision]) -> None:
        """After a change: reindex, ask for offers if the agent is filtered and has work
        (to launch now, or when its retry is due)."""
        action = self._index(agent, now)
        if action.kind in ("launch", "delay"):
            start = max(now, action.until)
            if agent.filtered_until > start + REVIVE_WORTH_SECONDS:
                self._revive.want(agent.filtered_until, agent.filtered_since)
        self._pump(now, out)

    def _pump(self, now: float, out: list[Decision]) -> None:
        """Give free restart slots to agents whose running daemon must be replaced."""
        while self._replace_queue and len(self._holders) < self.budget:
            aid = next(iter(self._replace_queue))
            del self._replace_queue[aid]
            agent = self.agents[aid]
            action = self.next_action(agent, now)
            if action.kind != "replace" or self.interrupted or agent.interrupted:
                continue
            st = agent.step(action.step.name)
            st.killing = st.replacing = True
            st.updated = now
            self._holders.add(aid)
            out.append(SaveAgent(aid, agent_record(agent)))
            out.append(Kill(st.task_id, aid))
        self._revive_if_due(now, out)

    def _revive_if_due(self, now: float, out: list[Decision]) -> None:
        interval = self.config.revive_interval(len(self.agents))
        out.extend(self._revive.due(now, interval))

    # -- events ----------------------------------------------------------------------

    def on_subscribed(self, framework_id: str, now: float) -> list[Decision]:
        """Explicitly reconcile every task the records think alive, before any launch."""
        out: list[Decision] = []
        self.subscribed = True
        if framework_id != self.framework_id:
            self.framework_id = framework_id
            out.append(SaveFrameworkId(framework_id))
        self.reconciling = {
            st.task_id: agent.agent_id
            for agent in self.agents.values()
            for st in agent.steps.values()
            if st.live
        }
        self._reconcile_round = 0
        if self.reconciling:
            self._explicit = True
            out.append(Reconcile(tuple(self.reconciling.items())))
            self._reconcile_at = now + self.config.reconcile_backoff_seconds
        else:
            self._finish_reconciliation(now, out)
        return out

    def on_disconnected(self) -> None:
        """Offers die with the stream; nothing else changes."""
        self.subscribed = False

    def on_framework_removed(self) -> list[Decision]:
        """Mesos removed the framework and killed its tasks: register afresh, keep progress."""
        self.framework_id = None
        self.subscribed = False
        self._explicit = False
        self.reconciling = {}
        return [SaveFrameworkId(None)]

    def _finish_reconciliation(self, now: float, out: list[Decision]) -> None:
        """Then implicit reconciliation, periodically, and offers for every agent again."""
        self._explicit = False
        self.reconciling = {}
        out.append(Reconcile(()))
        self._implicit_at = now + self.config.implicit_reconcile_seconds
        self._revive.want(math.inf)
        self._revive_if_due(now, out)

    def on_tick(self, now: float) -> list[Decision]:
        """Timers: reconciliation retries, periodic implicit reconciliation, revive."""
        out: list[Decision] = []
        if not self.subscribed:
            return out
        if self._explicit and now >= self._reconcile_at:
            self._retry_reconciliation(now, out)
        elif not self._explicit and now >= self._implicit_at:
            out.append(Reconcile(()))
            self._implicit_at = now + self.config.implicit_reconcile_seconds
        self._pump(now, out)
        return out

    def _retry_reconciliation(self, now: float, out: list[Decision]) -> None:
        self._reconcile_round += 1
        if self._reconcile_round >= self.config.reconcile_max_rounds:
            self._finish_reconciliation(now, out)
            return
        out.append(Reconcile(tuple(self.reconciling.items())))
        delay = self.config.reconcile_backoff_seconds * 2**self._reconcile_round
        self._reconcile_at = now + min(delay, self.config.reconcile_max_backoff_seconds)

    def on_offers(self, offers: Iterable[Mapping], now: float) -> list[Decision]:
        """At most one launch per agent per batch; everything else declined, batched."""
        out = answer_offers(
            offers, lambda offer, launched, out: self._use_offer(offer, now, launched, out)
        )
        self._revive_if_due(now, out)
        return out

    def _use_offer(
        self, offer: Mapping, now: float, launched: set[str], out: list[Decision]
    ) -> float | None:
        """Launch on this offer (None) or say how long to refuse the agent's resources."""
        agent = self._agent_from_offer(offer, now, out)
        short = self.config.wait_refuse_seconds
        if self.reconciling or not self.subscribed or agent.agent_id in launched:
            return self._refuse(agent, short, now)
        action = self.next_action(agent, now)
        if action.kind in ("done", "skip"):
            return self._refuse(agent, self.config.long_refuse_seconds, now)
        if action.kind == "delay":
            return self._refuse(
                agent, min(action.until - now, self.config.long_refuse_seconds), now
            )
        if action.kind != "launch" or not fits(offer, action.step):
            return self._refuse(agent, short, now)
        if action.step.restarts and not self._slot_free(agent):
            self._slot_waiters.add(agent.agent_id)
            self._slot_wait = (now, now + short)
            return self._refuse(agent, short, now)
        launched.add(agent.agent_id)
        self._launch(agent, action.step, offer, now, out)
        return None

    def _refuse(self, agent: AgentState, seconds: float, now: float) -> float:
        agent.filtered_since, agent.filtered_until = now, now + seconds
        return float(seconds)

    def _agent_from_offer(self, offer: Mapping, now: float, out: list[Decision]) -> AgentState:
        aid = offer["agent_id"]["value"]
        agent = self.agents.get(aid)
        attrs = offer_attributes(offer)
        public = offer_is_public(offer, attrs)
        hostname = offer.get("hostname", "")
        if agent is not None and not agent.lost and agent.hostname == hostname:
            if public and not agent.public:
                agent.public = True
                agent.wanted = self.config.wants_agent(agent.view)
                self._index(agent, now)
            return agent
        if agent is None:
            agent = self.agents[aid] = AgentState(aid)
        agent.hostname, agent.attributes, agent.lost = hostname, attrs, False
        agent.public = agent.public or public
        agent.wanted = self.config.wants_agent(agent.view)
        self._index(agent, now)
        out.append(SaveAgent(aid, agent_record(agent)))
        return agent

    def _launch(
        self, agent: AgentState, spec: StepSpec, offer: Mapping, now: float, out: list[Decision]
    ) -> None:
        st = agent.step(spec.name)
        st.attempts += 1
        st.task_id = task_id_for(spec.name, agent.agent_id, spec.fingerprint, st.attempts)
        st.state, st.fingerprint, st.healthy = "TASK_STAGING", spec.fingerprint, None
        st.killing, st.message, st.updated, st.retry_at = False, "", now, 0.0
        self._index(agent, now)
        task = self.config.build_task(spec, agent.view, st.task_id, offer_role(offer))
        refuse = self._refuse(agent, self.config.wait_refuse_seconds, now)
        out.append(SaveAgent(agent.agent_id, agent_record(agent)))
        out.append(Launch(offer["id"]["value"], agent.agent_id, task, refuse))

    def on_rescind(self, offer_id: str) -> list[Decision]:
        """Offers are never held, so a rescinded one needs nothing."""
        return []

    def on_status(self, status: Mapping, now: float) -> list[Decision]:
        out: list[Decision] = []
        task_id = status["task_id"]["value"]
        self.reconciling.pop(task_id, None)
        parsed = parse_task_id(task_id)
        agent = self.agents.get(parsed[1]) if parsed else None
        if parsed is None or agent is None or parsed[0] not in self._steps:
            if status["state"] not in ENDED:
                out.append(Kill(task_id, status.get("agent_id", {}).get("value", "")))
        elif agent.step(parsed[0]).task_id == task_id:
            self._transition(agent, self._steps[parsed[0]], status, now, out)
        else:
            self._unknown_task(agent, self._steps[parsed[0]], parsed, status, now, out)
        if self._explicit and not self.reconciling:
            self._finish_reconciliation(now, out)
        return out

    def _transition(
        self, agent: AgentState, spec: StepSpec, status: Mapping, now: float, out: list[Decision]
    ) -> None:
        st = agent.step(spec.name)
        state = status["state"]
        healthy = status.get("healthy", st.healthy)
        if state == st.state and healthy == st.healthy:
            return
        st.state, st.healthy, st.updated = state, healthy, now
        st.message = status.get("message", "") or st.message
        if state in ENDED and state != "TASK_FINISHED":
            self._ended(spec, st, status, now)
        if step_done(spec, st):
            st.failures = 0
        self._touch(agent, now, out)
        if state not in UNSAVED_STATES:
            out.append(SaveAgent(agent.agent_id, agent_record(agent)))

    def _ended(self, spec: StepSpec, st: StepState, status: Mapping, now: float) -> None:
        """Classify an unsuccessful end: our kill, an agent restart, vanished, or a failure."""
        if st.killing:
            st.killing = False
        elif spec.restarts == "agent" and _cut_off_by_restart(status):
            st.cutoffs += 1
        elif st.state in VANISHED:
            pass
        else:
            st.failures += 1
            delay = backoff(
                st.failures, self.config.retry_backoff_seconds, self.config.max_backoff_seconds
            )
            st.retry_at = now + delay

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
            st.message = status.get("message", "")
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
        agent.lost = True
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        return out

    def on_report(self, agent_id: str, report: Mapping, now: float) -> list[Decision]:
        """The installer found Calico already on the host: no Calico steps for it."""
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
        self._steps = {s.name: s for s in config.steps}
        for agent in self.agents.values():
            agent.wanted = config.wants_agent(agent.view)
            self._index(agent, now)
            if agent.agent_id not in self._done:
                self._revive.want(agent.filtered_until, agent.filtered_since)
        self._pump(now, out)
        return out

    # -- operator commands -----------------------------------------------------------

    def interrupt(self, agent_id: str | None, now: float) -> list[Decision]:
        """No new launches (running tasks go on) on one agent, or everywhere."""
        return self._set_interrupted(agent_id, True, now)

    def proceed(self, agent_id: str | None, now: float) -> list[Decision]:
        """Undo `interrupt` (the plan API calls it `continue`)."""
        return self._set_interrupted(agent_id, False, now)

    def _set_interrupted(self, agent_id: str | None, value: bool, now: float) -> list[Decision]:
        out: list[Decision] = []
        if agent_id is None:
            self.interrupted = value
            if not value:
                self._revive.want(math.inf)
            self._pump(now, out)
            return out
        agent = self._known(agent_id)
        agent.interrupted = value
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        return out

    def restart(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Run a step again on an agent, as if its options had changed: forgetting the
        fingerprint makes it not done, and keeps its task's real state, so an ended task is
        relaunched (within the budget if it restarts Docker or the agent), a live daemon is
        replaced within the budget, and a live one-shot runs again once it has ended."""
        out: list[Decision] = []
        agent, spec = self._known(agent_id), self._spec(step)
        st = agent.step(spec.name)
        st.forced, st.failures, st.retry_at, st.fingerprint = None, 0, 0.0, None
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        return out

    def force_complete(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Count a step as done with the current options, whatever its task did."""
        out: list[Decision] = []
        agent, spec = self._known(agent_id), self._spec(step)
        st = agent.step(spec.name)
        st.forced, st.failures, st.retry_at, st.replacing = spec.fingerprint, 0, 0.0, False
        self._touch(agent, now, out)
        out.append(SaveAgent(agent_id, agent_record(agent)))
        return out

    def _known(self, agent_id: str) -> AgentState:
        if agent_id not in self.agents:
            raise KeyError(f"unknown agent {agent_id}")
        return self.agents[agent_id]

    def _spec(self, step: str) -> StepSpec:
        if step not in self._steps:
            raise KeyError(f"unknown step {step}")
        return self._steps[step]

    # -- views for people ------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Every agent done, as Mesos confirmed: subscribed and reconciled."""
        if not self.subscribed or self._explicit or not self._eligible:
            return False
        return len(self._done) >= len(self._eligible) and self._done >= self._eligible

    def progress(self) -> tuple[int, int]:
        """(agents done, agents that should get Calico)."""
        return len(self._done & self._eligible), len(self._eligible)

    def step_status(self, agent: AgentState, spec: StepSpec, now: float) -> tuple[str, str]:
        """dcos-commons status and a message a person can act on."""
        if agent.calico_present is not None:
            return "COMPLETE", "skipped: Calico already present on this host"
        st = agent.steps.get(spec.name) or StepState()
        if step_done(spec, st):
            return "COMPLETE", "force-completed" if st.forced else st.message
        if st.live:
            if st.state in ("TASK_STAGING", "TASK_STARTING", "TASK_KILLING") or st.killing:
                return "STARTING", st.message
            return "STARTED", st.message
        if st.state == "TASK_ERROR":
            return "ERROR", st.message
        if st.retry_at > now:
            wait = st.retry_at - now
            msg = f"failed {st.failures} times: {st.message}; retry in {wait:.0f}s"
            return "DELAYED", msg
        action = self.next_action(agent, now)
        if action.step is spec and action.kind == "interrupted":
            return "WAITING", "interrupted by an operator"
        if action.step is spec and spec.restarts and not self._slot_free(agent):
            return "WAITING", f"waiting for a restart slot ({self.budget} at a time)"
        if action.step is spec and action.kind == "launch":
            return "PREPARED", "waiting for an offer"
        return "PENDING", ""

    def plan_view(self, now: float) -> dict:
        """The deploy plan in dcos-commons' shape: one phase per agent, one step per step."""
        phases = [self._phase(agent, now) for agent in self._agents_sorted()]
        errors = [
            f"{p['name']}: {s['name']}: {s['message']}"
            for p in phases
            for s in p["steps"]
            if s["status"] == "ERROR"
        ]
        return {
            "phases": phases,
            "strategy": "serial" if self.budget == 1 else "parallel",
            "errors": errors,
            "status": combine([p["status"] for p in phases], self.interrupted),
        }

    def _agents_sorted(self) -> list[AgentState]:
        shown = [a for a in self.agents.values() if not a.lost and a.wanted]
        return sorted(shown, key=lambda a: (a.hostname, a.agent_id))

    def _phase(self, agent: AgentState, now: float) -> dict:
        steps = []
        for spec in self.config.enabled_steps:
            status, message = self.step_status(agent, spec, now)
            st = agent.steps.get(spec.name) or StepState()
            steps.append(
                {"id": st.task_id or f"{agent.agent_id}:{spec.name}", "name": spec.name}
                | {"status": status, "message": message}
            )
        return {
            "id": agent.agent_id,
            "name": agent.hostname or agent.agent_id,
            "strategy": "serial",
            "status": combine([s["status"] for s in steps], agent.interrupted),
            "steps": steps,
        }

    def summary(self, now: float) -> dict:
        """Available / Progressing / Degraded, each with words for people."""
        done, total = self.progress()
        problems = [
            f"{a.hostname or a.agent_id}: {name} failed {st.failures} times: {st.message}"
            for a in self.agents.values()
            if a.agent_id in self._eligible
            for name, st in a.steps.items()
            if st.failures >= DEGRADED_FAILURES or st.state == "TASK_ERROR"
        ]
        present = sum(1 for a in self.agents.values() if a.calico_present and not a.lost)
        message = f"{done} of {total} agents done"
        if present:
            message += f"; {present} already run Calico by other means"
        if self.reconciling:
            message += f"; reconciling {len(self.reconciling)} tasks with Mesos"
        return {
            "available": self.complete,
            "progressing": done < total or bool(self.reconciling),
            "degraded": bool(problems),
            "message": message,
            "problems": sorted(problems),
            "restarting": sorted(self._holders),
            "budget": self.budget,
            "interrupted": self.interrupted,
        }


def _toggle(index: set[str], key: str, present: bool) -> None:
    if present:
        index.add(key)
    else:
        index.discard(key)


def _cut_off_by_restart(status: Mapping) -> bool:
    if status.get("reason") in AGENT_RESTART_REASONS:
        return True
    return status["state"] in VANISHED or status["state"] == "TASK_KILLED"


def combine(statuses: list[str], interrupted: bool) -> str:
    """A phase's or plan's status from its children, as dcos-commons reports it (the
    deploy plan's and the uninstall's)."""
    if statuses and all(s == "COMPLETE" for s in statuses):
        return "COMPLETE"
    if "ERROR" in statuses:
        return "ERROR"
    if interrupted:
        return "WAITING"
    if any(s in ("STARTING", "STARTED", "COMPLETE", "DELAYED", "IN_PROGRESS") for s in statuses):
        return "IN_PROGRESS"
    if "WAITING" in statuses:
        return "WAITING"
    return "PENDING"
