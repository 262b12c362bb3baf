"""pymesos' driver with the three things a real master needs that pymesos does not do.

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
   `json` whose `loads` is orjson's, falling back to the standard library's for whatever
   orjson refuses (NaN, lone surrogates), so every event decodes to the same objects (orjson
   makes a float of an integer beyond 64 bits, which no Mesos message holds: its integers
   are int32/int64/uint64, apache/mesos include/mesos/v1/mesos.proto). Reading and decoding
   an OFFERS event of 1,000 offers over loopback took 12 ms of CPU, 6 ms after
   (`scripts/call_cpu.py`).
5. The group committer is woken once per read, not once per event. pymesos' IO thread
   (`Process._run`) handles every event of a read, then waits in `select.select` for the
   next bytes; `pymesos.process.select` is set to `SelectHandingOver`, which first wakes the
   committer for the batches of the events just handled (`pipeline.handed_over`), as does a
   closed connection before its reconnection delay.
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
    def loads(text: str | bytes) -> object:
        """orjson's decoding, the standard library's for anything orjson refuses (raising
        the standard library's `json.JSONDecodeError` for text that is no JSON at all)."""
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)


class SelectHandingOver:
    """What `pymesos.process` takes for its `select` module: only `select.select` is used
    there, in the IO thread's loop (point 5 above)."""

    @staticmethod
    def select(*args: object) -> tuple[list, list, list]:
        handed_over()
        return select.select(*args)


def read_events_faster() -> None:
    """Make pymesos read `EVENT_RECV_BYTES` per wake-up, decode events with `EventJson`, and
    wake the group committer once per read (points 4 and 5 above; idempotent, for every
    driver of the process)."""
    pymesos.process.json = EventJson
    pymesos.process.PIPE_BUF = EVENT_RECV_BYTES
    pymesos.process.select = SelectHandingOver


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
