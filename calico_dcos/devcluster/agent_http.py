"""Each process-executor agent's own HTTP endpoint: `/files/read` on the address its offers'
`url` names, as a Mesos agent serves its sandboxes to the web UI, `dcos task log` and
schedulers.

What it follows (apache/mesos):

- One listener per agent, on the agent's own loopback address, port 5051 (the agent's
  default `--port`) or, when another program holds it there, a free port; `agent.port` is
  what the master's offers carry in `url.address.port` (src/master/master.cpp,
  `Master::offer`, builds `url` from the agent's libprocess address).
- `GET /files/read?path=&offset=&length=` (src/files/files.cpp, `FilesProcess::__read` and
  `_read`): 400 "Expecting 'path=value' in query." without a path; 400 for an offset or a
  length that is not a number or is below -1; `offset=-1` (or none) answers the file's size,
  `{"data": "", "offset": <size>}`; otherwise `{"data": <at most length bytes, at most 16
  pages>, "offset": <offset>}`, and an offset at or past the end answers no data; 404 for a
  path not attached; 400 "Cannot read a directory."
- The paths attached: each executor's latest run at `/frameworks/<framework_id>/executors/
  <executor_id>/runs/latest` (src/slave/paths.cpp, `getExecutorVirtualPath`; attached in
  src/slave/slave.cpp `Framework::launchExecutor`), a command task's executor ID being its
  task ID (`Slave::getExecutorInfo`). Here that is the task's devcluster sandbox
  (`ProcessExecutor.sandbox_for`); a path may not leave it.
- Strict mode: HTTPS with a certificate for the agent's address from the devcluster's CA,
  and every request needs a valid DC/OS authentication token (`Iam.verify`), else 401; a
  principal the authorizer does not let access sandboxes (ACCESS_SANDBOX, `authorizer.py`)
  is answered 403 (src/files/files.cpp `FilesProcess::__read`: `Forbidden`), timeline event
  `forbidden`.
  Without strict mode nothing is asked (a Mesos agent's `--authenticate_http_readonly`
  defaults to false).
"""

from __future__ import annotations

import functools
import json
import mmap
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from calico_dcos.devcluster.agent import AGENT_PORT
from calico_dcos.devcluster.iam import InvalidToken

if TYPE_CHECKING:
    from calico_dcos.devcluster.agent import Agent
    from calico_dcos.devcluster.master import Master

MAX_READ_BYTES = 16 * mmap.PAGESIZE  # files.cpp: "Cap the read length at 16 pages."
LATEST_RUN = "/frameworks/{framework_id}/executors/{executor_id}/runs/latest"
# (agent ID, framework ID, executor ID) -> the run's directory, or None
Sandboxes = Callable[[str, str, str], Path | None]


def bind_agent_socket(ip: str, port: int = AGENT_PORT) -> socket.socket:
    """A listening socket on `ip:port`, or on a free port of `ip` when that one is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ip, port))
    except OSError:
        sock.bind((ip, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def resolve(path: str, agent_id: str, sandboxes: Sandboxes) -> Path | None:
    """The real file behind a virtual path, None when nothing is attached there."""
    parts = path.strip("/").split("/")
    if len(parts) < 6 or parts[0] != "frameworks" or parts[2] != "executors":
        return None
    if parts[4:6] != ["runs", "latest"]:
        return None
    root = sandboxes(agent_id, parts[1], parts[3])
    if root is None:
        return None
    target = root.joinpath(*parts[6:]).resolve()
    if not target.is_relative_to(root.resolve()) or not target.exists():
        return None
    return target


def _number(query, name: str) -> int | None | web.Response:
    """The parameter as an integer ≥ -1, None if absent, or the 400 Mesos answers."""
    if name not in query:
        return None
    try:
        value = int(query[name])
    except ValueError:
        return web.Response(status=400, text=f"Failed to parse {name}: {query[name]!r}.\n")
    if value < -1:
        return web.Response(status=400, text=f"Negative {name} provided: {value}.\n")
    return value


def read_answer(target: Path, offset: int, length: int | None) -> dict:
    """`_read` and `__read`'s answer for a file (offset -1: only the size)."""
    size = target.stat().st_size
    if offset == -1:
        return {"data": "", "offset": size}
    if offset >= size or length == 0:
        return {"data": "", "offset": offset}
    length = min(size - offset if length is None else length, MAX_READ_BYTES)
    with open(target, "rb") as handle:
        handle.seek(offset)
        data = handle.read(length)
    return {"data": data.decode("utf-8", "replace"), "offset": offset}


class AgentEndpoints:
    """The agents' listeners; `open(agent)` from the master's loop (on `add_agent`)."""

    def __init__(
        self,
        master: Master,
        sandboxes: Sandboxes,
        tls: Callable[[str], ssl.SSLContext] | None = None,
    ) -> None:
        self.master = master
        self.sandboxes = sandboxes
        self.tls = tls  # strict mode: a server context for an agent's address
        self._runners: list[web.AppRunner] = []
        self._sockets: list[socket.socket] = []

    def open(self, agent: Agent) -> None:
        """Bind the agent's socket now (its port goes into the offers at once), then serve."""
        sock = bind_agent_socket(agent.ip)
        self._sockets.append(sock)
        agent.port = sock.getsockname()[1]
        self.master.spawn(self._serve(agent, sock))

    async def _serve(self, agent: Agent, sock: socket.socket) -> None:
        app = web.Application()
        app.router.add_get("/files/read", functools.partial(self._read, agent))
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runners.append(runner)
        context = self.tls(agent.ip) if self.tls else None
        await web.SockSite(runner, sock, ssl_context=context).start()

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for sock in self._sockets:  # also those whose serving had not started
            sock.close()
        self._sockets.clear()

    async def _read(self, agent: Agent, request: web.Request) -> web.Response:
        principal = None
        if self.master.iam is not None:
            try:
                principal = self.master.iam.verify(request.headers.get("Authorization"))
            except InvalidToken as exc:
                self.master.record("unauthenticated", agent_id=agent.agent_id, message=str(exc))
                return web.Response(status=401, text="401 Unauthorized.")
        if not self.master.authorizer.allows(principal, "ACCESS_SANDBOX"):
            self.master.record("forbidden", agent_id=agent.agent_id, principal=principal)
            return web.Response(status=403)  # files.cpp: `Forbidden(error.message)`, no words
        path = request.query.get("path", "")
        if not path:
            return web.Response(status=400, text="Expecting 'path=value' in query.\n")
        offset, length = _number(request.query, "offset"), _number(request.query, "length")
        for bad in (offset, length):
            if isinstance(bad, web.Response):
                return bad
        target = resolve(path, agent.agent_id, self.sandboxes)
        if target is None:
            return web.Response(status=404)
        if target.is_dir():
            return web.Response(status=400, text="Cannot read a directory.\n")
        offset = -1 if offset is None else offset
        length = None if length in (None, -1) else length
        self.master.record("files_read", agent_id=agent.agent_id, path=path, offset=offset)
        answer = read_answer(target, offset, length)  # type: ignore[arg-type]
        return web.Response(text=json.dumps(answer), content_type="application/json")
