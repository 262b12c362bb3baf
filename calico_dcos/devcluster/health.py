"""Mesos health checks for the devcluster's process executor.

`HealthJudge` is the pure rule of Mesos' HealthChecker (src/checks/health_checker.cpp):
failures inside the grace period are ignored until the first success; a success after
start-up or after failures reports healthy; `consecutive_failures` failures in a row mean
kill the task. Updates are sent when the result changes (first result, then changes).
`run_health_checks` is the loop around it; `probe` runs one COMMAND, HTTP or TCP check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

Probe = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class HealthPolicy:
    """HealthCheck's timing fields, with Mesos' defaults."""

    delay: float = 15.0
    interval: float = 10.0
    timeout: float = 20.0
    consecutive_failures: int = 3
    grace: float = 10.0

    @classmethod
    def from_health_check(cls, health_check: Mapping) -> HealthPolicy:
        fields = {
            "delay": "delay_seconds",
            "interval": "interval_seconds",
            "timeout": "timeout_seconds",
            "consecutive_failures": "consecutive_failures",
            "grace": "grace_period_seconds",
        }
        given = {
            ours: health_check[theirs] for ours, theirs in fields.items() if theirs in health_check
        }
        return cls(**given)


@dataclass(frozen=True)
class Verdict:
    """What to do after one check: report `healthy` (None: say nothing) and/or kill."""

    healthy: bool | None = None
    kill: bool = False


class HealthJudge:
    """Mesos' health rule over a sequence of check results (pure: the caller gives the time)."""

    def __init__(self, policy: HealthPolicy, started_at: float) -> None:
        self.policy = policy
        self.started_at = started_at
        self.initializing = True
        self.consecutive_failures = 0
        self.reported: bool | None = None

    def record(self, ok: bool, now: float) -> Verdict:
        if ok:
            self.initializing = False
            self.consecutive_failures = 0
            return self._report(True, kill=False)
        if self.initializing and now - self.started_at <= self.policy.grace:
            return Verdict()
        self.consecutive_failures += 1
        kill = self.consecutive_failures >= self.policy.consecutive_failures
        return self._report(False, kill)

    def _report(self, healthy: bool, kill: bool) -> Verdict:
        changed = self.reported is not healthy
        self.reported = healthy
        return Verdict(healthy if changed else None, kill)


async def run_health_checks(
    policy: HealthPolicy,
    probe: Probe,
    on_healthy: Callable[[bool], None],
    on_kill: Callable[[], Awaitable[None]],
) -> None:
    """Check after `delay`, then every `interval`, until cancelled or the task is killed."""
    loop = asyncio.get_running_loop()
    judge = HealthJudge(policy, loop.time())
    await asyncio.sleep(policy.delay)
    while True:
        try:
            ok = await asyncio.wait_for(probe(), policy.timeout)
        except TimeoutError:
            ok = False
        verdict = judge.record(ok, loop.time())
        if verdict.healthy is not None:
            on_healthy(verdict.healthy)
        if verdict.kill:
            await on_kill()
            return
        await asyncio.sleep(policy.interval)


def make_probe(health_check: Mapping, env: Mapping[str, str], cwd: Path, ip: str) -> Probe:
    """One check of the given HealthCheck: COMMAND (on the host, stand-ins on PATH), HTTP, TCP."""
    kind = health_check.get("type") or next(
        (k.upper() for k in ("command", "http", "tcp") if k in health_check), "COMMAND"
    )
    if kind == "COMMAND":
        return lambda: command_ok(health_check.get("command", {}), env, cwd)
    if kind == "HTTP":
        return lambda: http_ok(health_check.get("http", {}), ip)
    if kind == "TCP":
        return lambda: tcp_ok(health_check.get("tcp", {}), ip)
    raise ValueError(f"unsupported health check type {kind!r}")


async def command_ok(command: Mapping, env: Mapping[str, str], cwd: Path) -> bool:
    """Exit status 0 is healthy; a check cancelled by its timeout takes its children with it."""
    variables = command_environment(command)
    executable, argv = command_argv(command)
    process = await asyncio.create_subprocess_exec(
        *argv,
        executable=executable,
        env={**env, **variables},
        cwd=cwd,
        start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await process.wait() == 0
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


def command_argv(command: Mapping) -> tuple[str, list[str]]:
    """Executable and argv of a CommandInfo, as Mesos runs it.

    `shell` (default true): `/bin/sh -c value`. Otherwise `value` is the executable and
    `arguments` the whole argv, argv[0] included (Mesos execs `value` with `arguments`).
    """
    value = command.get("value", "")
    if command.get("shell", True):
        return "/bin/sh", ["/bin/sh", "-c", value]
    return value, list(command.get("arguments") or [value])


def command_environment(command: Mapping) -> dict[str, str]:
    """The CommandInfo's own `environment.variables` (VALUE type; secrets are not simulated)."""
    variables = command.get("environment", {}).get("variables", [])
    return {v["name"]: v.get("value", "") for v in variables}


async def http_ok(http: Mapping, ip: str) -> bool:
    """2xx and 3xx are healthy, as in Mesos' HTTP health check."""
    url = f"{http.get('scheme', 'http')}://{ip}:{http['port']}{http.get('path', '/')}"
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return 200 <= response.status < 400
    except (aiohttp.ClientError, OSError):
        return False


async def tcp_ok(tcp: Mapping, ip: str) -> bool:
    try:
        _, writer = await asyncio.open_connection(ip, tcp["port"])
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
