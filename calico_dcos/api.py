"""The scheduler's HTTP API (aiohttp): artifacts for agents, installer reports, health, and
the operator's routes (`operator_api.py`: plan, agents, options, metrics, status page).

`build_app(view, token)` is the one place the routes are made; `view` is the scheduler's
small read and command interface (`SchedulerView`), so the API never reaches into the plan
itself. `token` guards the plan's mutating endpoints (`service.api_token_file`).
`ApiServer` runs the app on its own thread and event loop, next to pymesos' threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from calico_dcos.loops import cancel_the_rest
from calico_dcos.operator_api import add_operator_routes


class SchedulerView(Protocol):
    counters: Mapping[str, int]  # offers received, and Mesos calls by type
    store: Any  # the StateStore: its `writes` and `bytes_written` feed /metrics

    def convergence_seconds(self) -> float | None: ...
    def health(self) -> tuple[str, list[str]]: ...  # ("healthy"|"waiting"|"broken", reasons)
    def framework_id(self) -> str | None: ...
    def artifact(self, name: str) -> Path | None: ...
    def report(self, agent_id: str, report: dict) -> None: ...
    def plan_view(self) -> dict: ...
    def summary(self) -> dict: ...
    def agent_records(self) -> dict[str, dict]: ...
    def command(self, name: str, agent_id: str | None = None, step: str | None = None) -> None: ...


VIEW = web.AppKey("view", SchedulerView)
# Marathon counts 200-399 as a passing health check (mesosphere/marathon
# docs/docs/health-checks.md), so "waiting" passes: restarting a scheduler that waits on a
# master failover or a leader lock cures nothing. "broken" fails (the scheduler exits too).
HEALTH_CODES = {"healthy": 200, "waiting": 202, "broken": 503}


def build_app(view: SchedulerView, token: str | None = None) -> web.Application:
    app = web.Application()
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
    try:
        value = await asyncio.to_thread(request.app[VIEW].framework_id)
    except RuntimeError as exc:  # still starting
        raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None
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
    """The installer says an agent already runs Calico by other means."""
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected a JSON object\n") from None
    if not isinstance(body, dict) or body.get("calico_present") is not True:
        raise web.HTTPBadRequest(text='expected {"calico_present": true, …}\n')
    agent_id = request.match_info["agent_id"]
    await asyncio.to_thread(request.app[VIEW].report, agent_id, body)
    return web.json_response({"agent_id": agent_id, "accepted": True}, status=202)


class ApiServer:
    """The app on a background thread; `port` is the bound one (0 picks a free port)."""

    def __init__(self, app: web.Application, host: str = "0.0.0.0", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api", daemon=True)
        self._runner = web.AppRunner(app, access_log=None)

    def start(self) -> ApiServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._runner.cleanup()
        await cancel_the_rest()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
