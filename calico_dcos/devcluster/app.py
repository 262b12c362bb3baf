"""The aiohttp application a master port serves: scheduler API, version, state, controls."""

from __future__ import annotations

import json

import orjson
from aiohttp import web

from calico_dcos.devcluster import faults, protocol, scheduler_api
from calico_dcos.devcluster.master import Master
from calico_dcos.devcluster.state import get_flags, get_frameworks, master_slaves, master_state

CLIENT_MAX_SIZE = 64 * 1024 * 1024  # bytes of a request body (aiohttp answers 413 above)


def json_answer(document: dict) -> web.Response:
    """`web.json_response(document)` (the same `Content-Type`), the text by orjson as the
    event stream's is (`protocol.recordio`; the differences from the master's text are in
    docs/DEVCLUSTER_VS_MESOS.md): `/master/state` and `/master/slaves` grow with the
    cluster, ~1.3 KB an agent, and the standard library's encoder took ~4 % of the
    devcluster's CPU at 1,000 agents for the one `/master/slaves` a subscription reads.
    What orjson cannot write (an integer past 64 bits) the standard library's does."""
    try:
        body = orjson.dumps(document)
    except TypeError:  # orjson.JSONEncodeError is one
        body = json.dumps(document).encode()
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def version(request: web.Request) -> web.Response:
    """pymesos parses the version with int() per part, so it must be purely numeric."""
    return web.json_response(
        {
            "version": protocol.MESOS_VERSION,
            "build_date": "2026-01-01 00:00:00",
            "build_time": 1767225600.0,
            "build_user": "devcluster",
            "git_sha": "devcluster",
        }
    )


async def state(request: web.Request) -> web.Response:
    return json_answer(master_state(request.app[scheduler_api.MASTER_KEY]))


async def slaves(request: web.Request) -> web.Response:
    """`/master/slaves` (state.master_slaves), authenticated as the scheduler API is."""
    master = request.app[scheduler_api.MASTER_KEY]
    try:
        scheduler_api.authenticate(master, request.headers)
    except scheduler_api.Refusal as refusal:
        return refusal.response
    return json_answer(master_slaves(master, request.query.get("slave_id")))


async def operator(request: web.Request) -> web.Response:
    """The operator API (`POST /api/v1`, apache/mesos src/master/http.cpp `Master::Http::api`):
    JSON only, and of its calls only `GET_FRAMEWORKS` (state.get_frameworks) and `GET_FLAGS`
    (state.get_flags; 403 "403 Forbidden." when the authorizer denies the principal
    VIEW_FLAGS, as `getFlags` answers: `Master.authorizer`); any other is answered 501,
    naming the devcluster, rather than guessed at."""
    master = request.app[scheduler_api.MASTER_KEY]
    try:
        principal = scheduler_api.authenticate(master, request.headers)
    except scheduler_api.Refusal as refusal:
        return refusal.response
    if request.method != "POST":
        return web.Response(status=405, text=f"Expecting 'POST', received '{request.method}'")
    if request.headers.get("Content-Type") != "application/json":
        return web.Response(status=415, text="the devcluster's operator API speaks JSON only")
    try:
        call = await request.json()
    except ValueError as exc:
        return web.Response(status=400, text=f"Failed to parse body into JSON: {exc}")
    kind = call.get("type") if isinstance(call, dict) else None
    if kind == "GET_FLAGS":
        if not master.authorizer.allows(principal, "VIEW_FLAGS"):
            return web.Response(status=403, text="403 Forbidden.")
        return web.json_response(get_flags(master))
    if kind != "GET_FRAMEWORKS":
        return web.Response(status=501, text=f"the devcluster does not serve {kind!r} calls")
    return web.json_response(get_frameworks(master, principal))


def make_app(
    master: Master, port_cell: list[int], failover: faults.FailoverHook
) -> web.Application:
    """`port_cell[0]` is this app's own port once bound: a port that is no longer the
    master's leading port answers scheduler calls with 307, as a non-leading master does."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[scheduler_api.MASTER_KEY] = master
    app[scheduler_api.PORT_KEY] = port_cell
    app[faults.MASTER] = master
    app[faults.FAILOVER] = [failover]
    app.router.add_route("*", "/api/v1/scheduler", scheduler_api.scheduler)
    app.router.add_get("/version", version)
    app.router.add_get("/master/state", state)
    app.router.add_get("/state", state)
    app.router.add_get("/master/state.json", state)
    app.router.add_get("/master/slaves", slaves)
    app.router.add_route("*", "/api/v1", operator)
    app.add_routes(faults.routes)
    return app
