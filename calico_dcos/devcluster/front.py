"""A master port's HTTP front: plain scheduler calls are answered here, everything else by
aiohttp, on the same port and connection.

Why: a framework makes ~18 scheduler calls per agent it installs on (ACCEPT, ACKNOWLEDGE…),
each a small `POST /api/v1/scheduler` on a kept-alive connection, and aiohttp's own work per
request (its request and response objects, routing, a task per request) cost ~100 µs of
CPU each: as much as the rest of the master together (issue 17). Here such a request is
read and answered in `data_received`, through the same checks and calls as aiohttp's
handler (`scheduler_api.prepare`, `parse`, `answer`), with the same answer bytes as aiohttp
writes (status line, headers in its order, `Date`, `Server`).

What the front answers itself, and only that: `POST /api/v1/scheduler HTTP/1.1` whose head
llhttp reads without error (httptools' `HttpRequestParser`, `read_head`), in ASCII, with fewer
than `MAX_HEADERS` lines, a `Content-Length` and no `Transfer-Encoding`, `Expect`, `Upgrade`
or `Connection` other than `keep-alive`, and a call that is not SUBSCRIBE (whose answer is a
stream); the body is the `Content-Length` bytes after the head's blank line. At the first
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
import ssl
import time
from email.utils import formatdate
from http import HTTPStatus

import httptools
from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.tcp_helpers import tcp_keepalive

from calico_dcos.devcluster import scheduler_api
from calico_dcos.devcluster.app import CLIENT_MAX_SIZE
from calico_dcos.devcluster.master import Master

MAX_BODY = CLIENT_MAX_SIZE  # larger bodies go to aiohttp, which answers 413
MAX_HEAD = 8190  # longer heads go to aiohttp, whose own limits then apply (8190 a line)
MAX_HEADERS = 128  # more go to aiohttp, which refuses more than its `max_headers`, 128
_TARGET = b"/api/v1/scheduler"
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
                    if len(self._buffer) > MAX_HEAD or _bare_lf(self._buffer):
                        self._hand_over()
                    return
                headers = read_head(self._buffer[: end + 4])
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


class Head:
    """What llhttp (httptools' `HttpRequestParser`, as uvicorn uses it) reads of a request
    head: its target and its headers (lower-case names, the first of each name, values
    stripped). The parser checks the syntax: the request line, header names (tokens),
    values (no control characters), `Content-Length` (digits, not twice, not with
    `Transfer-Encoding`)."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.complete = False
        self.count = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count += 1
        if name.isascii() and value.isascii():
            self.headers.setdefault(name.decode().lower(), value.decode().strip(" \t"))
        else:  # aiohttp decodes them otherwise: left to it
            self.headers.setdefault("", "")

    def on_headers_complete(self) -> None:
        self.complete = True


def read_head(head: bytes) -> dict[str, str] | None:
    """The headers of a request head (up to and with its blank line) that the front may
    answer, None for any other (see the module's docstring): llhttp refuses it, or it is not
    `POST /api/v1/scheduler HTTP/1.1`, or it has more than `MAX_HEADERS` lines or text other
    than ASCII."""
    read = Head()
    parser = httptools.HttpRequestParser(read)
    try:
        parser.feed_data(head)
    except httptools.HttpParserError:  # HttpParserUpgrade is one
        return None
    if not read.complete or read.url != _TARGET or parser.get_method() != b"POST":
        return None
    if parser.get_http_version() != "1.1" or read.count >= MAX_HEADERS or "" in read.headers:
        return None
    return read.headers


def _bare_lf(data: bytes) -> bool:
    """A line feed without its carriage return: a head llhttp refuses (aiohttp answers it)."""
    return data.count(b"\n") != data.count(b"\r\n")


def _content_length(headers: dict[str, str] | None) -> int | None:
    """The body's length when the front may answer the request, else None."""
    if headers is None or "transfer-encoding" in headers or "expect" in headers:
        return None
    if "upgrade" in headers or headers.get("connection", "keep-alive").lower() != "keep-alive":
        return None
    length = headers.get("content-length")  # digits: llhttp checked them
    if length is None or int(length) > MAX_BODY:
        return None
    return int(length)
