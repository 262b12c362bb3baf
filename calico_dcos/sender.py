"""The scheduler's own sender: the frequent calls to the master, from a few keep-alive
connections, never from pymesos' event thread.

pymesos keeps the subscription (SUBSCRIBE and its event stream, master detection, the
stream ID) and sends the rare calls (RECONCILE, TEARDOWN). Its `_send` makes every call on
one `http.client` connection under the driver's lock (douban/pymesos
`pymesos/scheduler.py`, `MesosSchedulerDriver._send`), one at a time: at thousands of agents
the ACKNOWLEDGEs (13 per agent) and ACCEPTs (5 per agent) queue behind each other there.
Here they go out on `LANES` threads, each with its own kept-alive connection
(`Connection`), as the Mesos v1 scheduler API describes them: a POST of the JSON `Call` to
`/api/v1/scheduler` with the `Mesos-Stream-Id` header of the current subscription
(apache/mesos docs/scheduler-http-api.md, "Calls"; src/master/http.cpp rejects a call
without it) and the driver's `Authorization` (Basic, or DC/OS' `token=` in strict mode).

Pipelined: a lane takes every call waiting on it (at most `MAX_PIPELINED`), writes them
all on its connection at once and then reads their answers, in order (HTTP/1.1
pipelining, RFC 9112 section 9.3.2: "A server MUST send its responses to those requests in
the same order that the requests were received"). The master's HTTP server does that:
libprocess' `HttpProxy` "manages sending HTTP responses so as to satisfy HTTP/1.1
pipelining ... in the same order as the requests" (apache/mesos
3rdparty/libprocess/src/http_proxy.hpp), and the requests of one connection reach the
master actor in the order they were read. At 1,000 agents a lane's call cost ~80 µs of CPU
one at a time with libcurl (8 system calls, two GIL hand-overs from its callbacks); a
pipeline of them is one `sendall` and a few `recv`s, with the answers parsed by httptools
(the llhttp parser in C, as uvicorn uses it: MagicStack/httptools): see
`scripts/call_cpu.py` for the figures.

Order where Mesos needs it: an agent resends an update until it is acknowledged and sends
the next update of a task only then (src/slave/task_status_update_manager.cpp), so the
ACKNOWLEDGEs of one task go on one lane (chosen by task ID), in order; every other call
(ACCEPT, DECLINE, KILL, REVIVE) goes on lane 0 in decision order, so that a REVIVE never
overtakes the DECLINE or ACCEPT whose filter it is meant to clear. A pipeline keeps that
order (its requests are written, and handled, in queue order), and an action that is not a
call (a log line, a RECONCILE through pymesos) on lane 0 runs only once the calls queued
before it are answered.

Bounded: each lane's queue holds `MAX_QUEUED` calls; `put` blocks beyond that (the group
committer, then the event thread, wait: back-pressure to Mesos). A call the master refuses
(4xx/5xx) is a `CallRefused` with the master's reason, handed to the call's `refused` or
logged; a call that cannot reach the master (failover, network), or whose connection
closes before its answer, is dropped with a warning (`CallLost`) and never sent again:
Mesos answers a lost ACCEPT by rescinding the offer, a lost ACKNOWLEDGE by resending the
update, and the plan reconciles after reconnecting.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import httptools
import orjson

LOG = logging.getLogger("calico_dcos.sender")
LANES = 4
MAX_QUEUED = 20_000
# Calls written at once on one connection. Their answers (~150 bytes each, a refusal's up
# to a few KiB) wait in the socket's receive buffer while the rest is written, so this
# stays far below what that buffer holds (net.ipv4.tcp_rmem: 128 KiB by default).
MAX_PIPELINED = 32
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
CONTROL = ""  # the lane key of every call but acknowledgements
PATH = "/api/v1/scheduler"
IDLE_CHECK_SECONDS = 1.0  # a kept connection unused this long is checked before use
RECV_BYTES = 64 * 1024


class CallRefused(Exception):
    """The master answered a call with an HTTP error: `status` and its text (`reason`)."""

    def __init__(self, call: str, status: int, reason: str) -> None:
        super().__init__(f"Mesos refused the {call} call ({status}): {reason}")
        self.call = call
        self.status = status
        self.reason = reason


class NotSubscribed(Exception):
    """No subscription (no stream ID): the call would be refused, so it is not sent."""


class CallLost(Exception):
    """The master could not be reached, or the connection broke before the answer: the call
    may or may not have arrived (Mesos asks again: a rescinded offer, a resent update).
    `answers`: the (status, body) of the calls of the same pipeline answered before."""

    def __init__(self, words: str, answers: list[tuple[int, bytes]] | None = None) -> None:
        super().__init__(words)
        self.answers = answers or []


class _Broken(Exception):
    """The connection ended before every answer was read."""


class _Answers:
    """httptools' callbacks for one connection: each complete answer's (status, body)."""

    __slots__ = ("parser", "done", "body", "status", "closing")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.closing = False  # an answer said `Connection: close`

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if not self.parser.should_keep_alive():
            self.closing = True

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.done.append((self.status, b"".join(self.body)))
        self.body = []


def request(master: str, path: str, headers: Sequence[str], body: bytes) -> bytes:
    """One POST as it goes on the wire: `headers` are "Name: value" lines."""
    lines = "".join(f"{line}\r\n" for line in headers)
    return head(master, path, lines) + b"%d\r\n\r\n" % len(body) + body


def head(master: str, path: str, lines: str) -> bytes:
    """A POST's request line and headers up to the value of its `Content-Length`."""
    return f"POST {path} HTTP/1.1\r\nHost: {master}\r\n{lines}Content-Length: ".encode()


class Connection:
    """One kept-alive HTTP/1.1 connection to the current master, on which calls go
    pipelined (`exchange`). It opens a new one when the master changes, after an error, and
    after the master closed it: a kept connection the master closed meanwhile reads as
    readable at EOF (as urllib3's `is_connection_dropped` checks) and is replaced before
    anything is sent on it, checked only after `IDLE_CHECK_SECONDS` unused (a busy lane
    would pay a system call at every pipeline). Not thread-safe: one per sender lane.

    Straight to the master whatever http_proxy/ALL_PROXY say, as http.client and pymesos
    do; the name is resolved again for each new connection, so a failed-over master is
    found. No retries of its own: a POST that may have arrived is never sent twice (an
    ACCEPT sent again would use an offer that no longer exists, and the master would answer
    the task with TASK_DROPPED, apache/mesos src/master/master.cpp `Master::accept`).

    `ca_bundle`: with TLS (strict mode), verify the master's certificate and name against
    it alone, else against the system's CAs (`ssl.create_default_context`). A context
    manager (`with connections() as session`), closed at exit."""

    def __init__(self, ca_bundle: str = "") -> None:
        self.ca_bundle = ca_bundle
        self._sock: socket.socket | None = None
        self._target: tuple[str, bool] | None = None
        self._answers: _Answers | None = None
        self._used = 0.0  # when the connection last carried a call (monotonic seconds)
        self._context: ssl.SSLContext | None = None

    def post(self, master: str, tls: bool, path: str, body: bytes, headers: list[str]) -> tuple:
        """POST `body` to `path` on `master` ("host:port") with `headers` ("Name: value"
        lines, `header_lines`): (HTTP status, the answer's body, read whole).
        `CallLost` when the master cannot be reached or the connection breaks."""
        return self.exchange(master, tls, [request(master, path, headers, body)])[0]

    def exchange(self, master: str, tls: bool, requests: list[bytes]) -> list[tuple[int, bytes]]:
        """Write `requests` (whole HTTP requests, `request`) on the connection at once, then
        read their answers: one (status, body) each, in order. `CallLost`, with the answers
        read before, when the master cannot be reached or the connection breaks first."""
        parsed: _Answers | None = None
        try:
            sock, parsed = self._open(master, tls)
            sock.sendall(b"".join(requests) if len(requests) > 1 else requests[0])
            while len(parsed.done) < len(requests):
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise _Broken("the connection closed before the answer")
                parsed.parser.feed_data(data)
                if parsed.closing and len(parsed.done) < len(requests):
                    raise _Broken("the master closed the connection before the answer")
        except (_Broken, OSError, httptools.HttpParserError) as exc:
            answered = parsed.done if parsed is not None else []
            self.clear()
            words = str(exc) if isinstance(exc, _Broken) else f"{type(exc).__name__}: {exc}"
            raise CallLost(f"{words} (not sent again)", answered) from exc
        answers, parsed.done = parsed.done, []
        if parsed.closing:
            self.clear()
        self._used = time.monotonic()
        return answers

    def _open(self, master: str, tls: bool) -> tuple[socket.socket, _Answers]:
        sock = self._sock
        if sock is not None and self._target == (master, tls) and self._answers is not None:
            idle = time.monotonic() - self._used >= IDLE_CHECK_SECONDS
            if not idle or not select.select([sock], [], [], 0)[0]:
                return sock, self._answers
        self.clear()
        host, _, port = master.rpartition(":")
        host = host.strip("[]")  # an IPv6 literal, "[::1]:5050"
        sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                sock = self._tls().wrap_socket(sock, server_hostname=host)
            sock.settimeout(READ_TIMEOUT_SECONDS)
        except BaseException:
            sock.close()
            raise
        self._sock, self._target, self._answers = sock, (master, tls), _Answers()
        return sock, self._answers

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.ca_bundle or None)
        return self._context

    def clear(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._sock is not None:
            self._sock.close()
        self._sock = self._target = self._answers = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


def header_lines(stream_id: str, credential: str | None) -> list[str]:
    """A call's headers: the subscription's stream ID, JSON both ways, and the
    `Authorization` if any."""
    lines = [
        f"Mesos-Stream-Id: {stream_id}",
        "Content-Type: application/json",
        "Accept: application/json",
    ]
    if credential:
        lines.append(f"Authorization: {credential}")
    return lines


def connections(ca_bundle: str = "") -> Connection:
    """One kept-alive connection to the current master (HTTP, or HTTPS verified against
    `ca_bundle`); no retries of its own: a lost call is Mesos' to ask again."""
    return Connection(ca_bundle)


class Encoded:
    """A `Call` body encoded already (JSON bytes), with its type for errors and logs."""

    __slots__ = ("data", "type")

    def __init__(self, call_type: str, data: bytes) -> None:
        self.type = call_type
        self.data = data


Body = dict | Encoded
Outcome = Exception | None  # None: the master took the call (2xx/3xx)


class Master:
    """Where and how to call the master right now, read from the pymesos driver at each
    pipeline (it changes on master failover and re-subscription)."""

    def __init__(self, driver: Callable[[], Any]) -> None:
        self._driver = driver
        # The request head of the last (master, stream ID, Authorization) seen, made once
        # for all calls until one changes (shared by the lanes: replaced whole).
        self._head: tuple[tuple[str, str, str | None], bytes] = (("", "", None), b"")

    def post(self, session: Connection, body: Body) -> None:
        """POST one `Call` (a dict, or `Encoded` JSON) on `session`; `CallRefused` for a
        4xx/5xx, `NotSubscribed` without a stream, `CallLost` when the master cannot be
        reached."""
        outcome = self.post_many(session, [body])[0]
        if outcome is not None:
            raise outcome

    def post_many(self, session: Connection, bodies: Sequence[Body]) -> list[Outcome]:
        """POST `bodies` pipelined on `session`, in order: for each, None when the master
        took it, else `CallRefused`, `NotSubscribed` or `CallLost` (never raised).

        Strict mode: a 401 makes the driver drop its token (`unauthorized`, once for the
        pipeline) and the calls refused so are sent once more with a fresh one, in their
        order, as pymesos' own calls are (calico_dcos/strict.py)."""
        types = [b.type if isinstance(b, Encoded) else b["type"] for b in bodies]
        data = [b.data if isinstance(b, Encoded) else orjson.dumps(b) for b in bodies]
        outcomes: list[Outcome] = [None] * len(bodies)
        pending = list(range(len(bodies)))
        for attempt in (1, 2):
            driver = self._driver()
            stream_id = driver.stream_id if driver is not None else None
            if not stream_id:
                for i in pending:
                    outcomes[i] = NotSubscribed(types[i])
                return outcomes
            tls = getattr(driver, "tls_context", None) is not None
            credential = driver._basic_credential  # pymesos' Authorization value, or None
            master = driver.master
            made_for, prefix = self._head
            if made_for != (master, stream_id, credential):
                lines = "".join(f"{line}\r\n" for line in header_lines(stream_id, credential))
                prefix = head(master, PATH, lines)
                self._head = ((master, stream_id, credential), prefix)
            requests = [prefix + b"%d\r\n\r\n" % len(data[i]) + data[i] for i in pending]
            try:
                answers = session.exchange(master, tls, requests)
            except CallLost as lost:
                answers = lost.answers
                for i in pending[len(answers) :]:
                    outcomes[i] = lost
            again = []
            for i, (status, answer) in zip(pending, answers, strict=False):
                if status < 400:
                    continue
                if status == 401 and attempt == 1 and hasattr(driver, "unauthorized"):
                    again.append(i)
                    continue
                reason = answer[:1024].decode("utf-8", "replace")
                outcomes[i] = CallRefused(types[i], status, reason)
            took = any(status < 400 for status, _ in answers)
            if took and getattr(driver, "unauthorized_in_a_row", None):
                driver.unauthorized_in_a_row = 0
            if not again:
                break
            driver.unauthorized(f"a {types[again[0]]} call")
            pending = again
        return outcomes


class Call:
    """One call to the master, queued: `key` picks its lane (a task ID keeps a task's
    acknowledgements in order; `CONTROL` for the rest); `prepare()` makes its body when its
    turn comes (a dict or `Encoded`; None: not to be sent any more); `master` sends it;
    `refused(exc, session)`, if given, takes a `CallRefused` (else it is logged)."""

    __slots__ = ("key", "master", "prepare", "refused")

    def __init__(
        self,
        key: str,
        master: Master,
        prepare: Callable[[], Body | None],
        refused: Callable[[CallRefused, Connection], None] | None = None,
    ) -> None:
        self.key = key
        self.master = master
        self.prepare = prepare
        self.refused = refused

    def __call__(self) -> None:  # run in place (without a sender)
        body = self.prepare()
        if body is None:
            return
        with connections() as session:
            try:
                self.master.post(session, body)
            except CallRefused as exc:
                if self.refused is None:
                    raise
                self.refused(exc, session)


Action = Callable[[], None]


class _Lane:
    """A lane's queue: taken from many at a time, bounded at `max_queued` items."""

    def __init__(self, max_queued: int) -> None:
        self.items: deque[Action | None] = deque()
        self.max_queued = max_queued
        self.cond = threading.Condition()

    def put(self, items: list[Action | None], bounded: bool = True) -> None:
        with self.cond:
            for item in items:
                while bounded and len(self.items) >= self.max_queued:
                    self.cond.notify_all()  # the lane, for what waits already
                    self.cond.wait()
                self.items.append(item)
            self.cond.notify_all()

    def take(self, most: int) -> list[Action | None]:
        with self.cond:
            while not self.items:
                self.cond.wait()
            full = len(self.items) >= self.max_queued
            taken = [self.items.popleft() for _ in range(min(most, len(self.items)))]
            if full:
                self.cond.notify_all()  # putters waiting for room
            return taken


class Sender:
    """`LANES` threads sending `Call`s pipelined (and running any other queued action on
    lane 0, in order with its calls)."""

    def __init__(
        self, lanes: int = LANES, max_queued: int = MAX_QUEUED, ca_bundle: str = ""
    ) -> None:
        self.ca_bundle = ca_bundle
        self.sent = 0
        self.refused = 0
        self.lost = 0
        self.pipelines = 0  # exchanges with the master (the bench's calls per pipeline)
        self._lanes: list[_Lane] = []
        self._threads: list[threading.Thread] = []
        for number in range(lanes):
            lane = _Lane(max_queued)
            thread = threading.Thread(
                target=self._loop, args=(lane,), name=f"mesos-sender-{number}", daemon=True
            )
            self._lanes.append(lane)
            self._threads.append(thread)
            thread.start()

    def put(self, actions: list[Action]) -> None:
        """Queue `actions` (`Call`s to the lane of their key, anything else to lane 0), in
        order; blocks while a lane is full."""
        if len(self._lanes) == 1:
            self._lanes[0].put(list(actions))
            return
        per_lane: dict[int, list[Action | None]] = {}
        for action in actions:
            per_lane.setdefault(self._lane(getattr(action, "key", CONTROL)), []).append(action)
        for number, items in per_lane.items():
            self._lanes[number].put(items)

    def _lane(self, key: str) -> int:
        if key == CONTROL:
            return 0
        return 1 + zlib.crc32(key.encode()) % (len(self._lanes) - 1)

    def close(self, timeout: float) -> None:
        """Send what is queued (each lane within `timeout`), then stop."""
        for lane in self._lanes:
            lane.put([None], bounded=False)
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, lane: _Lane) -> None:
        session = connections(self.ca_bundle)
        try:
            while True:
                calls: list[Call] = []
                for item in lane.take(MAX_PIPELINED):
                    if isinstance(item, Call):
                        calls.append(item)
                        continue
                    self._send(calls, session)  # what was queued before it, first
                    calls = []
                    if item is None:
                        return
                    self._run(item)
                self._send(calls, session)
        finally:
            session.clear()

    def _run(self, action: Action) -> None:
        try:
            action()
        except Exception:
            LOG.exception("a queued action failed")

    def _send(self, calls: list[Call], session: Connection) -> None:
        """Prepare `calls`, send the ones still wanted in one pipeline per master, and hand
        each outcome on."""
        ready: list[Call] = []
        bodies: list[Body] = []
        for call in calls:
            try:
                body = call.prepare()
            except Exception:
                LOG.exception("preparing a call to Mesos failed")
                continue
            if body is None:
                continue
            if ready and call.master is not ready[0].master:
                self._pipeline(ready, bodies, session)
                ready, bodies = [], []
            ready.append(call)
            bodies.append(body)
        if ready:
            self._pipeline(ready, bodies, session)

    def _pipeline(self, calls: list[Call], bodies: list[Body], session: Connection) -> None:
        self.pipelines += 1
        outcomes = calls[0].master.post_many(session, bodies)
        lost: list[Exception] = []
        for call, outcome in zip(calls, outcomes, strict=True):
            if outcome is None:
                self.sent += 1
            elif isinstance(outcome, CallRefused) and call.refused is not None:
                try:
                    call.refused(outcome, session)
                except Exception:
                    LOG.exception("handling a refused %s call failed", outcome.call)
            elif isinstance(outcome, CallRefused):
                self.refused += 1
                LOG.error("%s", outcome)
            else:
                lost.append(outcome)
        if not lost:
            return
        self.lost += len(lost)
        kinds = ", ".join(sorted({type(o).__name__ for o in lost}))
        if all(isinstance(o, NotSubscribed) for o in lost):
            LOG.info("not subscribed: %d call(s) not sent (Mesos will ask again)", len(lost))
        else:
            LOG.warning(
                "%d call(s) to the Mesos master failed (%s: %s); Mesos will ask again",
                len(lost),
                kinds,
                lost[0],
            )
