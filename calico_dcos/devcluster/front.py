"""A master port's HTTP front: plain scheduler calls are answered here, everything else by
aiohttp, on the same port and connection.

Why: a framework makes ~18 scheduler calls per agent it installs on (ACCEPT, ACKNOWLEDGE…),
each a small `POST /api/v1/scheduler` on a kept-alive connection, and aiohttp's own work per
request (its request and response objects, routing, a task per request) cost ~100 µs of
CPU each: as much as the rest of the master together (issue 17). Here such a request is
read and answered in `data_received`, through the same checks and calls as aiohttp's
handler (`scheduler_api.prepare`, `parse`, `answer`), with the same answer bytes as aiohttp
writes (status line, headers in its order, `Date`, `Server`).

What the front answers itself, and only that: `POST /api/v1/scheduler HTTP/1.1` with
a `Content-Length` (digits, once) and no `Transfer-Encoding`, `Expect`, `Upgrade` or
`Connection` other than `keep-alive`, an ASCII head of well-formed `name: value` lines (fewer
than `MAX_HEADERS`), and a call that is not SUBSCRIBE (whose answer is a stream). At the first
request that is anything else the connection, with every byte not yet answered, is handed to
aiohttp's `RequestHandler` (`_hand_over`), which parses that request again from its first
byte and keeps the connection from then on (what the front read of it had no effect:
`prepare` and `parse` change nothing unless they refuse, and a refusal is answered here).
What the front does not answer gets aiohttp's answers, checks and errors as before
(SUBSCRIBE, the other endpoints, a malformed request, a body over `MAX_BODY`). A connection
the front keeps is not closed when idle (aiohttp closes one idle for 75 s); it closes when
the client closes it or the port closes (`MasterPort.close`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from email.utils import formatdate
from http import HTTPStatus

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.tcp_helpers import tcp_keepalive

from calico_dcos.devcluster import scheduler_api
from calico_dcos.devcluster.app import CLIENT_MAX_SIZE
from calico_dcos.devcluster.master import Master

MAX_BODY = CLIENT_MAX_SIZE  # larger bodies go to aiohttp, which answers 413
MAX_HEAD = 8190  # longer heads go to aiohttp, whose own limits then apply (8190 a line)
MAX_HEADERS = 128  # more go to aiohttp, which refuses more than its `max_headers`, 128
_REQUEST_LINE = "POST /api/v1/scheduler HTTP/1.1"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110 §5.6.2)
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # in a header line (a tab is allowed)
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_TEXT = "text/plain; charset=utf-8"
_ERROR_TEXT = "500 Internal Server Error\n\nServer got itself in trouble"
log = logging.getLogger("aiohttp.server")  # where aiohttp logs a handler's exception


class MasterPort:
    """One listening port of the master: the front for its connections, and the aiohttp
    runner (its app set up, no site of its own) for those handed over."""

    def __init__(self, master: Master, runner: web.AppRunner, port_cell: list[int]) -> None:
        """`port_cell[0]`: this port once bound (`scheduler_api.prepare` redirects a call
        that came in on a port that no longer leads)."""
        self.master = master
        self.runner = runner
        self.port_cell = port_cell
        self.fronts: set[Front] = set()
        self._server: asyncio.Server | None = None
        self._date = (0, "")
        self._accepted = b""

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None) -> int:
        """Listen on `host:port` (0: any free port), with TLS when `tls`; the port bound."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Front(self), host, port, ssl=tls)
        self.port_cell[0] = self._server.sockets[0].getsockname()[1]
        return self.port_cell[0]

    async def close(self) -> None:
        """Stop listening and close every connection, the front's and aiohttp's."""
        if self._server is not None:
            self._server.close()
        for front in list(self.fronts):
            front.close()
        await self.runner.cleanup()

    def date(self) -> str:
        """The `Date` header's value, made once a second (as aiohttp does)."""
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
            self._accepted = b""
        return self._date[1]

    def accepted(self) -> bytes:
        """The answer to most calls, 202 with no body, made once a second (its `Date`)."""
        date = self.date()
        if not self._accepted:
            self._accepted = (
                f"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nDate: {date}\r\n"
                f"Server: {SERVER_SOFTWARE}\r\n\r\n"
            ).encode()
        return self._accepted


class Front(asyncio.Protocol):
    """One connection, until it is handed to aiohttp."""

    def __init__(self, port: MasterPort) -> None:
        self.port = port
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._request: tuple[dict[str, str], int, int] | None = None  # headers, body at, end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port.fronts.add(self)
        tcp_keepalive(transport)  # type: ignore[arg-type]  # as aiohttp's handler does

    def connection_lost(self, exc: Exception | None) -> None:
        self.port.fronts.discard(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        while self._buffer:
            if self._request is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD:
                        self._hand_over()
                    return
                headers = read_head(self._buffer[:end])
                length = _content_length(headers)
                if length is None:
                    self._hand_over()
                    return
                self._request = (headers, end + 4, end + 4 + length)  # type: ignore[arg-type]
            headers, start, stop = self._request
            if len(self._buffer) < stop:
                return
            answered = self._answer(headers, self._buffer[start:stop])
            if answered is None:  # SUBSCRIBE: aiohttp streams its answer
                self._hand_over()
                return
            self._buffer, self._request = self._buffer[stop:], None
            response, keep_alive = answered
            self.transport.write(response)  # type: ignore[union-attr]
            if not keep_alive:
                self.transport.close()  # type: ignore[union-attr]
                return

    def _answer(self, headers: dict[str, str], body: bytes) -> tuple[bytes, bool] | None:
        """The answer's bytes and whether the connection stays open, or None to leave the
        request to aiohttp."""
        master = self.port.master
        port = self.port.port_cell[0]
        api = scheduler_api
        try:
            principal = api.prepare(master, port, "POST", "/api/v1/scheduler", headers)
            call = api.parse(body, headers["content-type"], principal)
            if call["type"] == "SUBSCRIBE":
                return None
            status, text, extra = api.answer(master, headers, call, principal)
        except api.Refusal as refusal:
            master.record("refused", status=refusal.status, message=refusal.text)
            status, text, extra = refusal.status, refusal.text, refusal.headers
        except Exception:  # as aiohttp: logged, 500, and the connection closed
            log.exception("Error handling request from %s", self._peer())
            return self._response(500, _ERROR_TEXT, {"Connection": "close"}), False
        return self._response(status, text, extra), True

    def _response(self, status: int, text: str | None, extra: dict | None) -> bytes:
        """What aiohttp writes for `web.Response(status=…, text=…, headers=…)`: the extra
        headers, then a text's `Content-Type`, `Content-Length`, `Date`, `Server`."""
        if status == 202 and text is None and not extra:
            return self.port.accepted()
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
        connection = None
        for name, value in (extra or {}).items():
            if name == "Connection":
                connection = value
            else:
                lines.append(f"{name}: {value}")
        data = b"" if text is None else text.encode()
        if text is not None:
            lines.append(f"Content-Type: {_TEXT}")
        lines.append(f"Content-Length: {len(data)}")
        lines.append(f"Date: {self.port.date()}")
        lines.append(f"Server: {SERVER_SOFTWARE}")
        if connection:
            lines.append(f"Connection: {connection}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data

    def _peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if peer else "unknown"

    def _hand_over(self) -> None:
        """aiohttp's `RequestHandler` takes the connection and every byte not answered."""
        self.port.fronts.discard(self)
        handler = self.port.runner.server()  # type: ignore[misc]
        transport, data = self.transport, self._buffer
        self.transport, self._buffer, self._request = None, b"", None
        transport.set_protocol(handler)  # type: ignore[union-attr]
        handler.connection_made(transport)  # type: ignore[arg-type]
        handler.data_received(data)


def read_head(head: bytes) -> dict[str, str] | None:
    """The headers (lower-case names, the first of each name, values stripped) of a request
    head the front answers, None for any other (see the module's docstring)."""
    if not head.isascii():
        return None
    lines = head.decode("ascii").split("\r\n")
    if lines[0] != _REQUEST_LINE or len(lines) > MAX_HEADERS:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        # `isprintable` and `isalnum` first: they take well under a µs where the regular
        # expressions take a few (a tab in a value, a name with `_`, are still allowed).
        if not line.isprintable() and _CONTROL.search(line):
            return None
        name, colon, value = line.partition(":")
        if not colon or not (name.replace("-", "").isalnum() or _TOKEN.fullmatch(name)):
            return None
        name = name.lower()
        if name in headers and name == "content-length":
            return None
        headers.setdefault(name, value.strip(" \t"))
    return headers


def _content_length(headers: dict[str, str] | None) -> int | None:
    """The body's length when the front may answer the request, else None."""
    if headers is None or "transfer-encoding" in headers or "expect" in headers:
        return None
    if "upgrade" in headers or headers.get("connection", "keep-alive").lower() != "keep-alive":
        return None
    length = headers.get("content-length", "")
    if not length.isdigit() or not length.isascii() or int(length) > MAX_BODY:
        return None
    return int(length)
