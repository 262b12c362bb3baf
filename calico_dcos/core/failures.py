"""Why a task failed, in words an operator can act on, and whether its host caused it.

Mesos' command executor says only "Command exited with status N" of a task whose command
failed (apache/mesos src/launcher/executor.cpp, `reaped`), so the words come from two
places:

- the installer's own report (`POST …/report`, `{"failed": true, "task_id", "exit_code",
  "host_caused", "reason"}`, docs/CONTRACTS.md), sent before it exits: its last error line,
  and whether the host's own configuration is the cause (exit status 3);
- the end of the task's sandbox `stderr` (`python3: not found`, `bind: address already in
  use`), read by the scheduler from the agent once the task failed without a report
  (`output_words`; calico_dcos/sandbox.py); also once its URIs could not be fetched
  (`fetch_failed`), since the fetcher program's line naming the URI is only there;
- the exit status itself: 126 and 127 are the shell's "found but not executable" and "not
  found" (POSIX `sh`, "Command Search and Execution"), which on an agent means a program the
  options name is not there (`service.agent_python`, the etcd binary).

A failure the host causes is not retried with fresh restarts for ever: after
`rollout.max_host_failures` of them in a row the step waits for an operator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

EXIT_HOST = 3  # the installer's exit status for a failure the host causes (installer/cli.py)
_EXITED = re.compile(r"Command exited with status (\d+)")
SHELL_WORDS = {
    126: "a command of the step is not executable on the agent (exit status 126)",
    127: "a command of the step is not on the agent: check service.agent_python or the "
    "step's download URI (exit status 127)",
}


# The agent's words for a launch whose fetcher program failed: "Failed to launch container:
# Failed to fetch all URIs for container '<container id>': exited with status 1" (apache/mesos
# src/slave/containerizer/fetcher.cpp, `FetcherProcess::run`; src/slave/slave.cpp,
# `Slave::executorLaunched`, with REASON_CONTAINER_LAUNCH_FAILED). The URI and why are only
# in the sandbox's `stderr`, where the fetcher program writes "Failed to fetch '<uri>': …"
# (src/launcher/fetcher.cpp, `main`).
FETCH_ALL_FAILED = "Failed to fetch all URIs for container"
LAUNCH_FAILED = "REASON_CONTAINER_LAUNCH_FAILED"


def fetch_failed(status: Mapping) -> bool:
    """Whether a TaskStatus (v1 JSON) is the agent's for a fetch that failed."""
    message = status.get("message") or ""
    return status.get("reason") == LAUNCH_FAILED and FETCH_ALL_FAILED in message


def exit_status(message: str) -> int | None:
    """The exit status in Mesos' command executor's words, if they say one."""
    found = _EXITED.search(message or "")
    return int(found.group(1)) if found else None


def host_caused(reported: bool, status: Mapping) -> bool:
    """The installer said so, or the exit status is the installer's or the shell's own for a
    host that lacks what the step needs."""
    return reported or exit_status(status.get("message", "")) in (EXIT_HOST, 126, 127)


def failure_words(reason: str, status: Mapping) -> str:
    """The reason the installer gave, else the shell's meaning of the exit status, else the
    status' own message; Mesos' words follow in parentheses when they add something."""
    message = status.get("message", "") or ""
    words = reason or SHELL_WORDS.get(exit_status(message), "")
    if not words:
        return message
    return f"{words} ({message})" if message else words


def output_words(output: str, message: str) -> str:
    """A failed task's last words on `stderr`, the shell's meaning of its exit status when it
    has one, and Mesos' words (`message`) in parentheses: "sh: 1: python3: not found; a
    command of the step is not on the agent: … (Command exited with status 127)"."""
    hint = SHELL_WORDS.get(exit_status(message), "")
    words = "; ".join(w for w in (output, hint) if w)
    if not words:
        return message
    return f"{words} ({message})" if message else words


def gave_up_words(st_failures: int, message: str) -> str:
    """What a step that stopped retrying shows, and what the operator does next."""
    failures = "1 failure" if st_failures == 1 else f"{st_failures} failures"
    message = message or "no reason was given"
    return (
        f"stopped after {failures} caused by the host: {message}; waits for the operator: "
        "fix the host, then restart this step (calico-dcos plan restart); or, if an option "
        "is what is wrong, change it (changed options restart the step too)"
    )
