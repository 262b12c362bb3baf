"""The operator's routes: the plan API (dcos-commons' shape), agents, options, metrics, the page.

`add_operator_routes(app, view, token)` adds them to the app `api.build_app` makes. The view
is the scheduler's read and command interface (`api.SchedulerView`); every call into it may
take the scheduler's lock, so handlers run it on a worker thread, never on the event loop.

The plan's mutating endpoints change what the scheduler does on every agent, so when a token
is configured they need `Authorization: Bearer <token>` (scheme in any case, the token
compared in constant time); the GET routes are open.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from calico_dcos import matrix
from calico_dcos.api_guard import bearer_token, call_view, unauthorized
from calico_dcos.metrics import registry_for
from calico_dcos.options import node_extra_env, redacted

STATIC = Path(__file__).with_name("static")
PLAN_STATUS_CODES = {"COMPLETE": 200, "ERROR": 417}
COMMANDS = ("interrupt", "continue", "restart", "force-complete")
NEEDS_STEP = ("restart", "force-complete")
RP_FILTER_WARNING = (
    "node.ignore_loose_rpf is on: Felix runs although DC/OS sets rp_filter to loose, so a "
    "container with CAP_NET_RAW can spoof its source IP. To close this, set rp_filter to "
    "strict (1) on the agents where DC/OS networking allows it, then turn the option off."
)


def add_operator_routes(app: web.Application, view: Any, token: str | None) -> None:
    """The plan, agents, options, metrics and status page routes, on `app`."""
    routes = OperatorRoutes(view, token)
    app.router.add_get("/", routes.page)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/v1/status", routes.status)
    app.router.add_get("/v1/plans", routes.plans)
    for prefix in ("/v1/plan", "/v1/plans/deploy"):
        app.router.add_get(prefix, routes.plan)
        for name in COMMANDS:
            app.router.add_post(f"{prefix}/{name}", routes.command_handler(name))
    app.router.add_get("/v1/agents", routes.agents)
    app.router.add_get("/v1/agents/{agent}", routes.agent)
    app.router.add_get("/v1/options", routes.options)
    app.router.add_get("/metrics", routes.metrics)


def plan_http_status(plan: dict) -> int:
    """dcos-commons: 200 when complete, 417 with errors, 202 while in progress."""
    if plan.get("errors"):
        return 417
    return PLAN_STATUS_CODES.get(plan.get("status", ""), 202)


# Felix's boolean words for true (projectcalico/calico felix/config/param_types.go,
# BoolParam.Parse, case-insensitive); any other value leaves the setting off.
FELIX_TRUE = ("true", "1", "yes", "y", "t")


def felix_ignores_loose_rpf(options: Any) -> bool:
    """Whether calico-node gets FELIX_IGNORELOOSERPF on: `node.extra_env` comes last in its
    environment and wins over `node.ignore_loose_rpf` (steps.node_environment)."""
    given = node_extra_env(options).get("FELIX_IGNORELOOSERPF")
    if given is None:
        return bool(options["node"]["ignore_loose_rpf"])
    return given.strip().lower() in FELIX_TRUE


def warnings_for(options: Any) -> list[str]:
    """What the page, `calico-dcos status` and the log warn about, for these options: the
    rp_filter warning only where FELIX_IGNORELOOSERPF takes effect, Felix before v3.12
    (calico-2.6); later Felix checks workload source addresses itself (matrix.py)."""
    if (
        options is not None
        and felix_ignores_loose_rpf(options)
        and not matrix.felix_checks_rpf_itself(options)
    ):
        return [RP_FILTER_WARNING]
    return []


def find_agent(records: dict[str, dict], phase: str) -> str:
    """A phase is named by its agent ID or hostname (as `calico-dcos plan` shows it)."""
    if phase in records:
        return phase
    matches = [aid for aid, rec in records.items() if rec.get("hostname") == phase]
    if not matches:
        raise web.HTTPNotFound(text=f"no agent {phase!r} in the plan\n")
    if len(matches) > 1:
        raise web.HTTPConflict(text=f"several agents are named {phase!r}: use an agent ID\n")
    return matches[0]


class OperatorRoutes:
    def __init__(self, view: Any, token: str | None) -> None:
        self.view = view
        self.token = token
        self.registry = registry_for(view)

    async def page(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def status(self, request: web.Request) -> web.Response:
        """Everything the status page shows, in one consistent read."""
        doc = await call_view(self._status)
        return web.json_response(doc)

    def _status(self) -> dict:
        options = getattr(self.view, "options", None)
        return {
            "service": options["service"]["name"] if options is not None else "calico",
            "summary": self.view.summary(),
            "plan": self.view.plan_view(),
            "warnings": warnings_for(options),
        }

    async def plans(self, request: web.Request) -> web.Response:
        return web.json_response(["deploy"])

    async def plan(self, request: web.Request) -> web.Response:
        plan = await call_view(self.view.plan_view)
        return web.json_response(plan, status=plan_http_status(plan))

    def command_handler(self, name: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            self._authorize(request)
            return await self._command(name, request)

        return handler

    def _authorize(self, request: web.Request) -> None:
        if not self.token:
            return
        given = bearer_token(request)
        if given is None or not hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), self.token.encode()
        ):
            raise unauthorized("this endpoint")

    async def _command(self, name: str, request: web.Request) -> web.Response:
        phase, step = request.query.get("phase"), request.query.get("step")
        if name in NEEDS_STEP and not (phase and step):
            raise web.HTTPBadRequest(text=f"{name} needs ?phase=<agent>&step=<step>\n")
        agent_id = find_agent(await call_view(self.view.agent_records), phase) if phase else None
        try:
            await call_view(self.view.command, name, agent_id, step)
        except KeyError as exc:
            raise web.HTTPNotFound(text=f"{exc.args[0] if exc.args else exc}\n") from None
        target = " ".join(f"{k}={v}" for k, v in (("phase", phase), ("step", step)) if v)
        return web.json_response({"message": f"Received cmd: {name} {target}".rstrip()})

    async def agents(self, request: web.Request) -> web.Response:
        records = await call_view(self.view.agent_records)
        ordered = sorted(records.values(), key=lambda r: (r.get("hostname", ""), r["agent_id"]))
        return web.json_response({"agents": ordered})

    async def agent(self, request: web.Request) -> web.Response:
        records = await call_view(self.view.agent_records)
        return web.json_response(records[find_agent(records, request.match_info["agent"])])

    async def options(self, request: web.Request) -> web.Response:
        """The effective options, passwords in URLs masked (secret options are file paths)."""
        return web.json_response(await call_view(self._options))

    def _options(self) -> dict:
        options = getattr(self.view, "options", None)
        if options is None:
            raise RuntimeError("the scheduler has no options yet")
        return redacted(options)

    async def metrics(self, request: web.Request) -> web.Response:
        body = await call_view(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
