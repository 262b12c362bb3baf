"""The scheduler's own sender: the frequent calls to the master, from a few keep-alive
connections, never from pymesos' event thread.

pymesos keeps the subscription (SUBSCRIBE and its event stream, master detection, the
stream ID) and sends the rare calls (RECONCILE, TEARDOWN). Its `_send` makes every call on
one `http.client` connection under the driver's lock (douban/pymesos
`pymesos/scheduler.py`, `MesosSchedulerDriver._send`), one at a time: at thousands of agents
the ACKNOWLEDGEs (12 per agent) and ACCEPTs (5 per agent) queue behind each other there.
Here they go out on `LANES` threads: lane 0 with its own kept-alive connection
(`Connection`: a libcurl handle through pycurl, ~75 µs of CPU per call against ~150 µs for
the standard library's `http.client` and 310 µs for urllib3's pool manager,
`scripts/call_cpu.py`), the acknowledgements' lane in `Round`s of up to `ROUND_WIDTH` calls
at once, each on its own kept-alive connection, by one libcurl multi handle (30-40 µs a
call), as
the Mesos v1 scheduler API describes them: a POST of the JSON `Call` to `/api/v1/scheduler`
with the `Mesos-Stream-Id` header of the current subscription (apache/mesos
docs/scheduler-http-api.md, "Calls"; src/master/http.cpp rejects a call without it) and the
driver's `Authorization` (Basic, or DC/OS' `token=` in strict mode).

Order where Mesos needs it: an agent resends an update until it is acknowledged and sends
the next update of a task only then (src/slave/task_status_update_manager.cpp), so the
ACKNOWLEDGEs of one task go on one lane (chosen by task ID), in order (never two of a task
in one round); every other call
(ACCEPT, DECLINE, KILL, REVIVE) goes on lane 0 in decision order, so that a REVIVE never
overtakes the DECLINE or ACCEPT whose filter it is meant to clear.

Bounded: each lane's queue holds `MAX_QUEUED` calls; `put` blocks beyond that (the group
committer, then the event thread, wait: back-pressure to Mesos). A call the master refuses
(4xx/5xx) raises `CallRefused` with the master's reason, logged by the caller; a call that
cannot reach the master (failover, network) is dropped with a warning: Mesos answers a lost
ACCEPT by rescinding the offer, a lost ACKNOWLEDGE by resending the update, and the plan
reconciles after reconnecting.
"""

from __future__ import annotations

import logging
import select
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any, NoReturn

import orjson
import pycurl

from calico_dcos.pipeline import handed_over

LOG = logging.getLogger("calico_dcos.sender")
LANES = 2  # lane 0: ACCEPT, DECLINE, KILL, REVIVE, in order; lane 1: acknowledgements
ROUND_WIDTH = 8  # acknowledgements sent at once on lane 1, each on its own connection
MAX_QUEUED = 20_000
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
CONTROL = ""  # the lane key of every call but acknowledgements
PATH = "/api/v1/scheduler"
IDLE_CHECK_SECONDS = 1.0  # a kept connection unused this long is checked before use


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
    """The master could not be reached, or the connection broke before its answer: the call
    may or may not have arrived (Mesos asks again: a rescinded offer, a resent update)."""


class Connection:
    """One kept-alive HTTP/1.1 connection to the current master: a libcurl easy handle
    (pycurl), which keeps its connection open between calls and opens a new one after the
    master closed it (`_open`), when the master changes or after an error. Not thread-safe:
    one per sender lane.

    Why libcurl: a call costs ~75 µs of CPU here against ~150 µs with `http.client` (which
    sends the headers and the body in two segments and parses every answer's headers in
    Python with `email.parser`) and ~310 µs with urllib3's pool manager, measured on
    loopback against a keep-alive server answering 202 as the devcluster does
    (`scripts/call_cpu.py`); and libcurl builds and parses in C without the GIL, which the
    event thread and the group committer need meanwhile.

    No retries of its own: a POST that may have arrived is never sent twice (an ACCEPT sent
    again would use an offer that no longer exists, and the master would answer the task
    with TASK_DROPPED, apache/mesos src/master/master.cpp `Master::accept`). libcurl resends
    a request on a fresh connection when a reused one closes before any byte of the answer
    (curl lib/transfer.c, `Curl_retry_request`); its `PREREQFUNCTION`, called before each
    request goes out (curl docs/libcurl/opts/CURLOPT_PREREQFUNCTION.md), lets the first one
    through and aborts any other, so that case is a `CallLost` as with any broken
    connection.

    `ca_bundle`: verify the master's certificate and name against it alone (HTTPS, strict
    mode), else against the system's CAs (`ssl.get_default_verify_paths`, as
    `ssl.create_default_context` does). A context manager (`with connections() as
    session`), closed at exit."""

    def __init__(self, ca_bundle: str = "") -> None:
        self.ca_bundle = ca_bundle
        self._curl: pycurl.Curl | None = None
        self._target: tuple[str, bool] | None = None
        self._url = ""
        self._answer: list[bytes] = []
        self._requests = 0  # requests libcurl was about to send during this perform
        self._used = 0.0  # when the connection last carried a call (monotonic seconds)
        self._set: tuple[str, list[str]] | None = None  # the handle's path and headers

    def post(self, master: str, tls: bool, path: str, body: bytes, headers: list[str]) -> tuple:
        """POST `body` to `path` on `master` ("host:port") with `headers` ("Name: value"
        lines, `header_lines`): (HTTP status, the answer's body, read whole).
        `CallLost` when the master cannot be reached or the connection breaks."""
        curl = self.start(master, tls, path, body, headers)
        try:
            curl.perform()
        except pycurl.error as exc:
            self.failed(*exc.args)
        return self.finish()

    def start(self, master: str, tls: bool, path: str, body: bytes, headers: list[str]) -> Any:
        """The handle, set for the POST, not yet performed (by `post`, or by a `Round`'s
        multi handle); then `finish`, or `failed` with libcurl's error."""
        curl = self._open(master, tls)
        self._answer = []
        self._requests = 0
        if self._set != (path, headers):  # libcurl keeps both; the master's are per stream
            curl.setopt(pycurl.URL, self._url + path)
            curl.setopt(pycurl.HTTPHEADER, headers)
            self._set = (path, headers)
        curl.setopt(pycurl.POSTFIELDS, body)
        return curl

    def failed(self, code: int, words: str) -> NoReturn:
        """The started POST failed with libcurl's error `code`: `CallLost`."""
        self.clear()
        if code == pycurl.E_ABORTED_BY_CALLBACK and self._requests > 1:
            words = "the connection closed before the answer (not sent again)"
        raise CallLost(f"{words} (curl error {code})")

    def finish(self) -> tuple[int, bytes]:
        """The started POST's (HTTP status, answer), once performed."""
        self._used = time.monotonic()
        assert self._curl is not None
        return self._curl.getinfo(pycurl.RESPONSE_CODE), b"".join(self._answer)

    def _open(self, master: str, tls: bool) -> pycurl.Curl:
        """The kept handle if it is for `master`, else a new one (closing the old one's
        connection). A kept connection the master closed meanwhile reads as readable at EOF
        (as urllib3's `is_connection_dropped` checks): it is replaced before anything is sent
        on it. Checked only after `IDLE_CHECK_SECONDS` unused, as libcurl checks its cached
        connections at most once a second (curl lib/url.c, `prune_dead_connections`): a busy
        lane would pay a system call, and the GIL handed over, at every call."""
        curl = self._curl
        if curl is not None and self._target == (master, tls):
            if time.monotonic() - self._used < IDLE_CHECK_SECONDS:
                return curl
            sock = curl.getinfo(pycurl.ACTIVESOCKET)
            if sock == -1 or not select.select([sock], [], [], 0)[0]:
                return curl
        self.clear()
        self._set = None
        curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)  # timeouts without SIGALRM: lanes are threads
        curl.setopt(pycurl.POST, 1)
        # As http.client: straight to the master whatever http_proxy/ALL_PROXY say (libcurl
        # reads them, curl docs/libcurl/opts/CURLOPT_PROXY.md: "" disables), HTTP/1.1 as
        # libprocess speaks it, and a name resolved again for each new connection (libcurl
        # would keep it 60 s, CURLOPT_DNS_CACHE_TIMEOUT) so a failed-over master is found.
        curl.setopt(pycurl.PROXY, "")
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.DNS_CACHE_TIMEOUT, 0)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(CONNECT_TIMEOUT_SECONDS * 1000))
        curl.setopt(pycurl.TIMEOUT_MS, int((CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) * 1000))
        curl.setopt(pycurl.WRITEFUNCTION, self._write)
        curl.setopt(pycurl.PREREQFUNCTION, self._prereq)
        if tls:
            curl.setopt(pycurl.SSL_VERIFYPEER, 1)
            curl.setopt(pycurl.SSL_VERIFYHOST, 2)
            if self.ca_bundle:
                curl.setopt(pycurl.CAINFO, self.ca_bundle)
                curl.unsetopt(pycurl.CAPATH)  # the cluster's CA alone
            else:
                paths = ssl.get_default_verify_paths()
                if paths.cafile:
                    curl.setopt(pycurl.CAINFO, paths.cafile)
                if paths.capath:
                    curl.setopt(pycurl.CAPATH, paths.capath)
        self._curl, self._target = curl, (master, tls)
        self._url = f"{'https' if tls else 'http'}://{master}"
        return curl

    def _write(self, data: bytes) -> None:
        self._answer.append(data)

    def _prereq(self, *_connection: object) -> int:
        """Called by libcurl before each request goes out: only the first one may."""
        self._requests += 1
        return pycurl.PREREQFUNC_OK if self._requests == 1 else pycurl.PREREQFUNC_ABORT

    def clear(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._curl is not None:
            self._curl.close()
        self._curl = self._target = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


def header_lines(stream_id: str, credential: str | None) -> list[str]:
    """A call's headers as libcurl takes them: the subscription's stream ID, JSON both ways,
    the `Authorization` if any, and no `Expect: 100-continue` (libcurl would otherwise wait
    for the master's go-ahead before sending a large ACCEPT's body)."""
    lines = [
        f"Mesos-Stream-Id: {stream_id}",
        "Content-Type: application/json",
        "Accept: application/json",
        "Expect:",
    ]
    if credential:
        lines.append(f"Authorization: {credential}")
    return lines


class Call:
    """One queued call: `send(session)` makes it; `key` picks its lane (a task ID keeps a
    task's acknowledgements in order; `CONTROL` for the rest)."""

    __slots__ = ("key", "send")

    def __init__(self, key: str, send: Callable[[Connection], None]) -> None:
        self.key = key
        self.send = send

    def __call__(self) -> None:  # run in place (tests, or without a sender)
        with connections() as pool:
            self.send(pool)


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


class Master:
    """Where and how to call the master right now, read from the pymesos driver at each
    call (it changes on master failover and re-subscription)."""

    def __init__(self, driver: Callable[[], Any]) -> None:
        self._driver = driver
        # The headers of the last (stream ID, Authorization) seen, made once for all calls
        # until either changes (shared by the lanes: replaced whole, never changed in place).
        self._headers: tuple[tuple[str, str | None], list[str]] = (("", None), [])

    def post(self, session: Connection | Round, body: dict | Encoded) -> None:
        """POST one `Call` (a dict, or `Encoded` JSON) on `session`; `CallRefused` for a
        4xx/5xx, `NotSubscribed` without a stream, `CallLost` when the master cannot be
        reached. On a `Round`, the call is only added to it (`NotSubscribed` at once), and
        the round's `run` says how each went.

        Strict mode: a 401 makes the driver drop its token (`unauthorized`) and the call is
        sent once more with a fresh one, as pymesos' own calls are (calico_dcos/strict.py).
        """
        if isinstance(body, Encoded):
            call_type, data = body.type, body.data
        else:
            call_type, data = body["type"], orjson.dumps(body)
        if isinstance(session, Round):
            session.add(self, call_type, data)
            return
        for attempt in (1, 2):
            driver, master, tls, headers = self.target(call_type)
            status, answer = session.post(master, tls, PATH, data, headers)
            verdict = self.verdict(driver, call_type, status, answer, attempt)
            if verdict is None:
                return
            if verdict is not AGAIN:
                raise verdict
            driver.unauthorized(f"a {call_type} call")

    def target(self, call_type: str) -> tuple[Any, str, bool, list[str]]:
        """(driver, master "host:port", TLS or not, header lines) for a call now;
        `NotSubscribed` without a stream."""
        driver = self._driver()
        stream_id = driver.stream_id if driver is not None else None
        if not stream_id:
            raise NotSubscribed(call_type)
        tls = getattr(driver, "tls_context", None) is not None
        credential = driver._basic_credential  # pymesos' Authorization value, or None
        made_for, headers = self._headers
        if made_for != (stream_id, credential):
            headers = header_lines(stream_id, credential)
            self._headers = ((stream_id, credential), headers)
        return driver, driver.master, tls, headers

    @staticmethod
    def verdict(
        driver: Any, call_type: str, status: int, answer: bytes, attempt: int
    ) -> CallRefused | object | None:
        """None: taken; `AGAIN`: a first 401 in strict mode (the caller drops the token
        once and sends it again); else the `CallRefused`."""
        if status < 400:
            if getattr(driver, "unauthorized_in_a_row", None):
                driver.unauthorized_in_a_row = 0
            return None
        if status == 401 and attempt == 1 and hasattr(driver, "unauthorized"):
            return AGAIN
        return CallRefused(call_type, status, answer[:1024].decode("utf-8", "replace"))


AGAIN = object()  # `Master.verdict`: send once more with a fresh token


class Round:
    """Calls sent together, each on its own kept-alive connection (`Connection`), by one
    libcurl multi handle (pycurl's `CurlMulti`: curl_multi_perform drives every transfer
    at once from one thread, curl docs/libcurl/libcurl-multi.md): an acknowledgement lane's
    calls of distinct tasks, which Mesos takes in any order. A call costs 30-40 µs of CPU
    so against 75-95 µs one at a time on one connection (eight at once, loopback,
    `scripts/call_cpu.py`), and one thread waits for all instead of one each.

    `Master.post(round, body)` adds a call; `run()` sends every call added and says how
    each went. At most `width` calls a round; not thread-safe: one per lane."""

    def __init__(self, ca_bundle: str = "", width: int = 8) -> None:
        self.width = width
        self._connections = [Connection(ca_bundle) for _ in range(width)]
        self._multi = pycurl.CurlMulti()
        self._calls: list[list] = []  # [master API, call type, body, owner]
        self.owner: object = None  # what the next calls added belong to (the lane's Call)

    def add(self, master: Master, call_type: str, data: bytes) -> None:
        if len(self._calls) >= self.width:
            raise ValueError(f"a round holds {self.width} calls at most")
        master.target(call_type)  # NotSubscribed now, as on a single connection
        self._calls.append([master, call_type, data, self.owner])

    def run(self) -> list[tuple[object, Exception | None]]:
        """Send the calls added: (owner, None when taken, else `CallRefused`, `CallLost`
        or `NotSubscribed`) for each, in the order added."""
        calls, self._calls = self._calls, []
        outcomes: list[Exception | None] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in (1, 2):
            posts, drivers = [], {}
            for i in pending:
                master, call_type, data, _ = calls[i]
                try:
                    driver, address, tls, headers = master.target(call_type)
                except NotSubscribed as exc:
                    outcomes[i] = exc
                    continue
                drivers[i] = driver
                posts.append((i, address, tls, data, headers))
            again = []
            for (i, *_), answer in zip(posts, self._perform(posts), strict=True):
                if isinstance(answer, CallLost):
                    outcomes[i] = answer
                    continue
                verdict = Master.verdict(drivers[i], calls[i][1], *answer, attempt)
                if verdict is AGAIN:
                    again.append(i)
                else:
                    outcomes[i] = verdict  # type: ignore[assignment]
            if not again:
                break
            drivers[again[0]].unauthorized(f"a {calls[again[0]][1]} call")  # once a round
            pending = again
        return [(call[3], outcome) for call, outcome in zip(calls, outcomes, strict=True)]

    def _perform(self, posts: list[tuple]) -> list[tuple[int, bytes] | CallLost]:
        """(status, answer) or `CallLost` for each (_, master, tls, body, headers)."""
        handles: dict[int, tuple[int, Connection]] = {}
        results: list[tuple[int, bytes] | CallLost] = []
        for n, (_, master, tls, data, headers) in enumerate(posts):
            connection = self._connections[n]
            try:
                curl = connection.start(master, tls, PATH, data, headers)
            except pycurl.error as exc:
                results.append(CallLost(f"{exc.args[1]} (curl error {exc.args[0]})"))
                continue
            results.append(CallLost("not performed"))
            handles[id(curl)] = (n, connection)
            self._multi.add_handle(curl)
        active = len(handles)
        while active:
            code, active = self._multi.perform()
            if code == pycurl.E_CALL_MULTI_PERFORM:
                continue
            if active:
                self._multi.select(1.0)
        while True:
            queued, done, failed = self._multi.info_read()
            for curl in done:
                n, connection = handles[id(curl)]
                self._multi.remove_handle(curl)
                results[n] = connection.finish()
            for curl, code, words in failed:
                n, connection = handles[id(curl)]
                self._multi.remove_handle(curl)
                try:
                    connection.failed(code, words)
                except CallLost as lost:
                    results[n] = lost
            if not queued:
                break
        return results

    def clear(self) -> None:
        for connection in self._connections:
            connection.clear()
        self._multi.close()


class _Lane:
    """A lane's queue: put and taken many at a time (one lock and at most one wake-up per
    group commit's calls, not per call), bounded at `max_queued` actions."""

    def __init__(self, max_queued: int) -> None:
        self.items: deque[Callable[[], None] | None] = deque()
        self.max_queued = max_queued
        self.cond = threading.Condition()

    def put(self, items: list[Callable[[], None] | None], timeout: float | None = None) -> bool:
        """Queue `items` in order; blocks while the lane is full (False: still full after
        `timeout` seconds, the rest not queued)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            for item in items:
                while len(self.items) >= self.max_queued:
                    self.cond.notify_all()  # the lane, for what is queued already
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self.cond.wait(left)
                self.items.append(item)
            self.cond.notify_all()
        return True

    def take(self, wait: bool) -> list[Callable[[], None] | None]:
        """Everything queued (waiting for something when `wait`; else maybe nothing)."""
        with self.cond:
            while wait and not self.items:
                self.cond.wait()
            full = len(self.items) >= self.max_queued
            taken = list(self.items)
            self.items.clear()
            if full:
                self.cond.notify_all()  # putters waiting for room
            return taken


class Sender:
    """`LANES` threads sending `Call`s (and running any other queued action on lane 0)."""

    def __init__(
        self, lanes: int = LANES, max_queued: int = MAX_QUEUED, ca_bundle: str = ""
    ) -> None:
        self.ca_bundle = ca_bundle
        self.sent = 0
        self.refused = 0
        self.lost = 0
        self._lanes: list[_Lane] = []
        self._threads: list[threading.Thread] = []
        for number in range(lanes):
            lane = _Lane(max_queued)
            width = 1 if number == 0 else ROUND_WIDTH
            thread = threading.Thread(
                target=self._loop, args=(lane, width), name=f"mesos-sender-{number}", daemon=True
            )
            self._lanes.append(lane)
            self._threads.append(thread)
            thread.start()

    def put(self, actions: list[Callable[[], None]]) -> None:
        """Queue `actions` (`Call`s to the lane of their key, anything else to lane 0), in
        order, each lane's in one go; blocks while a lane is full."""
        per_lane: dict[int, list[Callable[[], None] | None]] = {}
        for action in actions:
            per_lane.setdefault(self._lane(getattr(action, "key", CONTROL)), []).append(action)
        for number, items in per_lane.items():
            self._lanes[number].put(items)

    def _lane(self, key: str) -> int:
        if key == CONTROL or len(self._lanes) == 1:
            return 0
        return 1 + zlib.crc32(key.encode()) % (len(self._lanes) - 1)

    def close(self, timeout: float) -> None:
        """Send what is queued (each lane within `timeout`), then stop."""
        for lane in self._lanes:
            lane.put([None], timeout)
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, lane: _Lane, width: int) -> None:
        """Lane 0 (`width` 1): one action after another on one connection. The others: a
        `Round` of up to `width` calls of distinct keys at a time; a second call of a key
        waits for the next round, so a task's acknowledgements keep their order."""
        session = connections(self.ca_bundle) if width == 1 else Round(self.ca_bundle, width)
        round_: list[Call] = []
        try:
            while True:
                actions = lane.take(wait=False)
                if not actions:
                    # before it waits: its log lines (the launches) out in one write, and
                    # any batch it submitted to the committer woken for (pipeline.py)
                    handed_over()
                    actions = lane.take(wait=True)
                for action in actions:
                    if isinstance(session, Round) and isinstance(action, Call):
                        if len(round_) == width or any(c.key == action.key for c in round_):
                            self._run_round(round_, session)
                            round_ = []
                        round_.append(action)
                        continue
                    if round_:
                        self._run_round(round_, session)  # type: ignore[arg-type]
                        round_ = []
                    if action is None:
                        return
                    self._run(action, session)  # type: ignore[arg-type]
                if round_:
                    self._run_round(round_, session)  # type: ignore[arg-type]
                    round_ = []
        finally:
            handed_over()
            session.clear()

    def _run_round(self, calls: list[Call], session: Round) -> None:
        """Each call's body added to `session` (`Call.send`), then all sent at once."""
        for call in calls:
            session.owner = call
            before = len(session._calls)
            try:
                call.send(session)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 (accounted as `_run` does)
                self._account(exc)
                continue
            if len(session._calls) == before:
                self.sent += 1  # nothing to send any more (failing, or no driver)
        for _, outcome in session.run():
            self._account(outcome)

    def _run(self, action: Callable[[], None], session: Connection) -> None:
        try:
            if isinstance(action, Call):
                action.send(session)
            else:
                action()
        except Exception as exc:  # noqa: BLE001 (accounted and logged)
            self._account(exc)
            return
        if isinstance(action, Call):
            self.sent += 1

    def _account(self, outcome: BaseException | None) -> None:
        """Count a call's outcome, and say it unless it was taken."""
        if outcome is None:
            self.sent += 1
        elif isinstance(outcome, CallRefused):
            self.refused += 1
            LOG.error("%s", outcome)
        elif isinstance(outcome, NotSubscribed):
            self.lost += 1
            LOG.info("not subscribed: the %s call is not sent (Mesos will ask again)", outcome)
        elif isinstance(outcome, CallLost):
            self.lost += 1
            LOG.warning("a call to the Mesos master failed (%s); Mesos will ask again", outcome)
        else:
            LOG.error("sending to Mesos failed", exc_info=outcome)
