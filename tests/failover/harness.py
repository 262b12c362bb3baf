"""Schedulers as child processes (so they can be SIGKILLed) against an in-test devcluster.

Assertions read the devcluster's timeline: what Mesos really launched, not what a scheduler
believed. A scheduler process acts as `calico-dcos run` does under Marathon: the test plays
Marathon and starts it again when it dies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

from calico_dcos.store import open_store
from tests.helpers.devcluster import wait_until
from tests.integration.harness import options_env

SCRIPT = Path(__file__).with_name("scheduler_process.py")
# States after which launching the step again is a retry, not a duplicate.
RETRY_DUE = {
    "TASK_FAILED",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_ERROR",
    "TASK_KILLED",
    "TASK_GONE_BY_OPERATOR",
}
CHAIN = ["docker", "cni", "libnetwork", "node"]  # etcd-proxy is off in these tests
DONE = {"docker": "TASK_FINISHED", "cni": "TASK_FINISHED"}  # the daemons: TASK_RUNNING


def scheduler_env(workdir: Path, master_url: str, **options: str) -> dict[str, str]:
    """The environment Marathon would give `calico-dcos run`, with fast test options."""
    env = dict(os.environ)
    env.update(options_env(workdir / "state", master_url, **options))
    env["HOST"] = "127.0.0.1"
    return env


class SchedulerProcess:
    """One `calico-dcos run` process; its log goes to `log_path` for the failure message."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port: int | None = None
        self._ready = threading.Event()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SCRIPT)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        threading.Thread(target=self._read_port, daemon=True).start()

    def _read_port(self) -> None:
        line = self.process.stdout.readline().strip()
        if line.isdigit():
            self.port = int(line)
            self._ready.set()

    def serving(self) -> bool:
        """True once it holds the leader lock and serves its API."""
        return self._ready.is_set()

    def wait_installed(self, agent_ids: list[str], timeout: float = 30.0) -> None:
        """Until the store records every step of the chain done on every agent."""

        def installed() -> bool:
            store = open_store(self.env["CALICO_SERVICE_STATE"])
            try:
                return all_installed(store.load_agents(), agent_ids)
            finally:
                store.close()

        wait_until(installed, timeout, f"the install to complete; log {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=30)


def launches_by_step(timeline: list[dict]) -> dict[tuple[str, str], list[str]]:
    """(agent ID, step) -> task IDs launched, in order."""
    launched: dict[tuple[str, str], list[str]] = defaultdict(list)
    for event in timeline:
        if event["event"] == "launch":
            step = event["task_name"].removeprefix("calico-")
            launched[(event["agent_id"], step)].append(event["task_id"])
    return launched


def unexplained_relaunches(timeline: list[dict]) -> list[str]:
    """Launches of a step on an agent while an earlier launch of it had not ended badly."""
    ended_badly: set[str] = set()
    launched: dict[tuple[str, str], list[str]] = defaultdict(list)
    unexplained = []
    for event in timeline:
        if event["event"] == "status" and event.get("state") in RETRY_DUE:
            ended_badly.add(event["task_id"])
        elif event["event"] == "launch":
            key = (event["agent_id"], event["task_name"])
            if any(task_id not in ended_badly for task_id in launched[key]):
                unexplained.append(f"{event['task_id']} after {launched[key]}")
            launched[key].append(event["task_id"])
    return unexplained


def every_agent_ran_the_chain(timeline: list[dict], agent_ids: list[str]) -> bool:
    launched = launches_by_step(timeline)
    return all((agent_id, step) in launched for agent_id in agent_ids for step in CHAIN)


def first(timeline: list[dict], event: str, **fields: str) -> dict | None:
    for entry in timeline:
        if entry["event"] == event and all(entry.get(k) == v for k, v in fields.items()):
            return entry
    return None


def all_installed(records: dict[str, dict], agent_ids: list[str]) -> bool:
    """Every step of the chain in its done state in every agent's record."""
    for agent_id in agent_ids:
        steps = records.get(agent_id, {}).get("steps", {})
        for step in CHAIN:
            if steps.get(step, {}).get("state") != DONE.get(step, "TASK_RUNNING"):
                return False
    return True
