"""The synthetic executor: tasks move through their states on event-loop timers.

No process, sandbox or file per task, so a cluster of thousands of agents fits on one
machine. Long-running tasks stay RUNNING (healthy, if they have a health check) until killed;
one-shot tasks FINISH after the duration configured for their name.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from calico_dcos.devcluster.agent import Agent

# The calico-dcos steps that are one-shot (CONTRACTS.md); other tasks are daemons.
ONESHOT_DURATIONS = {"calico-docker": 0.2, "calico-cni": 0.2}
STEP_LABEL = "calico_dcos.step"


def task_name(task: dict) -> str:
    """The task's name, or `calico-<step>` from its step label when that is more telling."""
    for label in task.get("labels", {}).get("labels", []):
        if label.get("key") == STEP_LABEL:
            return f"calico-{label.get('value', '')}"
    return task.get("name", "")


class SyntheticExecutor:
    def __init__(self, durations: dict[str, float] | None = None, step: float = 0.05) -> None:
        """`durations`: task name -> seconds from RUNNING to FINISHED (one-shot tasks).
        `step`: seconds from launch to STARTING, and from STARTING to RUNNING."""
        self.durations = {**ONESHOT_DURATIONS, **(durations or {})}
        self.step = step
        self._timers: dict[str, dict[str, list[asyncio.TimerHandle]]] = {}

    def _duration(self, task: dict) -> float | None:
        for name in (task.get("name", ""), task_name(task)):
            if name in self.durations:
                return self.durations[name]
        return None

    async def launch(self, agent: Agent, task: dict) -> None:
        loop = asyncio.get_running_loop()
        task_id = task["task_id"]["value"]
        handles = [
            loop.call_later(self.step, agent.send_status, task_id, "TASK_STARTING"),
            loop.call_later(2 * self.step, agent.send_status, task_id, "TASK_RUNNING"),
        ]
        if "health_check" in task:
            handles.append(loop.call_later(3 * self.step, self._healthy, agent, task_id))
        duration = self._duration(task)
        if duration is not None:
            finish_at = 2 * self.step + duration
            handles.append(loop.call_later(finish_at, self._finish, agent, task_id))
        self._timers.setdefault(agent.agent_id, {})[task_id] = handles

    @staticmethod
    def _healthy(agent: Agent, task_id: str) -> None:
        """The command executor's first health result: TASK_RUNNING again, `healthy` set,
        reason REASON_TASK_HEALTH_CHECK_STATUS_UPDATED (src/launcher/executor.cpp)."""
        agent.send_status(
            task_id, "TASK_RUNNING", healthy=True, reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
        )

    def _finish(self, agent: Agent, task_id: str) -> None:
        self._forget(agent.agent_id, task_id)
        agent.send_status(task_id, "TASK_FINISHED", message="Command exited with status 0")

    def _forget(self, agent_id: str, task_id: str) -> bool:
        handles = self._timers.get(agent_id, {}).pop(task_id, None)
        for handle in handles or []:
            handle.cancel()
        return handles is not None

    async def kill(self, agent: Agent, task_id: str, grace_seconds: float) -> None:
        """TASK_KILLING (for frameworks that take it), then TASK_KILLED a step later, as
        the command executor's SIGTERM ends a process that exits at once."""
        if self._forget(agent.agent_id, task_id):
            agent.killing(task_id)
            handle = asyncio.get_running_loop().call_later(
                min(self.step, grace_seconds), self._killed, agent, task_id
            )
            self._timers.setdefault(agent.agent_id, {})[task_id] = [handle]

    def _killed(self, agent: Agent, task_id: str) -> None:
        self._forget(agent.agent_id, task_id)
        agent.send_status(task_id, "TASK_KILLED", message="Command terminated with signal")

    async def agent_stopping(self, agent: Agent, keep_tasks: bool) -> None:
        """Checkpointed tasks keep running through an agent restart; others just stop."""
        if not keep_tasks:
            for task_id in list(self._timers.get(agent.agent_id, {})):
                self._forget(agent.agent_id, task_id)
