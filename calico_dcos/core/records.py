"""Per-agent records: what the core knows of each agent and of each step's task on it.

The store keeps one record per agent (`agent_record`, docs/CONTRACTS.md "Agent record");
a restarted scheduler rebuilds its state from them (`agent_from_record`). Task IDs carry the
step, the agent and the options' fingerprint, because reconciliation answers carry no labels.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field

from calico_dcos.core.events import ENDED


@dataclass(frozen=True)
class AgentView:
    """What a step needs to know about an agent (from its offers)."""

    agent_id: str
    hostname: str
    public: bool = False
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(slots=True)
class StepState:
    """One step's task on one agent. Times are the core's clock (seconds). Slotted: five
    per agent, kept for every agent (about 200 bytes each instead of 1.3 KiB)."""

    task_id: str | None = None
    state: str | None = None  # Mesos TaskState name, e.g. "TASK_RUNNING"
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
    kills: int = 0  # KILLs sent for the current task (Mesos may lose one: sent again)
    kill_at: float = 0.0  # when to send the KILL again, unless Mesos confirmed an end
    late: bool = False  # killed for missing its launch deadline: its end is a failure
    reason: str = ""  # why the current task failed, in the installer's words (its report)
    host_caused: bool = False  # the current task's failure is the host's (its report says so)
    host_failures: int = 0  # failures in a row caused by the host
    running_since: float = 0.0  # when the current task last became RUNNING
    # when the current task was launched (0.0 in records written before it was stored: its
    # last update stands in, as it did then); its launch deadline and "launched … ago" count
    # from it after a restart too
    launched_at: float = 0.0
    # why it failed last (the words `message` had then): kept while it tries again, so that
    # a problem line always says why; forgotten when the count of failures starts over
    last_failure: str = ""
    # the installer's warning for the current task (its report): done, but not as the options
    # want (a cluster store someone else set, left alone); "" when none
    warning: str = ""
    # when an operator acknowledged that warning (`plan force-complete` of the step done with
    # it: plan clock, seconds; 0.0 when not): the step is no longer counted a problem. Both
    # go at the step's next launch (`Engine._launch`), and new words clear it.
    warning_acknowledged_at: float = 0.0
    # while a KILL of the current task is unconfirmed: when the task was last heard of (its
    # first KILL, or a later update of it; plan clock, 0.0 otherwise): a long silence says
    # its agent may be cut off from the master (`views.kill_silence_words`)
    kill_since: float = 0.0
    # failed `max_host_failures` times for the host: waits for an operator, or for other
    # options (the digest of those it gave up with; "" when it has not given up)
    gave_up: str = ""

    @property
    def live(self) -> bool:
        """Launched and not ended (as far as Mesos has told us)."""
        return self.task_id is not None and self.state not in ENDED


@dataclass(slots=True)
class AgentState:
    """One agent: identity from its offers, its steps, and the operator's flags (slotted,
    like `StepState`)."""

    agent_id: str
    hostname: str = ""
    public: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    steps: dict[str, StepState] = field(default_factory=dict)
    calico_present: dict | None = None
    interrupted: bool = False
    lost: bool = False
    lost_at: float = 0.0  # when it was found gone (records are deleted a while after)
    wanted: bool = True  # passes agents.include_public and agents.constraints
    # the filter of our last decline or ACCEPT: set when this many REVIVEs had been decided
    # (`Reviver.sent`), until this time (plan clock)
    filtered_after: int = 0
    filtered_until: float = 0.0

    @property
    def view(self) -> AgentView:
        """What the step catalog needs of the agent."""
        return AgentView(self.agent_id, self.hostname, self.public, dict(self.attributes))

    @property
    def name(self) -> str:
        """How people know the agent: its hostname, else its ID."""
        return self.hostname or self.agent_id

    def step(self, name: str) -> StepState:
        """The step's state on this agent, created empty on first use."""
        return self.steps.setdefault(name, StepState())


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
    "kills",
    "kill_at",
    "late",
    "reason",
    "host_caused",
    "host_failures",
    "running_since",
    "launched_at",
    "gave_up",
    "last_failure",
    "warning",
)
# Fields stored only when set (not at their default): rare, so that every agent's record,
# written at each status update, does not grow by them (~30 bytes a step)
SPARSE_STEP_FIELDS = ("warning_acknowledged_at", "kill_since")
_STEP_FIELD_SET = frozenset(STEP_FIELDS + SPARSE_STEP_FIELDS)  # O(1): a restart reads them all


_STEP_VALUES = operator.attrgetter(*STEP_FIELDS)


def step_record(st: StepState) -> dict:
    """A step's stored document: every field of `STEP_FIELDS`, and those of
    `SPARSE_STEP_FIELDS` that are set."""
    doc = dict(zip(STEP_FIELDS, _STEP_VALUES(st), strict=True))
    if st.warning_acknowledged_at:
        doc["warning_acknowledged_at"] = st.warning_acknowledged_at
    return doc


def step_from_record(doc: Mapping) -> StepState:
    """The inverse of `step_record`; unknown keys (older or newer versions) are ignored."""
    return StepState(**{k: v for k, v in doc.items() if k in _STEP_FIELD_SET})


def agent_record(agent: AgentState) -> dict:
    """The store's per-agent document (docs/CONTRACTS.md "Agent record")."""
    return {
        "agent_id": agent.agent_id,
        "hostname": agent.hostname,
        "public": agent.public,
        "attributes": dict(agent.attributes),
        "calico_present": agent.calico_present,
        "interrupted": agent.interrupted,
        "lost": agent.lost,
        "lost_at": agent.lost_at,
        "steps": {name: step_record(st) for name, st in agent.steps.items()},
    }


def agent_from_record(record: Mapping) -> AgentState:
    """The inverse of `agent_record`."""
    return AgentState(
        agent_id=record["agent_id"],
        hostname=record.get("hostname", ""),
        public=bool(record.get("public", False)),
        attributes=dict(record.get("attributes", {})),
        steps={name: step_from_record(doc) for name, doc in record.get("steps", {}).items()},
        calico_present=record.get("calico_present"),
        interrupted=bool(record.get("interrupted", False)),
        lost=bool(record.get("lost", False)),
        lost_at=float(record.get("lost_at", 0.0)),
    )


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
