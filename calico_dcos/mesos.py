"""Mesos' own constants that the scheduler and the embedded master (devcluster) both need.

A module of its own so that neither imports the other: the scheduler must run without the
devcluster, and the devcluster must stand for Mesos, not for our scheduler.
"""

from __future__ import annotations

# TaskState values after which a task never changes again (mesos.proto `TaskState`).
TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)
