"""The operator's routes: the plan API (dcos-commons' shape), agents, options, metrics, the page.

`add_operator_routes(app, view, token)` adds them to the app `api.build_app` makes. The view
is the scheduler's read and command interface (`api.SchedulerView`); every call into it may
take the scheduler's lock, so handlers run it on a worker thread, never on the event loop.

The plan's mutating endpoints change what the scheduler does on every agent, so when a token
is configured they need `Authorization: Bearer <token>` (scheme in any case, the token
compared in constant time); the GET routes are open.

Answers that list agents are paged, so that none grows with the cluster (a phase is ~1 KB:
the whole plan of 50,000 agents would be ~50 MB in one answer): `/v1/agents`, and the
phases of `/v1/plan` and `/v1/status`, hold at most `PAGE_LIMIT` of them, from `?offset=`
(default 0) up to `?limit=` (default and most `PAGE_LIMIT`). The plan's `status` and
`errors` still speak for every phase, and `phases_total`, `phases_complete`, `phases_offset`
and `phases_limit` say where the page lies (fields dcos-commons' plan has not; its clients
ignore them), and `degraded`, `progressing`, `forced_steps`, `acknowledged_warnings` and
`message` are the summary's (as `/v1/status` says them).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
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
PAGE_LIMIT = 500  # agents or phases in one answer: ~0.8 MB of records, ~0.45 MB of phases
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


def page_of(request: web.Request) -> tuple[int, int]:
    """(offset, limit) from `?offset=&limit=`; 400 naming the parameter when it is not a
    whole number in range."""
    values = []
    for name, default, low, high in (
        ("offset", 0, 0, None),
        ("limit", PAGE_LIMIT, 1, PAGE_LIMIT),
    ):
        text = request.query.get(name, "")
        try:
            value = int(text) if text else default
        except ValueError:
            value = -1
        if value < low or (high is not None and value > high):
            most = f" and at most {high}" if high is not None else ""
            raise web.HTTPBadRequest(
                text=f"{name}={text!r}: expected a whole number from {low}{most}\n"
            )
        values.append(value)
    return values[0], values[1]


def paged_plan(plan: dict, offset: int, limit: int, summary: Mapping[str, Any]) -> dict:
    """The plan with `limit` of its phases from `offset`, and where they lie among all; and
    from `summary` (`core.views.summary_doc`): `degraded` (a step failing now, a launch
    stalled, a step done with a warning no operator acknowledged), `progressing` (it moves
    without the operator), `forced_steps` (steps COMPLETE only by an operator's
    force-complete), `acknowledged_warnings` (steps done with a warning an operator
    acknowledged) and its `message` ("4 of 4 agents done; 1 step force-completed (…)"), so
    that `/v1/plan` says them as `/v1/status` and `calico-dcos status` do (and `plan show`'s
    exit status can tell "still going" from "needs a person")."""
    phases = plan["phases"]
    return {
        **plan,
        "degraded": summary["degraded"],
        "progressing": summary.get("progressing", False),
        "forced_steps": summary.get("forced_steps", 0),
        "acknowledged_warnings": summary.get("acknowledged_warnings", 0),
        "message": summary["message"],
        "phases": phases[offset : offset + limit],
        "phases_total": len(phases),
        "phases_complete": sum(1 for phase in phases if phase["status"] == "COMPLETE"),
        "phases_offset": offset,
        "phases_limit": limit,
    }


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


def scheduler_warnings(view: Any) -> list[str]:
    """What the scheduler warns of now (`Scheduler.warnings`: what it learned at run time,
    e.g. that the master refused GET_FLAGS); none from a view without them."""
    warnings = getattr(view, "warnings", None)
    return list(warnings()) if callable(warnings) else []


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
        """Everything the status page shows, in one consistent read (a page of phases)."""
        return web.json_response(await call_view(self._status, *page_of(request)))

    def _status(self, offset: int = 0, limit: int = PAGE_LIMIT) -> dict:
        options = getattr(self.view, "options", None)
        summary = self.view.summary()
        return {
            "service": options["service"]["name"] if options is not None else "calico",
            "summary": summary,
            "plan": paged_plan(self.view.plan_view(), offset, limit, summary),
            "warnings": warnings_for(options) + scheduler_warnings(self.view),
        }

    async def plans(self, request: web.Request) -> web.Response:
        return web.json_response(["deploy"])

    async def plan(self, request: web.Request) -> web.Response:
        offset, limit = page_of(request)
        plan = await call_view(self._plan, offset, limit)
        return web.json_response(plan, status=plan_http_status(plan))

    def _plan(self, offset: int, limit: int) -> dict:
        return paged_plan(self.view.plan_view(), offset, limit, self.view.summary())

    def command_handler(self, name: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            self._authorize(request)
            return await self._command(name, request)

        return handler

    def _authorize(self, request: web.Request) -> None:
        if not self.token:
            return
        given = bearer_token(request)
        where = " (the token in the scheduler's service.api_token_file)"
        if given is None:
            raise unauthorized("this endpoint", where=where)
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.token.encode()):
            raise unauthorized("this endpoint", refused=True, where=where)

    async def _command(self, name: str, request: web.Request) -> web.Response:
        phase, step = request.query.get("phase"), request.query.get("step")
        if name in NEEDS_STEP and not (phase and step):
            raise web.HTTPBadRequest(text=f"{name} needs ?phase=<agent>&step=<step>\n")
        agent_id = find_agent(await call_view(self.view.agent_records), phase) if phase else None
        try:
            said = await call_view(self.view.command, name, agent_id, step)
        except KeyError as exc:
            raise web.HTTPNotFound(text=f"{exc.args[0] if exc.args else exc}\n") from None
        target = " ".join(f"{k}={v}" for k, v in (("phase", phase), ("step", step)) if v)
        # dcos-commons answers `{"message": "Received cmd: …"}` (PlansQueries.getCommandResult);
        # what the plan does follows, so that the operator reads whether a task was killed
        message = f"Received cmd: {name} {target}".rstrip()
        return web.json_response({"message": f"{message}: {said}" if said else message})

    async def agents(self, request: web.Request) -> web.Response:
        """`{"agents": [record…], "total", "offset"}`: a page of records by hostname."""
        return web.json_response(await call_view(self._agents, *page_of(request)))

    def _agents(self, offset: int, limit: int) -> dict:
        records = self.view.agent_records()
        ordered = sorted(records.values(), key=lambda r: (r.get("hostname", ""), r["agent_id"]))
        page = ordered[offset : offset + limit]
        return {"agents": page, "total": len(ordered), "offset": offset}

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
