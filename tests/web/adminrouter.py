"""A stand-in for DC/OS Admin Router's `/service/<name>/` endpoint, for tests.

What it does is what Admin Router's documentation says the real one does (dcos/dcos
`packages/adminrouter/extra/src/README.md`, "Service Endpoint" and "Recommended way to expose
services"), and nothing more:

- `/service/<name>` redirects to `/service/<name>/`;
- `/service/<name>/<url>` is proxied to the task's `DCOS_SERVICE_SCHEME://host:port` with the
  `/service/<name>` prefix stripped (its default: `DCOS_SERVICE_REWRITE_REQUEST_URLS` unset);
- a redirect from the service is rewritten to stay under the prefix;
- an upstream that does not answer is a 502; anything else is not the service's: 404.

So a page that uses absolute URLs (`/static/…`, `fetch("/v1/…")`) breaks here as it breaks on
a cluster. Every path asked for is recorded in `paths`, for the tests to read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import aiohttp
from aiohttp import web

from calico_dcos.api import ApiServer

SERVICES = web.AppKey("services", dict)
PATHS = web.AppKey("paths", list)
SESSION = web.AppKey("session", aiohttp.ClientSession)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def build_app(services: Mapping[str, str]) -> web.Application:
    """`services`: service name -> base URL (`http://127.0.0.1:PORT`)."""
    app = web.Application()
    app[SERVICES] = dict(services)
    app[PATHS] = []
    app.on_startup.append(_open_session)
    app.on_cleanup.append(_close_session)
    app.router.add_route("*", "/service/{name}", _add_slash)
    app.router.add_route("*", "/service/{name}/{url:.*}", _proxy)
    app.middlewares.append(_record)
    return app


@web.middleware
async def _record(request: web.Request, handler):
    request.app[PATHS].append(request.path_qs)
    return await handler(request)


async def _open_session(app: web.Application) -> None:
    app[SESSION] = aiohttp.ClientSession(auto_decompress=False)


async def _close_session(app: web.Application) -> None:
    await app[SESSION].close()


def _upstream(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in request.app[SERVICES]:
        raise web.HTTPNotFound(text=f"no service {name!r}\n")
    return request.app[SERVICES][name]


async def _add_slash(request: web.Request) -> web.Response:
    _upstream(request)
    raise web.HTTPTemporaryRedirect(f"/service/{request.match_info['name']}/")


async def _proxy(request: web.Request) -> web.Response:
    base, name = _upstream(request), request.match_info["name"]
    url = f"{base}/{request.match_info['url']}"
    if request.query_string:
        url += "?" + request.query_string
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    try:
        async with request.app[SESSION].request(
            request.method, url, headers=headers, data=await request.read(), allow_redirects=False
        ) as answer:
            body = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
    except aiohttp.ClientError as exc:  # nginx: the upstream is down
        raise web.HTTPBadGateway(text=f"{exc}\n") from None
    location = out.get("Location", "")
    if location.startswith("/"):
        out["Location"] = f"/service/{name}{location}"
    return web.Response(status=answer.status, body=body, headers=out)


class AdminRouter:
    """The proxy on its own thread; `url` is its base, `paths` what browsers asked it for."""

    def __init__(self, services: Mapping[str, str]) -> None:
        self.app = build_app(services)
        self.server = ApiServer(self.app, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def paths(self) -> list[str]:
        return list(self.app[PATHS])

    def service_url(self, name: str) -> str:
        return f"{self.url}/service/{name}/"


@contextlib.contextmanager
def admin_router(services: Mapping[str, str]) -> Iterator[AdminRouter]:
    router = AdminRouter(services)
    router.server.start()
    try:
        yield router
    finally:
        router.server.stop()
