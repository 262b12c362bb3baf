"""pymesos' driver with what a real master needs that pymesos does not do, reading its
events in less CPU and memory.

1. Explicit reconciliation keeps each task's `agent_id`. pymesos' `reconcileTasks` sends
   the task IDs only (douban/pymesos `pymesos/scheduler.py`), and without the agent ID the
   master cannot answer for a task it does not know while any agent has yet to re-register
   after a failover (apache/mesos src/master/master.cpp, `Master::reconcile`).
2. A refused call is an exception that says what the master said. pymesos raises
   `RuntimeError("Failed to send request 400: ...")`; the sender's `CallRefused` keeps the
   status and the master's text (src/master/http.cpp: "Failed to validate scheduler::Call:
   ...", "Failed to convert JSON into Call protobuf: ...").
3. Reconnecting is bounded. When SUBSCRIBE is answered 503 ("Master has not finished
   recovery", a new leader recovering the registry) pymesos closes the connection and opens
   the next one at once (`pymesos/process.py`, `Process._run`: the backoff is only for
   connect errors), thousands of times a second. Here a connection that closes before its
   SUBSCRIBED waits before the next one, 0.1 s doubling to `MAX_RECONNECT_DELAY`.
4. Events are read in bigger pieces and decoded faster (`read_events_faster`). pymesos'
   `Connection.read` (`pymesos/process.py`) takes `PIPE_BUF` (4 KiB) from the socket per
   wake-up and appends it to the event's bytes so far, which copies a 1 MB OFFERS event
   (a round of 1,000 offers) ~250 times; and it decodes each RecordIO record with its
   module's `json.loads`. Both are names in `pymesos.process` that it reads at each call,
   so they are set there rather than the method copied: `EVENT_RECV_BYTES` per read, and a
   `json` whose `loads` is orjson's for events under `LARGE_EVENT_BYTES` (a larger one is
   the standard library's: `EventJson.loads` says why), falling back to the standard
   library's for whatever orjson refuses (NaN, lone surrogates), so every event decodes to
   the same objects (orjson
   makes a float of an integer beyond 64 bits, which no Mesos message holds: its integers
   are int32/int64/uint64, apache/mesos include/mesos/v1/mesos.proto). Reading and decoding
   an OFFERS event of 1,000 offers over loopback took 12 ms of CPU, 6 ms after
   (`scripts/call_cpu.py`).
5. The group committer is woken once per read, not once per event. pymesos' IO thread
   (`Process._run`) handles every event of a read, then waits in `select.select` for the
   next bytes; `pymesos.process.select` is set to `SelectHandingOver`, which first wakes the
   committer for the batches of the events just handled (`pipeline.handed_over`), as does a
   closed connection before its reconnection delay.
6. An event's bytes and objects die as soon as they can (`EventStream`, issue 17, peak
   RSS). pymesos' `Connection.read` appends each read's body to the bytes so far (a new
   object each time: 256 KiB, 512 KiB, ... for an OFFERS event of 1,000 offers, 0.6-0.8
   MB), copies each record out of them, decodes a `str` copy of the record, and keeps the
   record's bytes, and the event just handled, until it decodes the next record or
   returns. Here the body goes into one `bytearray` whose records are decoded in place
   (through a `memoryview`, no copy), each record's bytes are dropped before its event is
   handed over, and the event is dropped once handled. The status line and headers are
   still pymesos' own (redirect, 503, errors, the stream ID), and so is the HTTP chunked
   decoding (http_parser's `HttpParser`, as pymesos uses it).
"""

from __future__ import annotations

import ast
import json
import logging
import re
import select
import threading
from collections.abc import Iterable, Mapping

import orjson
import pymesos.process
from pymesos import MesosSchedulerDriver

from calico_dcos.pipeline import handed_over
from calico_dcos.sender import CallRefused

LOG = logging.getLogger("calico_dcos.driver")
FIRST_RECONNECT_DELAY = 0.1
MAX_RECONNECT_DELAY = 5.0
EVENT_RECV_BYTES = 256 * 1024  # pymesos' own: 4 KiB (select.PIPE_BUF)
LARGE_EVENT_BYTES = 64 * 1024  # decoded by the standard library (`EventJson.loads`)
# RecordIO (apache/mesos docs/scheduler-http-api.md, "RecordIO response format"): each
# event is "<length in bytes>\n<JSON>"; a uint64 length has at most 20 digits
MAX_LENGTH_DIGITS = 20
_REFUSED = re.compile(r"^Failed to send request (\d+): (b'.*'|b\".*\")\n", re.S)


def refused(exc: BaseException, call: str) -> CallRefused | None:
    """The refusal inside pymesos' RuntimeError (`Failed to send request 400: b'...'`) as
    the sender's `CallRefused`, or None for any other error."""
    match = _REFUSED.match(str(exc))
    if match is None:
        return None
    try:
        text = ast.literal_eval(match.group(2)).decode("utf-8", "replace")
    except (ValueError, SyntaxError):
        text = match.group(2)
    return CallRefused(call, int(match.group(1)), text)


def reconcile_call(framework_id: str, tasks: Iterable[tuple[str, str | None]]) -> dict:
    """A RECONCILE call for (task ID, agent ID or None) pairs; no pairs: implicit."""
    items = []
    for task_id, agent_id in tasks:
        item: dict = {"task_id": {"value": task_id}}
        if agent_id:
            item["agent_id"] = {"value": agent_id}
        items.append(item)
    return {
        "type": "RECONCILE",
        "framework_id": {"value": framework_id},
        "reconcile": {"tasks": items},
    }


class EventJson:
    """What `pymesos.process` takes for its `json` module: only `loads` is used there."""

    @staticmethod
    def loads(text: str | bytes | memoryview) -> object:
        """orjson's decoding for a document under `LARGE_EVENT_BYTES`, the standard
        library's for a larger one and for anything orjson refuses (raising the standard
        library's `json.JSONDecodeError` for text that is no JSON at all). `text` may be a
        `memoryview` of UTF-8 bytes (`EventStream`).

        Why not orjson for a large one: orjson allocates, before it parses, a buffer of 12
        bytes per byte of the document and keeps it until every Python object is made
        (ijl/orjson `src/deserialize/backend/yyjson.rs`, `buffer_capacity_to_allocate`:
        "json_size / 2 * 16 * 1.5"), 9.8 MB for the largest OFFERS event at 1,000 agents
        (0.82 MB). Once glibc has freed one such buffer, it takes the next ones from the
        heap rather than mmap (its mmap threshold rises to the largest chunk freed: glibc
        `malloc/malloc.c`, `__libc_free`), so their pages stay with the process. The
        standard library's decoder needs the document as `str` (one copy) and takes ~5 ms
        more CPU per MB: ~40 ms in a 1,000-agent install (19 events over 64 KiB, 8.0 MB)."""
        if len(text) >= LARGE_EVENT_BYTES:
            return json.loads(str(text, "utf-8") if isinstance(text, memoryview) else text)
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(str(text, "utf-8") if isinstance(text, memoryview) else text)


class SelectHandingOver:
    """What `pymesos.process` takes for its `select` module: only `select.select` is used
    there, in the IO thread's loop (point 5 above)."""

    @staticmethod
    def select(*args: object) -> tuple[list, list, list]:
        handed_over()
        return select.select(*args)


class EventStream(pymesos.process.Connection):
    """pymesos' connection to the master, whose event stream's records are decoded in
    place and dropped as soon as they are decoded (point 6 above). pymesos' IO thread
    (`Process._run`) makes one per subscription, as `pymesos.process.Connection`, and calls
    `read` whenever the socket is readable: False closes the connection (pymesos then
    opens the next one), an exception ends the driver, as with pymesos' own `read`."""

    def __init__(self, addr: str, callback: pymesos.process.Process) -> None:
        super().__init__(addr, callback)
        self._records = bytearray()  # the body's bytes not yet decoded

    def read(self) -> bool:
        if self._stream_id is None:  # status line and headers (and what came with them)
            return super().read()
        try:
            data = self._sock.recv(EVENT_RECV_BYTES)
        except BlockingIOError:  # EAGAIN: select woke for nothing
            return True
        except OSError:
            LOG.exception("failed to read the event stream from %s", self._addr)
            return False
        if not data:
            LOG.error("the master %s closed the event stream", self._addr)
            return False
        parsed = self._parser.execute(data, len(data))
        if parsed != len(data):
            errno_of = getattr(self._parser, "get_errno", lambda: "?")
            raise RuntimeError(f"Failed to parse the event stream's HTTP, code:{errno_of()}")
        del data
        if self._parser.is_partial_body():
            if self._response:  # a record's start read with the headers (pymesos' own read)
                self._records += self._response
                self._response = b""
            self._records += self._parser.recv_body()
            if not self._hand_over():
                return False
        if self._parser.is_message_complete():
            LOG.debug("event stream ended")
            return False
        return True

    def _hand_over(self) -> bool:
        """Decode every whole record, each one's bytes dropped before its event is handed
        to pymesos (`Process.process_event`) and its event dropped after. False for a
        record whose length is no number (the stream is no RecordIO: close it)."""
        records = self._records
        while records:
            newline = records.find(b"\n", 0, MAX_LENGTH_DIGITS + 1)
            if newline < 0:
                if len(records) <= MAX_LENGTH_DIGITS:
                    return True  # the length's digits are still coming
                LOG.error("the event stream from %s is not RecordIO: %r", self._addr,
                          bytes(records[:MAX_LENGTH_DIGITS]))  # fmt: skip
                return False
            digits = bytes(records[:newline])
            if not digits.isdigit():
                LOG.error("the event stream from %s is not RecordIO: record length %r",
                          self._addr, digits)  # fmt: skip
                return False
            end = newline + 1 + int(digits)
            if len(records) < end:
                return True  # the record is still coming
            with memoryview(records) as view, view[newline + 1 : end] as record:
                try:
                    event = EventJson.loads(record)
                except ValueError:
                    LOG.exception("event of %d bytes is no JSON: %r…", end - newline - 1,
                                  bytes(record[:200]))  # fmt: skip
                    raise
            # in place: CPython moves the bytearray's start, and gives the buffer back once
            # less than half of it is in use (Objects/bytearrayobject.c, `PyByteArray_Resize`)
            del records[:end]
            try:
                self._callback.process_event(event)
            except OSError:  # as pymesos' own `read`: its `except socket.error` took these
                LOG.exception("failed to handle an event: reconnecting")
                return False  # closed: pymesos opens the next connection
            except Exception:
                LOG.exception("failed to handle an event")
                raise
            del event
        return True


def read_events_faster() -> None:
    """Make pymesos read `EVENT_RECV_BYTES` per wake-up, decode events with `EventJson` in
    place (`EventStream`), and wake the group committer once per read (points 4 to 6 above;
    idempotent, for every driver of the process)."""
    pymesos.process.json = EventJson
    pymesos.process.PIPE_BUF = EVENT_RECV_BYTES
    pymesos.process.select = SelectHandingOver
    if not issubclass(pymesos.process.Connection, EventStream):  # strict's TlsConnection is one
        pymesos.process.Connection = EventStream


class Driver(MesosSchedulerDriver):
    """`MesosSchedulerDriver` plus agent IDs in reconciliation, `CallRefused`, a bounded
    reconnection loop, and faster event reading. Same constructor."""

    def __init__(self, *args, **kwargs) -> None:
        read_events_faster()
        super().__init__(*args, **kwargs)
        self._reconnect_delay = 0.0
        self._subscribed_since_close = False
        self._stopped = threading.Event()

    # 1. Reconciliation --------------------------------------------------------------------

    def reconcileTasks(self, tasks: Iterable[Mapping]) -> None:  # noqa: N802 (pymesos' name)
        """As pymesos', but each task's `agent_id` goes to the master too."""
        if not self.connected:
            return
        pairs = [(t["task_id"]["value"], (t.get("agent_id") or {}).get("value")) for t in tasks]
        self._send(reconcile_call(self.framework_id, pairs))

    # 2. Refusals ---------------------------------------------------------------------------

    def _send(self, body, *args, **kwargs):
        """Every call (ACCEPT, DECLINE, KILL, ACKNOWLEDGE, ...): `CallRefused` for a 4xx/5xx."""
        try:
            return super()._send(body, *args, **kwargs)
        except RuntimeError as exc:
            refusal = refused(exc, body.get("type", "call") if isinstance(body, dict) else "call")
            if refusal is None:
                raise
            raise refusal from exc

    # 3. Bounded reconnection ---------------------------------------------------------------

    def on_subscribed(self, info):
        self._subscribed_since_close = True
        self._reconnect_delay = 0.0
        return super().on_subscribed(info)

    def on_close(self):
        """Runs on pymesos' IO thread just before it opens the next connection: a
        connection that never got its SUBSCRIBED (503, refused, dropped) makes it wait."""
        handed_over()  # the events read before the close: their batches go to the committer
        super().on_close()
        if self._subscribed_since_close or self._stopped.is_set():
            self._subscribed_since_close = False
            return
        self._reconnect_delay = min(
            MAX_RECONNECT_DELAY, max(FIRST_RECONNECT_DELAY, self._reconnect_delay * 2)
        )
        LOG.info(
            "no subscription on %s; next attempt in %.1f s", self.master, self._reconnect_delay
        )
        self._stopped.wait(self._reconnect_delay)

    def stop(self, failover=False):
        self._stopped.set()
        return super().stop(failover)
