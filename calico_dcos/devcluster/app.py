"""The aiohttp application a master port serves: scheduler API, version, state, controls."""

from __future__ import annotations

from aiohttp import web

from calico_dcos.devcluster import faults, protocol, scheduler_api
from calico_dcos.devcluster.master import Master
from calico_dcos.devcluster.state import master_state


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
    return web.json_response(master_state(request.app[scheduler_api.MASTER_KEY]))


def make_app(
    master: Master, port_cell: list[int], failover: faults.FailoverHook
) -> web.Application:
    """`port_cell[0]` is this app's own port once bound: a port that is no longer the
    master's leading port answers scheduler calls with 307, as a non-leading master does."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[scheduler_api.MASTER_KEY] = master
    app[scheduler_api.PORT_KEY] = port_cell
    app[faults.MASTER] = master
    app[faults.FAILOVER] = [failover]
    app.router.add_route("*", "/api/v1/scheduler", scheduler_api.scheduler)
    app.router.add_get("/version", version)
    app.router.add_get("/master/state", state)
    app.router.add_get("/state", state)
    app.router.add_get("/master/state.json", state)
    app.add_routes(faults.routes)
    return app
