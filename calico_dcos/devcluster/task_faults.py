"""Faults of tasks that production Mesos clusters show schedulers (issue 21), kept apart
from the master's own code: a KILL lost after the master accepted it, and a task held in
STAGING (an executor that never registers, an image pull that never ends).

Real Mesos: a KILL is answered 202 Accepted and forwarded to the agent without any
acknowledgement (apache/mesos src/master/master.cpp, `Master::kill`); when the agent is
disconnected or the message is dropped the task goes on running, and only reconciliation
or a KILL sent again will tell. A task is STAGING from the launch until its executor
reports (include/mesos/v1/mesos.proto, `TASK_STAGING`: "Initial state. Framework status
updates should not use."), and stays so while the executor is not up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class TaskFaults:
    """Armed faults, each taken by the first task whose name matches its regex."""

    lost_kills: list[re.Pattern] = field(default_factory=list)
    held_launches: list[re.Pattern] = field(default_factory=list)
    held: set[str] = field(default_factory=set)  # task IDs held in STAGING

    def lose_next_kill(self, name_regex: str) -> None:
        """The next KILL of a task whose name matches is accepted and never delivered."""
        self.lost_kills.append(re.compile(name_regex))

    def hold_next_task(self, name_regex: str) -> None:
        """The next launched task whose name matches stays STAGING until it is killed."""
        self.held_launches.append(re.compile(name_regex))

    def kill_lost(self, name: str) -> bool:
        return _take(self.lost_kills, name)

    def launch_held(self, task_id: str, name: str) -> bool:
        if _take(self.held_launches, name):
            self.held.add(task_id)
            return True
        return False


def _take(patterns: list[re.Pattern], name: str) -> bool:
    for index, pattern in enumerate(patterns):
        if pattern.search(name):
            del patterns[index]
            return True
    return False
