"""What goes into the core (task states, in Mesos' words) and what comes out (decisions).

The scheduler applies a list of decisions in two passes: the store writes (`SaveAgent`,
`SaveFrameworkId`, `SaveMeta`) first, then the calls to Mesos in list order, so that a
launch is on record before its ACCEPT leaves. `Teardown` and `WipeState` come last, and
only from the uninstall. `Note` changes nothing: it is a line for the log. `ReadStderr` asks
the scheduler for the end of a failed task's sandbox `stderr`, which comes back as
`Core.on_task_output` (or not at all: the reason then stays as it is).

Task states: apache/mesos include/mesos/v1/mesos.proto (`TaskState`, `TaskStatus.Reason`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from calico_dcos.mesos import TERMINAL_STATES

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
# At most this many task or offer IDs in one RECONCILE or DECLINE. A call naming every task or
# offer grows with the cluster: at 50,000 agents an explicit reconciliation of five tasks each
# would be one ~35 MB request that the master answers with 250,000 updates at once (Mesos
# answers each task of a RECONCILE with its own update, apache/mesos docs/reconciliation.md;
# src/master/master.cpp `Master::reconcile`). In calls of at most 1,000 IDs (~140 KB of JSON)
# each request stays small and the answers come as the calls leave; Mesos treats several
# calls exactly as one listing all their IDs.
MAX_IDS_PER_CALL = 1_000

_T = TypeVar("_T")


def in_calls(items: Iterable[_T], size: int = MAX_IDS_PER_CALL) -> Iterator[tuple[_T, ...]]:
    """`items` in consecutive tuples of at most `size`; nothing at all for no items (an empty
    RECONCILE would be an implicit one, about every task)."""
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield tuple(batch)
            batch = []
    if batch:
        yield tuple(batch)


# Transitions not worth a store write (each is an fsync on the scheduler's one thread): a
# task that STARTS is as live as a STAGING one, for every decision and after a restart.
UNSAVED_STATES = frozenset({"TASK_STARTING"})


@dataclass(frozen=True)
class Launch:
    """ACCEPT `offer_id` with one LAUNCH of `task_info` (Mesos v1 TaskInfo JSON)."""

    offer_id: str
    agent_id: str
    task_info: dict
    refuse_seconds: float  # the ACCEPT's filter on the offer's unused resources


@dataclass(frozen=True)
class Decline:
    """DECLINE these offers (at most `MAX_IDS_PER_CALL`) with one filter."""

    offer_ids: tuple[str, ...]
    refuse_seconds: float


@dataclass(frozen=True)
class Kill:
    """KILL a task (best effort: Mesos may lose it; the core asks again)."""

    task_id: str
    agent_id: str


@dataclass(frozen=True)
class Reconcile:
    """RECONCILE `(task_id, agent_id)` pairs (at most `MAX_IDS_PER_CALL`); empty: implicit
    (every task Mesos knows)."""

    tasks: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Revive:
    """REVIVE: lift every offer filter of the framework. `reasons`: why it was wanted
    (`calico_dcos.core.revive.REASONS`), for the metrics and the bench."""

    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SaveAgent:
    """`store.put_agent(agent_id, record)`."""

    agent_id: str
    record: dict


@dataclass(frozen=True)
class DeleteAgent:
    """`store.delete_agent(agent_id)`: a gone agent's record, past its retention."""

    agent_id: str


@dataclass(frozen=True)
class SaveFrameworkId:
    """`store.set_framework_id(framework_id)`; None forgets it."""

    framework_id: str | None


@dataclass(frozen=True)
class SaveMeta:
    """`store.put_meta(key, value)`: a small document (the uninstall's progress, the deploy
    plan's whole-plan interrupt)."""

    key: str
    value: dict


@dataclass(frozen=True)
class Teardown:
    """`driver.stop(failover=False)`: pymesos sends TEARDOWN; Mesos forgets the framework."""


@dataclass(frozen=True)
class WipeState:
    """`store.wipe()`, after the TEARDOWN has left."""


@dataclass(frozen=True)
class Note:
    """A line for the operator's log (`level` "info" or "warning"); emitted once per change."""

    message: str
    level: str = "warning"


@dataclass(frozen=True)
class ReadStderr:
    """Read the end of the sandbox `stderr` of `task_id`, a command task on `agent_id` that
    failed without the installer saying why, or whose URIs could not be fetched
    (`failures.fetch_failed`); `message` is its terminal update's message as the plan took
    it ("Command exited with status 1"; "cannot download one of …: Failed to launch
    container: Failed to fetch all URIs …"), handed back with the words
    (`Core.on_task_output`)."""

    task_id: str
    agent_id: str
    message: str


Decision = (
    Launch
    | Decline
    | Kill
    | Reconcile
    | Revive
    | SaveAgent
    | DeleteAgent
    | SaveFrameworkId
    | SaveMeta
    | Teardown
    | WipeState
    | Note
    | ReadStderr
)
