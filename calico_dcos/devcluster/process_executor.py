"""The devcluster's process executor: runs each task's CommandInfo as a real process.

It plays Mesos' agent, fetcher and command executor for one task at a time: a sandbox per
task (`<workdir>/agents/<agent_id>/sandboxes/<task_id>/`), the URIs fetched into it (those
with `cache: true` through the agent's fetcher cache, `<workdir>/agents/<agent_id>/fetch/`,
emptied when the agent restarts, as Mesos' agent empties `--fetcher_cache_dir`) with the
fetcher's log in the sandbox's `stderr` and, when a URI fails, only the agent's own
"Failed to fetch all URIs for container …" in TASK_FAILED (`fetcher.run_fetcher`), the Mesos
environment, the host stand-ins first on PATH (no systemd or Docker can run on a test
machine), stdout/stderr in the sandbox, STARTING → RUNNING → FINISHED | FAILED | KILLED, and
health checks. A DOCKER or MESOS container with an image cannot really run here: it is
recorded in the host root and replaced by a stand-in process (its command, if it has one,
else a sleeper) that stays RUNNING until killed. `CommandInfo.user` is ignored: every task
runs as the devcluster's own user, who owns the simulated host roots.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from calico_dcos.devcluster.fetcher import FetcherCache, launch_failed_message, run_fetcher
from calico_dcos.devcluster.health import (
    HealthPolicy,
    command_argv,
    command_environment,
    make_probe,
    run_health_checks,
)
from calico_dcos.devcluster.hostroot import install_standins
from calico_dcos.devcluster.standins import STANDINS_DIR
from calico_dcos.installer.cli import HOST_ROOT_ENV

if TYPE_CHECKING:
    from calico_dcos.devcluster.agent import Agent

DEFAULT_GRACE_SECONDS = 3.0
SLEEPER = [sys.executable, "-c", "import signal; signal.pause()"]


@dataclass
class Running:
    """One launched task, from fetch to its terminal update."""

    agent: Agent
    task: dict
    sandbox: Path
    process: asyncio.subprocess.Process | None = None
    runner: asyncio.Task | None = None
    health: asyncio.Task | None = None
    killing: bool = False
    kill_grace: float = DEFAULT_GRACE_SECONDS
    unhealthy: bool = False
    silenced: bool = False
    # Mesos' agent gives each launch a ContainerID, a random UUID (apache/mesos
    # src/slave/slave.cpp, `Framework::addExecutor`: `id::UUID::random().toString()`)
    container_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def task_id(self) -> str:
        return self.task["task_id"]["value"]

    def send(self, state: str, **kw) -> None:
        if not self.silenced:
            self.agent.send_status(self.task_id, state, **kw)


# The command executor's health updates carry this reason (apache/mesos
# src/launcher/executor.cpp, `taskHealthUpdated`).
HEALTH_UPDATED = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"


class ProcessExecutor:
    """Executor protocol of docs/CONTRACTS.md. Injected failures are the master's
    (`Master.fail_next_task`), the same for every executor."""

    def __init__(self, workdir: Path, standins_dir: Path = STANDINS_DIR) -> None:
        self.workdir = Path(workdir)
        self.standins_dir = Path(standins_dir)
        self.bin_dir = install_standins(self.workdir / "standins-bin", self.standins_dir)
        self._running: dict[tuple[str, str], Running] = {}
        # (agent, framework, executor ID) -> sandbox: what each agent attaches at
        # /frameworks/<framework>/executors/<executor>/runs/latest (agent_http.py); kept, as
        # Mesos keeps it until the sandbox is garbage collected
        self._attached: dict[tuple[str, str, str], Path] = {}
        self._caches: dict[str, FetcherCache] = {}

    def fetcher_cache(self, agent_id: str) -> FetcherCache:
        """The agent's fetcher cache (one per agent, as in Mesos), made on first use."""
        cache = self._caches.get(agent_id)
        if cache is None:
            cache = self._caches[agent_id] = FetcherCache(
                self.workdir / "agents" / agent_id / "fetch"
            )
        return cache

    def sandbox_of(self, agent_id: str, task_id: str) -> Path:
        return self.workdir / "agents" / agent_id / "sandboxes" / task_id

    def sandbox_for(self, agent_id: str, framework_id: str, executor_id: str) -> Path | None:
        """The latest run's directory of a (command) executor, if the agent ran it."""
        return self._attached.get((agent_id, framework_id, executor_id))

    async def launch(self, agent: Agent, task: dict) -> None:
        """Start the task in the background; its updates go through `agent.send_status`."""
        task_id = task["task_id"]["value"]
        running = Running(agent, task, self.sandbox_of(agent.agent_id, task_id))
        self._running[(agent.agent_id, task_id)] = running
        framework_id = agent.framework_id_of(task_id) or ""
        self._attached[(agent.agent_id, framework_id, task_id)] = running.sandbox
        running.runner = asyncio.create_task(self._run(running))

    async def kill(self, agent: Agent, task_id: str, grace_seconds: float) -> None:
        """SIGTERM the task's process group, SIGKILL after the grace period: TASK_KILLED."""
        running = self._running.get((agent.agent_id, task_id))
        if running is None or running.killing:
            return
        running.killing, running.kill_grace = True, grace_seconds
        if running.process is not None:
            agent.killing(task_id)
            await terminate(running.process, grace_seconds)

    async def agent_stopping(self, agent: Agent, keep_tasks: bool) -> None:
        """An agent restart: checkpointed tasks keep running, others die without a word; the
        fetcher cache starts empty again (Mesos' agent clears it on startup)."""
        cache = self._caches.pop(agent.agent_id, None)
        if cache is not None:
            cache.clear()
        if keep_tasks:
            return
        doomed = [r for (agent_id, _), r in self._running.items() if agent_id == agent.agent_id]
        await asyncio.gather(*(self._destroy(r) for r in doomed))

    async def shutdown(self) -> None:
        """Kill every task of every agent (the devcluster is stopping): each task's whole
        process group, and wait until no process of those groups is left."""
        await asyncio.gather(*(self._destroy(r) for r in list(self._running.values())))

    def kill_everything(self) -> None:
        """`shutdown` without the loop, for a stop whose loop is stuck: SIGKILL to every
        task's process group, without waiting."""
        for running in list(self._running.values()):
            if running.process is not None:
                kill_group(running.process.pid, signal.SIGKILL)

    async def _destroy(self, running: Running) -> None:
        running.silenced = True
        group = running.process.pid if running.process is not None else None
        if group is not None:
            kill_group(group, signal.SIGKILL)
        elif running.runner is not None:
            running.runner.cancel()
        if running.runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await running.runner
        if group is not None:
            await wait_for_group_end(group)

    async def _run(self, running: Running) -> None:
        try:
            await self._fetch_and_run(running)
        except Exception as exc:  # an executor bug must still end the task, as Mesos would
            running.send("TASK_FAILED", message=f"Executor failed: {exc!r}")
        finally:
            if running.health is not None:
                running.health.cancel()
            if running.process is not None and running.process.returncode is None:
                kill_group(running.process.pid, signal.SIGKILL)
            self._running.pop((running.agent.agent_id, running.task_id), None)

    async def _fetch_and_run(self, running: Running) -> None:
        """Fetch the URIs as Mesos' agent runs its fetcher program (`run_fetcher`: its lines
        in the sandbox's `stderr`); if it fails, the agent's own TASK_FAILED, which names
        the container and the exit status, not the URI (`launch_failed_message`)."""
        running.sandbox.mkdir(parents=True, exist_ok=True)
        command = running.task.get("command", {})
        status = await asyncio.to_thread(
            run_fetcher,
            command.get("uris", []),
            running.sandbox,
            self.fetcher_cache(running.agent.agent_id),
            command.get("user"),  # the framework's user is not known here (runs as ours)
        )
        if status != 0:
            running.send(
                "TASK_FAILED",
                message=launch_failed_message(running.container_id, status),
                reason="REASON_CONTAINER_LAUNCH_FAILED",
                source="SOURCE_AGENT",
            )
            return
        if running.killing:
            running.send("TASK_KILLED", reason="REASON_TASK_KILLED_DURING_LAUNCH")
            return
        running.send("TASK_STARTING")
        await self._run_process(running, command)

    async def _run_process(self, running: Running, command: dict) -> None:
        env = self.environment(running)
        container = container_record(running)
        if container is not None:
            write_container(running.agent.host_root, running.task_id, container)
        executable, argv = process_argv(command, container)
        with (
            open(running.sandbox / "stdout", "ab") as stdout,
            open(running.sandbox / "stderr", "ab") as stderr,
        ):
            try:
                running.process = await asyncio.create_subprocess_exec(
                    *argv,
                    executable=executable,
                    env=env,
                    cwd=running.sandbox,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
            except OSError as exc:
                running.send("TASK_FAILED", message=f"Failed to launch command: {exc}")
                return
        if running.killing:
            await terminate(running.process, running.kill_grace)
        else:
            running.send("TASK_RUNNING")
            self._start_health_checks(running, env)
        returncode = await running.process.wait()
        kill_group(running.process.pid, signal.SIGKILL)
        state, details = terminal_update(running, returncode)
        log_reaped(running.sandbox / "stderr", details["message"], running.process.pid)
        if container is not None:
            write_container(
                running.agent.host_root,
                running.task_id,
                {**container, "running": False, "exit_status": returncode},
            )
        running.send(state, **details)

    def environment(self, running: Running) -> dict[str, str]:
        """The agent's environment, Mesos' variables, the task's own, stand-ins first on PATH,
        and the installer's host root set to the agent's (this machine's `/` is not a host)."""
        agent, sandbox, task_id = running.agent, running.sandbox, running.task_id
        command = running.task.get("command", {})
        return {
            **os.environ,
            "MESOS_SANDBOX": str(sandbox),
            "MESOS_DIRECTORY": str(sandbox),
            "MESOS_TASK_ID": task_id,
            "MESOS_FRAMEWORK_ID": agent.framework_id_of(task_id) or "",
            "MESOS_EXECUTOR_ID": task_id,
            "MESOS_AGENT_ENDPOINT": f"{agent.ip}:{agent.port}",
            "HOST": agent.hostname,
            "LIBPROCESS_IP": agent.ip,
            "MESOS_CONTAINER_IP": agent.ip,
            "DEVCLUSTER_HOST_ROOT": str(agent.host_root),
            "DEVCLUSTER_AGENT_ID": agent.agent_id,
            **command_environment(command),
            # After the task's own variables, so no task can point the installer at our `/`.
            HOST_ROOT_ENV: str(agent.host_root),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        }

    def _start_health_checks(self, running: Running, env: dict[str, str]) -> None:
        health_check = running.task.get("health_check")
        if not health_check:
            return
        probe = make_probe(health_check, env, running.sandbox, running.agent.ip)

        async def kill_unhealthy() -> None:
            running.unhealthy = True
            await self.kill(running.agent, running.task_id, kill_policy_grace(running.task))

        running.health = asyncio.create_task(
            run_health_checks(
                HealthPolicy.from_health_check(health_check),
                probe,
                lambda healthy: running.send(
                    "TASK_RUNNING", healthy=healthy, reason=HEALTH_UPDATED
                ),
                kill_unhealthy,
            )
        )


def kill_policy_grace(task: dict) -> float:
    """The task's `kill_policy.grace_period`, else the command executor's default of 3 s."""
    grace = task.get("kill_policy", {}).get("grace_period", {})
    if "nanoseconds" in grace:
        return int(grace["nanoseconds"]) / 1e9
    return DEFAULT_GRACE_SECONDS


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether a process other than a zombie is still in process group `pgid` (the group's
    leader reaped, its children are reparented but keep the group: POSIX setpgid)."""
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, OSError):
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                return True
    return False


async def wait_for_group_end(pgid: int, timeout: float = 10.0) -> None:
    """Until no live process is left in group `pgid` (SIGKILLed), at most `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await asyncio.to_thread(group_alive, pgid):
        if asyncio.get_running_loop().time() > deadline:
            return
        kill_group(pgid, signal.SIGKILL)
        await asyncio.sleep(0.05)


async def terminate(process: asyncio.subprocess.Process, grace_seconds: float) -> None:
    kill_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace_seconds)
    except TimeoutError:
        kill_group(process.pid, signal.SIGKILL)


def terminal_update(running: Running, returncode: int) -> tuple[str, dict]:
    """The final state and its message in the command executor's words."""
    if returncode < 0:
        message = f"Command terminated with signal {signal.strsignal(-returncode)}"
    else:
        message = f"Command exited with status {returncode}"
    if running.killing:
        extra = {"healthy": False} if running.unhealthy else {}
        return "TASK_KILLED", {"message": message, **extra}
    return ("TASK_FINISHED" if returncode == 0 else "TASK_FAILED"), {"message": message}


def log_reaped(stderr: Path, message: str, pid: int) -> None:
    """The command executor's own line after its command ends, on the same stderr (apache/mesos
    src/launcher/executor.cpp, `reaped`: `LOG(INFO) << message << " (pid: " << pid << ")"`),
    in glog's format (`Lmmdd hh:mm:ss.uuuuuu threadid file:line] `)."""
    now = datetime.datetime.now()
    line = f"I{now:%m%d %H:%M:%S.%f} {os.getpid():>5} executor.cpp:1041] {message} (pid: {pid})"
    with contextlib.suppress(OSError), open(stderr, "a") as handle:
        handle.write(line + "\n")


def process_argv(command: dict, container: dict | None) -> tuple[str, list[str]]:
    """What to exec: the CommandInfo, or for an image container its command or a sleeper.

    Docker runs `image [value] [arguments…]` when `shell` is false, so that is the argv.
    """
    if container is None:
        return command_argv(command)
    if command.get("shell", True) and command.get("value"):
        return command_argv(command)
    if command.get("value"):
        argv = [command["value"], *command.get("arguments", [])]
        return argv[0], argv
    return SLEEPER[0], SLEEPER


def container_record(running: Running) -> dict | None:
    """What a DOCKER or MESOS container with an image would have been run with, or None."""
    container = running.task.get("container")
    image = container_image(container) if container else None
    if image is None:
        return None
    docker = container.get("docker", {})
    command = running.task.get("command", {})
    return {
        "task_id": running.task_id,
        "task_name": running.task.get("name", ""),
        "agent_id": running.agent.agent_id,
        "type": container.get("type", "MESOS"),
        "image": image,
        "env": command_environment(command),
        "command": command,
        "volumes": container.get("volumes", []),
        "network": docker.get("network", "HOST"),
        "network_infos": container.get("network_infos", []),
        "privileged": bool(docker.get("privileged", False)),
        "port_mappings": docker.get("port_mappings", []),
        "parameters": docker.get("parameters", []),
        "running": True,
    }


def container_image(container: dict) -> str | None:
    if container.get("type") == "DOCKER":
        return container.get("docker", {}).get("image")
    image = container.get("mesos", {}).get("image")
    if not image:
        return None
    return image.get("docker", {}).get("name") or image.get("appc", {}).get("name")


def write_container(host_root: Path, task_id: str, record: dict) -> None:
    path = Path(host_root) / ".devcluster" / "containers" / f"{task_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
