"""Telling the scheduler what happened on this agent: `POST $CALICO_DCOS_REPORT_URL`.

The scheduler puts the URL (`<its API>/v1/agents/<agent_id>/report`) in every installer
task's environment. Mesos' command executor says only "Command exited with status N" of a
failed task (apache/mesos src/launcher/executor.cpp), so the installer sends its own
one-line reason too. Best effort: a report that cannot be sent is logged, and the command's
verdict and exit code stand. Body shapes are in docs/CONTRACTS.md ("Agent-side installer").
"""

import json
import logging
import os
import re

LOG = logging.getLogger("calico-installer")
REPORT_URL_ENV = "CALICO_DCOS_REPORT_URL"
# This agent's report token (calico_dcos/report_auth.py): a variable name, not a secret.
REPORT_TOKEN_ENV = "CALICO_DCOS_REPORT_TOKEN"  # noqa: S105
REPORT_TIMEOUT_SECONDS = 5.0
MAX_REASON_CHARS = 1024
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:@/\s]+):[^@/\s]+@", re.I)


def redact(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://user:***@host`."""
    return _URL_PASSWORD.sub(r"\g<head>:***@", text)


def one_line(text: str) -> str:
    """Whitespace (newlines included) folded, so that a reason stays one line."""
    return " ".join(text.split())


def agent_id(environ) -> str:
    """The agent's ID from Mesos' environment, or from our task ID `calico-<step>__<agent>__…`."""
    for name in ("MESOS_AGENT_ID", "MESOS_SLAVE_ID"):
        if environ.get(name):
            return environ[name]
    parts = environ.get("MESOS_TASK_ID", "").split("__")
    return parts[1] if len(parts) >= 2 else ""


def post(body: dict, environ=None) -> bool:
    """POST `body` plus `agent_id` to the report URL; True when accepted.

    The scheduler accepts a report only with this agent's token, which it put in the task's
    environment; the token is sent, never logged."""
    environ = os.environ if environ is None else environ
    url = environ.get(REPORT_URL_ENV)
    if not url:
        return False
    import urllib.request  # only here: it costs more start-up time than the rest together

    body = dict(body, agent_id=agent_id(environ))
    headers = {"Content-Type": "application/json"}
    if environ.get(REPORT_TOKEN_ENV):
        headers["Authorization"] = "Bearer " + environ[REPORT_TOKEN_ENV]
    request = urllib.request.Request(  # noqa: S310 (the scheduler's own URL, from its TaskInfo)
        url, data=json.dumps(body).encode(), method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=REPORT_TIMEOUT_SECONDS):  # noqa: S310
            return True
    except (OSError, ValueError) as exc:
        LOG.warning("could not report to %s: %s", url, exc)
        return False


def failure(step: str, reason: str, exit_code: int, host_caused: bool, environ=None) -> bool:
    """`{"step", "task_id", "failed": true, "exit_code", "host_caused", "reason"}`: why this
    run failed, for the attempt `task_id` ($MESOS_TASK_ID). `reason` is cut to
    `MAX_REASON_CHARS`, with its end kept: that is where the engine's own words are."""
    environ = os.environ if environ is None else environ
    if len(reason) > MAX_REASON_CHARS:
        reason = "…" + reason[-(MAX_REASON_CHARS - 1) :]
    body = {
        "step": step,
        "task_id": environ.get("MESOS_TASK_ID", ""),
        "failed": True,
        "exit_code": exit_code,
        "host_caused": host_caused,
        "reason": reason,
    }
    return post(body, environ)


def warning(step: str, words: str, environ=None) -> bool:
    """`{"step", "task_id", "warning"}`: this run ended well (exit 0) but left something not
    as the options want it (a cluster store someone else set), in one line, cut to
    `MAX_REASON_CHARS`. The scheduler shows the step done WITH this warning, and Degraded."""
    environ = os.environ if environ is None else environ
    words = redact(one_line(words))
    if len(words) > MAX_REASON_CHARS:
        words = words[: MAX_REASON_CHARS - 1] + "…"
    body = {"step": step, "task_id": environ.get("MESOS_TASK_ID", ""), "warning": words}
    return post(body, environ)
