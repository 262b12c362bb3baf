"""The scheduler's own sender: the frequent calls to the master, from a few keep-alive
connections, never from pymesos' event thread.

pymesos keeps the subscription (SUBSCRIBE and its event stream, master detection, the
stream ID) and sends the rare calls (RECONCILE, TEARDOWN). Its `_send` makes every call on
one `http.client` connection under the driver's lock (douban/pymesos
`pymesos/scheduler.py`, `MesosSchedulerDriver._send`), one at a time: at thousands of agents
the ACKNOWLEDGEs (12 per agent) and ACCEPTs (5 per agent) queue behind each other there.
Here they go out on `LANES` threads, each with its own kept-alive `http.client` connection
(`Connection`: the standard library's HTTP/1.1 client; urllib3's pool manager cost 310 µs
of CPU per call against 130 µs, and requests' twice urllib3's), as the Mesos v1 scheduler API
describes them: a POST of the JSON `Call` to `/api/v1/scheduler` with the
`Mesos-Stream-Id` header of the current subscription (apache/mesos
docs/scheduler-http-api.md, "Calls"; src/master/http.cpp rejects a call without it) and the
driver's `Authorization` (Basic, or DC/OS' `token=` in strict mode).

Order where Mesos needs it: an agent resends an update until it is acknowledged and sends
the next update of a task only then (src/slave/task_status_update_manager.cpp), so the
ACKNOWLEDGEs of one task go on one lane (chosen by task ID), in order; every other call
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

import http.client
import json
import logging
import queue
import select
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger("calico_dcos.sender")
LANES = 4
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
    """One kept-alive HTTP/1.1 connection to the current master (`http.client`), opened on
    first use and again after the master changes or the connection breaks. No retries of
    its own: a POST that may have arrived is never sent twice (an ACCEPT sent again would
    use an offer that no longer exists). Not thread-safe: one per sender lane.

    `ca_bundle`: verify the master's certificate against it (HTTPS), else the system's CAs.
    A context manager (`with connections() as session`), closed at exit."""

    def __init__(self, ca_bundle: str = "") -> None:
        self.ca_bundle = ca_bundle
        self._conn: http.client.HTTPConnection | None = None
        self._target: tuple[str, bool] | None = None
        self._tls: ssl.SSLContext | None = None
        self._used = 0.0  # when the connection last carried a call (monotonic seconds)

    def post(self, master: str, tls: bool, path: str, body: bytes, headers: dict) -> tuple:
        """POST `body` to `path` on `master` ("host:port"): (HTTP status, the answer's body,
        read whole so that the connection can carry the next call). `CallLost` when the
        master cannot be reached or the connection breaks."""
        conn = self._open(master, tls)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.clear()
            raise CallLost(f"{type(exc).__name__}: {exc}") from exc
        if response.will_close:
            self.clear()
        self._used = time.monotonic()
        return response.status, data

    def _open(self, master: str, tls: bool) -> http.client.HTTPConnection:
        """The kept connection if it is to `master` and still open, else a new one. A kept
        connection the master closed meanwhile reads as readable at EOF (as urllib3's
        `is_connection_dropped` checks): it is replaced before anything is sent on it. Checked
        only after `IDLE_CHECK_SECONDS` unused, since masters close idle connections (a busy
        lane would pay a system call, and the GIL handed over, at every call)."""
        conn = self._conn
        if conn is not None and self._target == (master, tls):
            sock = conn.sock
            if sock is None or time.monotonic() - self._used < IDLE_CHECK_SECONDS:
                return conn
            if not select.select([sock], [], [], 0)[0]:
                return conn
        self.clear()
        try:
            if tls:
                if self._tls is None:
                    self._tls = ssl.create_default_context(cafile=self.ca_bundle or None)
                conn = http.client.HTTPSConnection(
                    master, timeout=CONNECT_TIMEOUT_SECONDS, context=self._tls
                )
            else:
                conn = http.client.HTTPConnection(master, timeout=CONNECT_TIMEOUT_SECONDS)
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            raise CallLost(f"cannot connect to {master}: {exc}") from exc
        conn.sock.settimeout(READ_TIMEOUT_SECONDS)
        self._conn, self._target = conn, (master, tls)
        return conn

    def clear(self) -> None:
        """Close the connection (the next call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
        self._conn = self._target = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


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

    def post(self, session: Connection, body: dict | Encoded) -> None:
        """POST one `Call` (a dict, or `Encoded` JSON) on `session`; `CallRefused` for a
        4xx/5xx, `NotSubscribed` without a stream, `CallLost` when the master cannot be
        reached.

        Strict mode: a 401 makes the driver drop its token (`unauthorized`) and the call is
        sent once more with a fresh one, as pymesos' own calls are (calico_dcos/strict.py).
        """
        if isinstance(body, Encoded):
            call_type, data = body.type, body.data
        else:
            call_type, data = body["type"], json.dumps(body, separators=(",", ":")).encode()
        for attempt in (1, 2):
            driver = self._driver()
            stream_id = driver.stream_id if driver is not None else None
            if not stream_id:
                raise NotSubscribed(call_type)
            tls = getattr(driver, "tls_context", None) is not None
            headers = {
                "Mesos-Stream-Id": stream_id,
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            credential = driver._basic_credential  # pymesos' Authorization value, or None
            if credential:
                headers["Authorization"] = credential
            status, answer = session.post(driver.master, tls, PATH, data, headers)
            if status < 400:
                if getattr(driver, "unauthorized_in_a_row", None):
                    driver.unauthorized_in_a_row = 0
                return
            if status == 401 and attempt == 1 and hasattr(driver, "unauthorized"):
                driver.unauthorized(f"a {call_type} call")
                continue
            reason = answer[:1024].decode("utf-8", "replace")
            raise CallRefused(call_type, status, reason)


class Sender:
    """`LANES` threads sending `Call`s (and running any other queued action on lane 0)."""

    def __init__(
        self, lanes: int = LANES, max_queued: int = MAX_QUEUED, ca_bundle: str = ""
    ) -> None:
        self.ca_bundle = ca_bundle
        self.sent = 0
        self.refused = 0
        self.lost = 0
        self._queues: list[queue.Queue[Callable[[], None] | None]] = []
        self._threads: list[threading.Thread] = []
        for lane in range(lanes):
            q: queue.Queue[Callable[[], None] | None] = queue.Queue(max_queued)
            thread = threading.Thread(
                target=self._loop, args=(q,), name=f"mesos-sender-{lane}", daemon=True
            )
            self._queues.append(q)
            self._threads.append(thread)
            thread.start()

    def put(self, actions: list[Callable[[], None]]) -> None:
        for action in actions:
            self._queues[self._lane(getattr(action, "key", CONTROL))].put(action)

    def _lane(self, key: str) -> int:
        if key == CONTROL or len(self._queues) == 1:
            return 0
        return 1 + zlib.crc32(key.encode()) % (len(self._queues) - 1)

    def close(self, timeout: float) -> None:
        """Send what is queued (each lane within `timeout`), then stop."""
        for q in self._queues:
            try:
                q.put(None, timeout=timeout)
            except queue.Full:
                continue
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, q: queue.Queue[Callable[[], None] | None]) -> None:
        session = connections(self.ca_bundle)
        try:
            while (action := q.get()) is not None:
                self._run(action, session)
        finally:
            session.clear()

    def _run(self, action: Callable[[], None], session: Connection) -> None:
        try:
            if isinstance(action, Call):
                action.send(session)
                self.sent += 1
            else:
                action()
        except CallRefused as exc:
            self.refused += 1
            LOG.error("%s", exc)
        except NotSubscribed as exc:
            self.lost += 1
            LOG.info("not subscribed: the %s call is not sent (Mesos will ask again)", exc)
        except CallLost as exc:
            self.lost += 1
            LOG.warning("a call to the Mesos master failed (%s); Mesos will ask again", exc)
        except Exception:
            LOG.exception("sending to Mesos failed")
