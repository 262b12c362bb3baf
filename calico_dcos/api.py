"""The scheduler's HTTP API (aiohttp): artifacts for agents, installer reports, health, and
the operator's routes (`operator_api.py`: plan, agents, options, metrics, status page).

`build_app(view, token)` is the one place the routes are made; `view` is the scheduler's
small read and command interface (`SchedulerView`), so the API never reaches into the plan
itself. `token` guards the plan's mutating endpoints (`service.api_token_file`).
`ApiServer` runs the app on its own thread and event loop, next to pymesos' threads.

Who may do what: GET routes are open (nothing they show is secret: options are redacted).
`POST /v1/agents/<id>/report` needs that agent's report token (`report_auth.py`), which
only the installer tasks launched on it hold; the plan's commands need the operator's
token. Every request body is bounded (`api_guard.py`), and a report's fields are checked
and bounded (`parse_report`) before anything reaches the plan or the store.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from calico_dcos.api_guard import (
    MAX_REQUEST_BYTES,
    bearer_token,
    call_view,
    limit_request_size,
    read_json_object,
    unauthorized,
)
from calico_dcos.loops import cancel_the_rest
from calico_dcos.operator_api import add_operator_routes
from calico_dcos.options import redact_text
from calico_dcos.steps import STEP_NAMES

# A report's stored fields: what the installer finds is a few short lines (detect.py).
MAX_FOUND_ITEMS = 16
MAX_FOUND_CHARS = 256
REPORT_FIELDS = {"agent_id", "step", "calico_present", "found"}
FAILURE_FIELDS = {"agent_id", "step", "task_id", "failed", "exit_code", "host_caused", "reason"}
WARNING_FIELDS = {"agent_id", "step", "task_id", "warning"}
MAX_REASON_CHARS = 1100  # the installer sends at most 1,024 (installer/report.py)
MAX_TASK_ID_CHARS = 256


class SchedulerView(Protocol):
    counters: Mapping[str, int]  # offers received, and Mesos calls by type
    store: Any  # the StateStore: its `writes` and `bytes_written` feed /metrics

    def convergence_seconds(self) -> float | None: ...
    def health(self) -> tuple[str, list[str]]: ...  # ("healthy"|"waiting"|"broken", reasons)
    def framework_id(self) -> str | None: ...
    def artifact(self, name: str) -> Path | None: ...
    def report(self, agent_id: str, report: dict) -> None: ...
    def report_authorized(self, agent_id: str, token: str) -> bool: ...
    def plan_view(self) -> dict: ...
    def summary(self) -> dict: ...
    def agent_records(self) -> dict[str, dict]: ...
    # what the plan does, in words ("" when it says nothing more than the command)
    def command(self, name: str, agent_id: str | None = None, step: str | None = None) -> str: ...


VIEW = web.AppKey("view", SchedulerView)
# Marathon counts 200-399 as a passing health check (mesosphere/marathon
# docs/docs/health-checks.md), so "waiting" passes: restarting a scheduler that waits on a
# master failover or a leader lock cures nothing. "broken" fails (the scheduler exits too).
HEALTH_CODES = {"healthy": 200, "waiting": 202, "broken": 503}


def build_app(view: SchedulerView, token: str | None = None) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[limit_request_size])
    app[VIEW] = view
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/state/frameworkId", framework_id)
    app.router.add_get("/v1/artifacts/{name}", artifact)
    app.router.add_post("/v1/agents/{agent_id}/report", report)
    add_operator_routes(app, view, token)
    return app


async def health(request: web.Request) -> web.Response:
    """Marathon's health check: 200 healthy (subscribed), 202 waiting (for the leader lock or
    a Mesos master), 503 broken; `{"status", "healthy", "reasons"}`."""
    status, reasons = request.app[VIEW].health()
    body = {"status": status, "healthy": status == "healthy", "reasons": reasons}
    return web.json_response(body, status=HEALTH_CODES[status])


async def framework_id(request: web.Request) -> web.Response:
    """dcos-commons' `GET /v1/state/frameworkId`: `["<id>"]`, or 404 when there is none
    (mesosphere/dcos-commons `sdk/scheduler/.../http/queries/StateQueries.java`). DC/OS'
    package manager reads it before an uninstall and again until the plan is complete, and
    takes a 404 (the state wiped) as done (dcos/cosmos `ServiceUninstaller.scala`)."""
    value = await call_view(request.app[VIEW].framework_id)  # 503 while starting
    if value is None:
        raise web.HTTPNotFound(text="no framework ID\n")
    return web.json_response([value])


async def artifact(request: web.Request) -> web.StreamResponse:
    """Files agents fetch (the installer zipapp, and in `local` the stand-ins)."""
    path = request.app[VIEW].artifact(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text=f"no artifact {request.match_info['name']}\n")
    return web.FileResponse(path)


async def report(request: web.Request) -> web.Response:
    """The installer on an agent says it already runs Calico by other means.

    401 without a bearer credential, 403 with one that is not this agent's report token,
    413 for a body over `MAX_REQUEST_BYTES`, 400 for a body `parse_report` refuses; only
    then does the report reach the plan."""
    agent_id = request.match_info["agent_id"]
    view = request.app[VIEW]
    token = bearer_token(request)
    if token is None:
        raise unauthorized("a report")
    if not await call_view(view.report_authorized, agent_id, token):
        raise web.HTTPForbidden(text=f"not the report token of agent {agent_id}\n")
    body = await read_json_object(request)
    try:
        parsed = parse_report(agent_id, body)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    await call_view(view.report, agent_id, parsed)
    return web.json_response({"agent_id": agent_id, "accepted": True}, status=202)


def parse_report(agent_id: str, body: dict) -> dict:
    """A "Calico already present" report (`parse_present`), a failure report
    (`parse_failure`) or a warning (`parse_warning`), as the plan takes it. Raises ValueError
    saying what is wrong."""
    if body.get("failed") is True:
        return parse_failure(agent_id, body)
    if "warning" in body:
        return parse_warning(agent_id, body)
    return parse_present(agent_id, body)


def parse_warning(agent_id: str, body: dict) -> dict:
    """`{"agent_id", "step", "task_id", "warning"}` (CONTRACTS.md, "Agent-side installer"):
    the installer's task `task_id` ends well (exit 0) but left something not as the options
    want it (a cluster store someone else set). The plan shows the step done with it."""
    unknown = sorted(set(body) - WARNING_FIELDS)
    if unknown:
        raise ValueError(f"unknown report fields {unknown}: expected {sorted(WARNING_FIELDS)}")
    if body.get("agent_id") not in (None, "", agent_id):
        raise ValueError(f"the report's agent_id is not {agent_id!r}, the agent of the URL")
    if body.get("step") not in STEP_NAMES:
        raise ValueError(f"step {body.get('step')!r} is none of {list(STEP_NAMES)}")
    task_id, warning = body.get("task_id"), body.get("warning")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_TASK_ID_CHARS:
        raise ValueError(f"task_id: expected the task's ID (at most {MAX_TASK_ID_CHARS})")
    if not isinstance(warning, str) or not warning.strip() or len(warning) > MAX_REASON_CHARS:
        raise ValueError(f"warning: expected words, at most {MAX_REASON_CHARS} characters")
    return {
        "agent_id": agent_id,
        "step": body["step"],
        "task_id": task_id,
        "warning": redact_text(" ".join(warning.split())),
    }


def parse_failure(agent_id: str, body: dict) -> dict:
    """`{"agent_id", "step", "task_id", "failed": true, "exit_code", "host_caused", "reason"}`
    (CONTRACTS.md, "Agent-side installer"): why the installer's task `task_id` fails. The
    plan uses it only for that task, while it runs."""
    unknown = sorted(set(body) - FAILURE_FIELDS)
    if unknown:
        raise ValueError(f"unknown report fields {unknown}: expected {sorted(FAILURE_FIELDS)}")
    if body.get("agent_id") not in (None, "", agent_id):
        raise ValueError(f"the report's agent_id is not {agent_id!r}, the agent of the URL")
    if body.get("step") not in STEP_NAMES:
        raise ValueError(f"step {body.get('step')!r} is none of {list(STEP_NAMES)}")
    task_id, reason = body.get("task_id"), body.get("reason", "")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_TASK_ID_CHARS:
        raise ValueError(f"task_id: expected the failing task's ID (at most {MAX_TASK_ID_CHARS})")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"reason: expected a string of at most {MAX_REASON_CHARS} characters")
    if not isinstance(body.get("host_caused", False), bool):
        raise ValueError("host_caused: expected true or false")
    if not isinstance(body.get("exit_code", 0), int):
        raise ValueError("exit_code: expected an integer")
    return {
        "agent_id": agent_id,
        "step": body["step"],
        "task_id": task_id,
        "failed": True,
        "exit_code": body.get("exit_code", 0),
        "host_caused": body.get("host_caused", False),
        "reason": " ".join(reason.split()),
    }


def parse_present(agent_id: str, body: dict) -> dict:
    """The report as the plan stores it, `{"step", "calico_present": True, "found"}`.

    Shape (CONTRACTS.md, "Agent-side installer"): `{"agent_id", "step", "calico_present":
    true, "found": [str, …]}`; `agent_id`, if known, is the one of the URL; `step` one of the
    catalog's; at most `MAX_FOUND_ITEMS` findings of at most `MAX_FOUND_CHARS` characters.
    Raises ValueError saying what is wrong.
    """
    unknown = sorted(set(body) - REPORT_FIELDS)
    if unknown:
        raise ValueError(f"unknown report fields {unknown}: expected {sorted(REPORT_FIELDS)}")
    if body.get("calico_present") is not True:
        raise ValueError('expected {"calico_present": true, …}')
    if body.get("agent_id") not in (None, "", agent_id):  # "": the installer could not tell
        raise ValueError(f"the report's agent_id is not {agent_id!r}, the agent of the URL")
    step = body.get("step")
    if step not in STEP_NAMES:
        raise ValueError(f"step {step!r} is none of {list(STEP_NAMES)}")
    found = body.get("found", [])
    if not isinstance(found, list) or not all(isinstance(item, str) for item in found):
        raise ValueError("found: expected a list of strings")
    if len(found) > MAX_FOUND_ITEMS or any(len(item) > MAX_FOUND_CHARS for item in found):
        raise ValueError(
            f"found: at most {MAX_FOUND_ITEMS} items of at most {MAX_FOUND_CHARS} characters"
        )
    return {"agent_id": agent_id, "step": step, "calico_present": True, "found": found}


class ApiServer:
    """The app on a background thread; `port` is the bound one (0 picks a free port); HTTPS
    with `ssl_context` (the devcluster's strict mode serves its IAM so)."""

    def __init__(
        self,
        app: web.Application,
        host: str = "0.0.0.0",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.app, self.host, self.port = app, host, port
        self.ssl_context = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api", daemon=True)
        self._runner = web.AppRunner(app, access_log=None)

    def start(self) -> ApiServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._runner.cleanup()
        await cancel_the_rest()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
