"""The scheduler's own sender: the frequent calls to the master, from a few keep-alive
connections, never from pymesos' event thread.

pymesos keeps the subscription (SUBSCRIBE and its event stream, master detection, the
stream ID) and sends the rare calls (RECONCILE, TEARDOWN). Its `_send` makes every call on
one `http.client` connection under the driver's lock (douban/pymesos
`pymesos/scheduler.py`, `MesosSchedulerDriver._send`), one at a time: at thousands of agents
the ACKNOWLEDGEs (12 per agent) and ACCEPTs (5 per agent) queue behind each other there.
Here they go out on `LANES` threads, each with its own urllib3 `PoolManager` (one
kept-alive connection per master; urllib3 rather than requests, whose per-request work
doubled the scheduler's CPU per agent in the benchmark), as the Mesos v1 scheduler API
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

import json
import logging
import queue
import threading
import zlib
from collections.abc import Callable
from typing import Any

import urllib3

LOG = logging.getLogger("calico_dcos.sender")
LANES = 4
MAX_QUEUED = 20_000
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
CONTROL = ""  # the lane key of every call but acknowledgements


class CallRefused(Exception):
    """The master answered a call with an HTTP error: `status` and its text (`reason`)."""

    def __init__(self, call: str, status: int, reason: str) -> None:
        super().__init__(f"Mesos refused the {call} call ({status}): {reason}")
        self.call = call
        self.status = status
        self.reason = reason


class NotSubscribed(Exception):
    """No subscription (no stream ID): the call would be refused, so it is not sent."""


class Call:
    """One queued call: `send(session)` makes it; `key` picks its lane (a task ID keeps a
    task's acknowledgements in order; `CONTROL` for the rest)."""

    __slots__ = ("key", "send")

    def __init__(self, key: str, send: Callable[[urllib3.PoolManager], None]) -> None:
        self.key = key
        self.send = send

    def __call__(self) -> None:  # run in place (tests, or without a sender)
        with connections() as pool:
            self.send(pool)


def connections(ca_bundle: str = "") -> urllib3.PoolManager:
    """One kept-alive connection per master (HTTP, or HTTPS verified against `ca_bundle`);
    no retries of its own: a lost call is Mesos' to ask again."""
    return urllib3.PoolManager(
        num_pools=2,
        maxsize=1,
        block=False,
        retries=False,
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
        ca_certs=ca_bundle or None,
    )


class Master:
    """Where and how to call the master right now, read from the pymesos driver at each
    call (it changes on master failover and re-subscription)."""

    def __init__(self, driver: Callable[[], Any]) -> None:
        self._driver = driver

    def post(self, pool: urllib3.PoolManager, body: dict) -> None:
        """POST one `Call` on `pool`; `CallRefused` for a 4xx/5xx, `NotSubscribed` without a
        stream, urllib3's `HTTPError` when the master cannot be reached.

        Strict mode: a 401 makes the driver drop its token (`unauthorized`) and the call is
        sent once more with a fresh one, as pymesos' own calls are (calico_dcos/strict.py).
        """
        for attempt in (1, 2):
            driver = self._driver()
            stream_id = driver.stream_id if driver is not None else None
            if not stream_id:
                raise NotSubscribed(body["type"])
            tls = getattr(driver, "tls_context", None) is not None
            url = f"{'https' if tls else 'http'}://{driver.master}/api/v1/scheduler"
            headers = {
                "Mesos-Stream-Id": stream_id,
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            credential = driver._basic_credential  # pymesos' Authorization value, or None
            if credential:
                headers["Authorization"] = credential
            response = pool.request(
                "POST", url, body=json.dumps(body).encode(), headers=headers
            )  # the whole answer is read, so the connection goes back to the pool
            if response.status < 400:
                if getattr(driver, "unauthorized_in_a_row", None):
                    driver.unauthorized_in_a_row = 0
                return
            if response.status == 401 and attempt == 1 and hasattr(driver, "unauthorized"):
                driver.unauthorized(f"a {body['type']} call")
                continue
            reason = response.data[:1024].decode("utf-8", "replace")
            raise CallRefused(body["type"], response.status, reason)


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
        pool = connections(self.ca_bundle)
        try:
            while (action := q.get()) is not None:
                self._run(action, pool)
        finally:
            pool.clear()

    def _run(self, action: Callable[[], None], pool: urllib3.PoolManager) -> None:
        try:
            if isinstance(action, Call):
                action.send(pool)
                self.sent += 1
            else:
                action()
        except CallRefused as exc:
            self.refused += 1
            LOG.error("%s", exc)
        except NotSubscribed as exc:
            self.lost += 1
            LOG.info("not subscribed: the %s call is not sent (Mesos will ask again)", exc)
        except urllib3.exceptions.HTTPError as exc:
            self.lost += 1
            LOG.warning("a call to the Mesos master failed (%s); Mesos will ask again", exc)
        except Exception:
            LOG.exception("sending to Mesos failed")
