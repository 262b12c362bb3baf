"""The only code that touches pymesos: callbacks become plan events, decisions become calls.

Decisions are applied in two passes: store writes first, then driver calls, so that a launch
is on record before its ACCEPT leaves (a crash in between is answered by reconciliation).
Both passes leave pymesos' event thread: each event's writes and calls go to the group
committer (`calico_dcos.pipeline`), which writes many events' records with one fsync (or
one ZooKeeper transaction) and only then hands their calls, and the acknowledgement of the
update that caused them, to the sender thread, in order.
A pymesos callback that raises aborts the driver, so every callback logs and carries on.

The core (`calico_dcos.core.interface.Core`) is chosen at construction: the deploy plan
(`plans.deploy`), or the uninstall (`plans.uninstalling(revert_hosts)`), whose last two
decisions are `Teardown` (the only path that stops the driver without failover, so that
pymesos sends TEARDOWN) and `WipeState`. `Note` decisions are log lines.

FrameworkInfo choices:
- MULTI_ROLE: offers from `*` and `slave_public` (public agents) in one framework.
- PARTITION_AWARE: a partitioned agent's daemons are reported TASK_UNREACHABLE (not
  terminal: the plan waits instead of launching a second copy) and TASK_GONE when they are
  really gone; the agent-restarting CNI step is cut off with TASK_GONE, not a failure.
- TASK_KILLING_STATE: a daemon being replaced shows TASK_KILLING during its grace period.
- `failover=True` in the driver as well as `stop(failover=True)`: no path of ours (not even
  pymesos' abort) sends TEARDOWN; only the uninstall's `Teardown` removes the framework.
- Explicit acknowledgements: an update is acknowledged after its effect is stored, so a
  crash in between makes the agent send it again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pymesos import MesosSchedulerDriver, Scheduler

from calico_dcos import plans
from calico_dcos.core import events as ev
from calico_dcos.core.config import PlanConfig
from calico_dcos.core.interface import Core
from calico_dcos.core.records import parse_task_id
from calico_dcos.core.uninstall import Uninstall
from calico_dcos.core.views import combine
from calico_dcos.dcos_auth import again_after_401
from calico_dcos.driver import Driver
from calico_dcos.master_flags import GET_FLAGS, MasterFlags
from calico_dcos.metrics import DECLINED, REVIVE_REASON
from calico_dcos.options import read_secret, roles
from calico_dcos.pipeline import Action, Batch, Pipeline, Write, coalesce
from calico_dcos.report_auth import ReportKey, with_report_token
from calico_dcos.sandbox import AgentFiles
from calico_dcos.sender import CONTROL, Call, CallRefused, Encoded, Master, Sender
from calico_dcos.steps import fetch_hint, fetch_output_hint
from calico_dcos.store import encode_document

if TYPE_CHECKING:  # strict.py loads cryptography (dcos_auth only in its functions)
    from calico_dcos.dcos_auth import TokenSource
    from calico_dcos.strict import StrictSchedulerDriver

LOG = logging.getLogger("calico_dcos.scheduler")
# Seconds after a subscription to ask the master for its agents if no OFFERS event came first
# (`Scheduler._ask_for_agents`).
AGENTS_ASK_FALLBACK_SECONDS = 2.0
FRAMEWORK_REMOVED = "Framework has been removed"
HEALTHY, WAITING, BROKEN = "healthy", "waiting", "broken"  # what /v1/health answers
REFUSAL_MAX_BACKOFF_SECONDS = 30.0
# How long an operator command's reply waits for what it changed to be stored. The group
# committer gathers for at most 10 ms (pipeline.GATHER_SECONDS) and a ZooKeeper write takes
# milliseconds; past this the store is in trouble, and the reply says so instead of "done".
COMMAND_DURABLE_SECONDS = 10.0
MAX_STATUS_MESSAGE_CHARS = 1024  # 5 steps of it stay far inside an agent record's bound


def framework_info(options: Mapping, framework_id: str | None, webui_url: str) -> dict:
    service = options["service"]
    info = {
        "name": service["name"],
        "user": service["user"],
        "roles": roles(options),
        "capabilities": [
            {"type": "MULTI_ROLE"},
            {"type": "PARTITION_AWARE"},
            {"type": "TASK_KILLING_STATE"},
        ],
        "checkpoint": True,
        "failover_timeout": float(service["failover_timeout_seconds"]),
        "webui_url": webui_url,
    }
    if service["principal"]:
        info["principal"] = service["principal"]
    if framework_id:
        info["id"] = {"value": framework_id}
    return info


def bounded_status(
    status: Mapping, options: Mapping | None = None, artifacts_url: str = ""
) -> Mapping:
    """The update as the plan sees it: a message of at most `MAX_STATUS_MESSAGE_CHARS`,
    led by the option to change when it says a download failed (`steps.fetch_hint`: the
    one that gave the failed URI, with the scheduler's `options` and `artifacts_url`).

    The message is free text from the executor (a failed command's output, a health check's)
    and is stored in the agent's record, which has a size bound (store.MAX_RECORD_BYTES)."""
    message = status.get("message")
    parsed = parse_task_id(status.get("task_id", {}).get("value", ""))
    if isinstance(message, str) and parsed:
        hinted = fetch_hint(parsed[0], message, options, artifacts_url)
        if hinted != message:
            status, message = {**status, "message": hinted}, hinted
    if not isinstance(message, str) or len(message) <= MAX_STATUS_MESSAGE_CHARS:
        return status
    return {**status, "message": message[: MAX_STATUS_MESSAGE_CHARS - 1] + "…"}


@dataclass(frozen=True, slots=True)
class EncodedLaunch:
    """A decided launch (`ev.Launch`) waiting for its group commit and the sender: its
    TaskInfo, with the agent's report token, as JSON (`CalicoScheduler._encoded`)."""

    offer_id: str
    agent_id: str
    task_id: str
    task_json: str
    refuse_seconds: float

    def accept_call(self, framework_id: str) -> bytes:
        """The ACCEPT `Call` with one LAUNCH of the task (Mesos v1 scheduler API, as
        pymesos' `launchTasks` builds it: douban/pymesos `pymesos/scheduler.py`)."""
        dumps = json.dumps
        return (
            f'{{"type":"ACCEPT","framework_id":{{"value":{dumps(framework_id)}}},'
            f'"accept":{{"offer_ids":[{{"value":{dumps(self.offer_id)}}}],'
            f'"operations":[{{"type":"LAUNCH","launch":{{"task_infos":[{self.task_json}]}}}}],'
            f'"filters":{{"refuse_seconds":{dumps(self.refuse_seconds)}}}}}}}'
        ).encode()


def within(timeout: float, fn: Callable[[], None], what: str) -> bool:
    """Run `fn` on a daemon thread; give up waiting after `timeout` seconds."""
    thread = threading.Thread(target=fn, name=what, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        LOG.warning("%s took longer than %.0f s; going on without it", what, timeout)
    return not thread.is_alive()


class BusyMeter:
    """How much of its time pymesos' event thread spends in our callbacks (the benchmark's
    "event-thread busy share"): while a callback runs, pymesos reads no further event.

    `busy_seconds` sums callback durations (perf_counter); the window runs from the first
    callback to `summary()`. Callbacks run on one thread, so no lock is needed.
    """

    def __init__(self) -> None:
        self.busy_seconds = 0.0
        self.callbacks = 0
        self.first: float | None = None

    def start(self) -> float:
        """A callback begins: its start, for `stop` (two calls rather than a context manager,
        whose generator costs more than the measurement on pymesos' event thread)."""
        started = time.perf_counter()
        if self.first is None:
            self.first = started
        return started

    def stop(self, started: float) -> None:
        """The callback begun at `started` ended (raising or not)."""
        self.busy_seconds += time.perf_counter() - started
        self.callbacks += 1

    def summary(self) -> dict:
        window = 0.0 if self.first is None else time.perf_counter() - self.first
        return {
            "busy_seconds": self.busy_seconds,
            "window_seconds": window,
            "callbacks": self.callbacks,
        }


class CalicoScheduler(Scheduler):
    """Feeds the plan from pymesos and applies its decisions. Thread-safe: one lock."""

    def __init__(
        self,
        options: Mapping,
        store: Any,
        artifacts_url: str,
        webui_url: str = "",
        master: str | None = None,
        timings: Mapping[str, float] | None = None,
        tick_seconds: float = 0.5,
        heartbeat_timeout: float = 75.0,
        refusal_timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
        core: plans.CoreFactory = plans.deploy,
        tokens: TokenSource | None = None,
        after_group_commit: Callable[[int, list[Batch]], None] | None = None,
    ) -> None:
        self.options = options
        self.tokens = tokens  # strict mode: the service account's DC/OS tokens
        self.store = store
        self.artifacts_url = artifacts_url
        self.webui_url = webui_url or artifacts_url
        self.master = master or options["service"]["master"]
        self.timings = dict(timings or {})
        self.tick_seconds = tick_seconds
        self.heartbeat_timeout = heartbeat_timeout
        self.refusal_timeout = refusal_timeout  # refused this long: exit with the reason
        self._refusals = 0  # subscriptions refused in a row
        self._refused_since: float | None = None  # monotonic, first refusal of the row
        self.refusal: str | None = None  # the master's last reason
        self._fresh = False  # the driver registers without a framework ID
        self._agents_asked = threading.Lock()
        self._agents_due = False  # subscribed: ask `/master/slaves` (`_ask_for_agents`)
        self._agents_timer: threading.Timer | None = None  # its fallback, until OFFERS come
        # The core's time: the wall clock read once, then moved on by the monotonic clock,
        # so that every timer, backoff and deadline is immune to steps of the wall clock
        # (NTP, a VM resumed) while stored times still read as wall time for people.
        self.clock = clock
        self._epoch = clock() - time.monotonic()
        self.lock = threading.RLock()
        self.counters: Counter[str] = Counter()
        self._declined_lock = threading.Lock()  # the sender's lanes count DECLINEs at once
        self.busy = BusyMeter()  # pymesos' event thread in our callbacks
        self.artifacts: dict[str, Path] = {}  # served at /v1/artifacts/<name>
        self.failure: str | None = None  # why the scheduler must exit non-zero
        self.plan: Core = core(options, artifacts_url, store, self.timings)
        self.report_key = ReportKey.load_or_create(store)  # agents' report tokens
        self.uninstalled = threading.Event()  # set once torn down and wiped
        self.driver: MesosSchedulerDriver | None = None
        self._started_driver: MesosSchedulerDriver | None = None  # `_watch_driver`
        self._torn_down: MesosSchedulerDriver | None = None
        self._last_heartbeat = time.monotonic()
        self._subscribed_at: float | None = None  # monotonic, first SUBSCRIBED
        self._converged_at: float | None = None  # monotonic, plan first complete
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self._wake_at: float | None = None  # the plan's `wake_at` after the last event
        self._woken = threading.Event()  # the ticker: `_wake_at` moved, or stopping
        self.sender = Sender(ca_bundle=options["service"]["ca_bundle"])
        self.master_api = Master(lambda: self.driver)
        self._frameworks_unseen: str | None = None  # `_another_framework`'s warning
        service = options["service"]  # the principal GET_FLAGS is asked as (`_ask_master_once`)
        self.master_flags = MasterFlags(
            tokens.account.uid
            if tokens
            else (service["principal"] if service["principal"] and service["secret_file"] else None)
        )
        # the end of failed tasks' stderr, read from their agents (`ReadStderr`)
        self.agent_files = AgentFiles(
            self._task_output, self._agent_credential, options["service"]["ca_bundle"], tokens
        )
        self.pipeline = Pipeline(
            self.store.put_many,
            self.sender.put,
            lambda exc: self.fail(f"state store write failed: {exc}"),
            after_commit=after_group_commit,
        )

    def now(self) -> float:
        """The core's time in seconds: monotonic, anchored to the wall clock at start."""
        return self._epoch + time.monotonic()

    def _config(self, options: Mapping) -> PlanConfig:
        return plans.config_from_options(options, self.artifacts_url, **self.timings)

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> CalicoScheduler:
        if self.tokens is not None:  # renewed in the background, through IAM outages
            self.tokens.keep_renewed(self.fail)
        self._start_driver()
        self._ticker = threading.Thread(target=self._tick_loop, name="plan-ticker", daemon=True)
        self._ticker.start()
        return self

    def _start_driver(self) -> None:
        service = self.options["service"]
        principal = service["principal"] or None
        secret = None
        if principal and service["secret_file"]:
            secret = read_secret(service["secret_file"], "service.secret_file")
        info = framework_info(self.options, self.plan.framework_id, self.webui_url)
        self._fresh = "id" not in info  # registering anew: is an old framework still there?
        self._last_heartbeat = time.monotonic()
        if self.tokens is not None:
            self.driver = self._strict_driver(info)
        else:
            self.driver = Driver(
                self,
                info,
                self.master,
                use_addict=False,
                implicit_acknowledgements=False,
                principal=principal,
                secret=secret,
                failover=True,
            )
        LOG.info(
            "subscribing to %s as %r (framework ID %s)", self.master, info["name"], info.get("id")
        )
        driver = self.driver
        driver.start()
        self._started_driver = driver  # only now may `aborted` mean its IO thread died

    def _strict_driver(self, info: dict) -> StrictSchedulerDriver:
        """DC/OS strict mode: the service account's uid is the principal, its token is on
        every request, and the master's TLS certificate is verified (`strict.py`)."""
        from calico_dcos.strict import StrictSchedulerDriver, master_address

        assert self.tokens is not None
        info["principal"] = self.tokens.account.uid
        return StrictSchedulerDriver(
            self,
            info,
            master_address(self.master),
            self.tokens,
            self.options["service"]["ca_bundle"],
            use_addict=False,
            implicit_acknowledgements=False,
            failover=True,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Leave the framework to Mesos (failover): tasks keep running, a restart resumes.

        Bounded: a callback stuck on an unreachable store must not keep the process from
        exiting (the threads are daemons; Mesos and the store keep what was done).
        """
        self._stopping.set()
        self._woken.set()
        if self.tokens is not None:
            self.tokens.close()
        if self._ticker is not None:
            self._ticker.join(timeout)
        self.pipeline.close(timeout)  # what is decided is written, and its calls sent
        self.sender.close(timeout)
        self.agent_files.close(timeout)
        within(timeout, self._stop_driver, "stopping the pymesos driver")

    def _stop_driver(self) -> None:
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.stop(failover=True)
            driver.join()

    def request_stop(self) -> None:
        """From a signal handler: `wait` returns and the caller stops the service."""
        self._stopping.set()
        self._woken.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once a stop was requested or the scheduler failed (see `failure`)."""
        return self._stopping.wait(timeout)

    def fail(self, why: str) -> None:
        """Something the process cannot recover from in place: stop acting at once, and
        let the caller exit non-zero so that Marathon restarts the process."""
        LOG.error("scheduler failing: %s", why)
        self.failure = why
        self._stopping.set()
        self._woken.set()

    def _tick_loop(self) -> None:
        """`on_tick` every `tick_seconds`, and once at each `wake_at` of the plan that comes
        sooner (a REVIVE waiting for its coalescing window: without this it would wait for
        the next periodic tick, up to 0.5 s, or for the allocation round it stands in for)."""
        next_tick = time.monotonic() + self.tick_seconds
        woke_for: float | None = None  # the last `wake_at` ticked for: once each
        while not self._stopping.is_set():
            wake = self._wake_at
            due = next_tick
            if wake is not None and wake != woke_for:
                due = min(due, wake - self._epoch)  # plan clock -> monotonic
            if self._woken.wait(max(0.0, due - time.monotonic())):
                self._woken.clear()
                continue  # `_wake_at` moved: wait again, for the sooner time
            if self._stopping.is_set():
                break
            if due != next_tick:
                woke_for = wake
            else:
                next_tick = time.monotonic() + self.tick_seconds
            try:
                self._watch_driver()
                self._event("tick", lambda now: self.plan.on_tick(now))
            except Exception:
                LOG.exception("tick failed")

    def _watch_driver(self) -> None:
        driver = self.driver
        # A driver made but not yet started reads as aborted too (pymesos' `aborted` is
        # "not started"): the ticker could see one between `_start_driver`'s two steps.
        if driver is not None and driver is self._started_driver and driver.aborted:
            self.fail("the pymesos driver stopped (its IO thread died)")
            return
        silent = time.monotonic() - self._last_heartbeat
        if self.plan.subscribed and silent > self.heartbeat_timeout:
            LOG.warning("no heartbeat for %.0f s: reconnecting to Mesos", silent)
            self._reconnect()

    def _reconnect(self) -> None:
        """pymesos has no heartbeat watchdog: a fresh driver subscribes anew (failover)."""
        with self.lock:
            self.plan.on_disconnected()
        self._stop_driver()
        self._start_driver()

    # -- applying decisions --------------------------------------------------------------

    def _event(
        self,
        name: str,
        handler: Callable[[float], list[ev.Decision]],
        then: Action | None = None,
    ) -> bool:
        """Feed one event to the plan and queue its decisions (not once failed: False);
        `then` (an acknowledgement) runs after them, once their writes are durable."""
        with self.lock:
            if self.failure:
                LOG.info("not acting on %s: %s", name, self.failure)
                return False
            self._apply(handler(self.now()), then, name)
            self._note_convergence()
            wake = self.plan.wake_at
            if wake != self._wake_at:
                self._wake_at = wake
                self._woken.set()
            return True

    def _note_convergence(self) -> None:
        if self._converged_at is None and self._subscribed_at is not None and self.plan.complete:
            self._converged_at = time.monotonic()
            LOG.info("every agent done %.1f s after subscribing", self.convergence_seconds())

    def _apply(
        self, decisions: list[ev.Decision], then: Action | None = None, cause: str = ""
    ) -> None:
        """Store writes, then driver calls, through the group committer: a write that fails
        stops the scheduler before any later call (the store is the truth a restart resumes
        from, and an update that is not acknowledged comes again).

        `decisions` is consumed (emptied): each decision, and each record dict, is let go as
        soon as its encoded form is made, so that at the first offer round (a launch and a
        record per agent) the dicts and their JSON are not all alive together (issue 17)."""
        writes: list[Write] = []
        actions: list[Action] = []
        decisions.reverse()
        while decisions:
            decision = decisions.pop()
            if isinstance(decision, ev.SaveAgent):
                writes.append(("agent", decision.agent_id, decision.record))
            elif isinstance(decision, ev.DeleteAgent):
                writes.append(("agent", decision.agent_id, None))  # deleted
            elif isinstance(decision, ev.SaveFrameworkId):
                writes.append(("framework_id", "", {"framework_id": decision.framework_id}))
            elif isinstance(decision, ev.SaveMeta):
                writes.append(("meta", decision.key, decision.value))
            elif isinstance(decision, ev.Launch):
                actions.append(Call(CONTROL, partial(self._send_call, self._encoded(decision))))
            elif isinstance(decision, ev.Decline | ev.Kill | ev.Revive):
                actions.append(Call(CONTROL, partial(self._send_call, decision)))
            else:
                actions.append(partial(self._call_safely, decision))
        if then is not None:
            actions.append(then)
        # The last write of each record only (a new agent's offer and its launch are two),
        # encoded now: thousands of records may wait for their group (`encode_document`).
        writes = coalesce(writes)
        for i, (kind, name, doc) in enumerate(writes):
            if kind == "agent" and doc is not None:
                writes[i] = (kind, name, encode_document(doc))
        self.pipeline.submit(Batch(writes, actions, cause))

    def _encoded(self, launch: ev.Launch) -> EncodedLaunch:
        """The launch with its TaskInfo (the agent's report token in it) as JSON, made when it
        is decided: at the first offer round every agent's launch waits for its group commit
        and its turn on the control lane, and the JSON is a fifth of the dict's memory."""
        task = with_report_token(launch.task_info, self.report_key)
        return EncodedLaunch(
            launch.offer_id,
            launch.agent_id,
            launch.task_info["task_id"]["value"],
            orjson.dumps(task).decode(),
            launch.refuse_seconds,
        )

    def _send_call(self, decision: ev.Decision | EncodedLaunch, session: Any) -> None:
        """ACCEPT, DECLINE, KILL or REVIVE, from the sender (`calico_dcos.sender`), as
        pymesos' driver would build it (douban/pymesos `pymesos/scheduler.py`)."""
        driver = self.driver
        if self.failure or driver is None:
            return
        framework_id = {"value": driver.framework_id}
        body: dict | Encoded
        if isinstance(decision, EncodedLaunch):
            self.counters["ACCEPT"] += 1
            LOG.info("launching %s on %s", decision.task_id, decision.agent_id)
            body = Encoded("ACCEPT", decision.accept_call(driver.framework_id))
        elif isinstance(decision, ev.Decline):
            self.counters["DECLINE"] += 1
            body = {
                "type": "DECLINE",
                "framework_id": framework_id,
                "decline": {
                    "offer_ids": [{"value": offer_id} for offer_id in decision.offer_ids],
                    "filters": {"refuse_seconds": decision.refuse_seconds},
                },
            }
        elif isinstance(decision, ev.Kill):
            self.counters["KILL"] += 1
            LOG.info("killing %s", decision.task_id)
            body = {
                "type": "KILL",
                "framework_id": framework_id,
                "kill": {"task_id": {"value": decision.task_id}},
            }
        else:
            self.counters["REVIVE"] += 1
            for reason in decision.reasons or ("unknown",):  # `metrics.revives_metric`
                self.counters[f"{REVIVE_REASON}{reason}"] += 1
            body = {"type": "REVIVE", "framework_id": framework_id}
        try:
            self.master_api.post(session, body)
        except CallRefused as refused:
            if not isinstance(decision, EncodedLaunch):
                raise
            self._launch_refused(session, decision, refused)
            return
        if isinstance(decision, ev.Decline):  # sent and taken: `offers_declined_total`
            with self._declined_lock:
                self.counters[DECLINED] += len(decision.offer_ids)

    def _launch_refused(self, session: Any, launch: EncodedLaunch, refused: CallRefused) -> None:
        """The master refused the ACCEPT (apache/mesos src/master/http.cpp: a 400 names what
        it could not parse or validate), so the call had no effect: the offer is still
        outstanding and the task never existed. Say why, give the offer back, and fail the
        step with the master's words (an ERROR an operator sees); other agents go on."""
        task_id = launch.task_id
        LOG.error("Mesos refused the launch of %s on %s: %s", task_id, launch.agent_id, refused)
        self.counters["REFUSED"] += 1
        decline = {
            "type": "DECLINE",
            "framework_id": {"value": self.driver.framework_id if self.driver else ""},
            "decline": {
                "offer_ids": [{"value": launch.offer_id}],
                "filters": {"refuse_seconds": launch.refuse_seconds},
            },
        }
        try:
            self.master_api.post(session, decline)
        except Exception:
            LOG.exception("declining offer %s failed", launch.offer_id)
        status = {
            "task_id": {"value": task_id},
            "agent_id": {"value": launch.agent_id},
            "state": "TASK_ERROR",
            "source": "SOURCE_MASTER",
            "reason": "REASON_TASK_INVALID",
            "message": f"Mesos refused the launch (HTTP {refused.status}): {refused.reason}",
        }
        self._event("refused", lambda now: self.plan.on_status(status, now))

    def _call_safely(self, decision: ev.Decision) -> None:
        if self.failure:
            return
        try:
            self._call(decision)
        except Exception:
            LOG.exception("Mesos call failed: %s", type(decision).__name__)

    def _call(self, decision: ev.Decision) -> None:
        if isinstance(decision, ev.WipeState):
            threading.Thread(target=self._wipe, name="wipe-state", daemon=True).start()
            return
        if isinstance(decision, ev.ReadStderr):
            framework_id = self.plan.framework_id or ""
            self.agent_files.request(
                decision.task_id, decision.agent_id, framework_id, decision.message
            )
            return
        if isinstance(decision, ev.Note):
            LOG.log(
                logging.WARNING if decision.level == "warning" else logging.INFO,
                "%s",
                decision.message,
            )
            return
        driver = self.driver
        if driver is None:
            return
        if isinstance(decision, ev.Teardown):
            self._teardown(driver)
        elif isinstance(decision, ev.Reconcile):
            self.counters["RECONCILE"] += 1
            tasks = [{"task_id": {"value": t}, "agent_id": {"value": a}} for t, a in decision.tasks]
            LOG.info("reconciling %s", f"{len(tasks)} tasks" if tasks else "implicitly")
            driver.reconcileTasks(tasks)

    def _teardown(self, driver: MesosSchedulerDriver) -> None:
        """pymesos sends TEARDOWN from its IO thread once stopped without failover; Mesos
        then kills whatever of the framework still runs and forgets it."""
        LOG.info("tearing the framework down")
        self.driver, self._torn_down = None, driver
        driver.stop(failover=False)

    def _wipe(self) -> None:
        """On a thread of its own: a callback runs on the driver's thread, which it would
        wait for. The state goes only after the TEARDOWN has left."""
        if self._torn_down is not None:
            self._torn_down.join()
        try:
            self.store.wipe()
        except Exception as exc:
            LOG.exception("wiping the state failed")
            self.fail(f"wiping the state failed: {exc}")
            return
        LOG.info("uninstalled: the framework is torn down and its state deleted")
        self.uninstalled.set()

    # -- pymesos callbacks (never raise into the driver) ---------------------------------

    def registered(self, driver, framework_id, master_info) -> None:
        self._safely("registered", self._subscribed, framework_id["value"], master_info)

    def reregistered(self, driver, master_info) -> None:
        self._safely("reregistered", self._subscribed, driver.framework_id, master_info)

    def _subscribed(self, framework_id: str, master_info: Mapping) -> None:
        LOG.info("subscribed as framework %s to master %s", framework_id, master_info)
        if self._fresh and self._another_framework(framework_id):
            return
        self._refusals, self._refused_since, self.refusal = 0, None, None
        self._last_heartbeat = time.monotonic()
        if self._subscribed_at is None:
            self._subscribed_at = self._last_heartbeat
        self._event("subscribed", lambda now: self.plan.on_subscribed(framework_id, now))
        self._agents_due = True
        threading.Thread(target=self._learn_master_flags, name="master-flags", daemon=True).start()
        later = threading.Timer(AGENTS_ASK_FALLBACK_SECONDS, self._ask_for_agents)
        later.daemon = True
        self._agents_timer = later
        later.start()

    def _ask_for_agents(self) -> None:
        """Start `_agents_known` once per subscription: after the first OFFERS event that
        follows it has been handled, or `AGENTS_ASK_FALLBACK_SECONDS` after it if none
        comes. Not at SUBSCRIBED itself: the master allocates at once then, so the first
        OFFERS event, one offer per agent, arrives at the same moment, and decoding
        `/master/slaves` (~7 KiB of objects per agent) beside it made the scheduler's peak
        memory (issue 17). Nor by the fallback while that event is being handled: at 1,000
        agents its handling was still under way 2 s after SUBSCRIBED, so an OFFERS event
        cancels the fallback (`resourceOffers`) and asks once it is handled. Nothing waits
        for the answer: it only removes agents the master no longer knows."""
        with self._agents_asked:
            if not self._agents_due:
                return
            self._agents_due = False
        threading.Thread(target=self._agents_known, name="master-agents", daemon=True).start()

    def _learn_master_flags(self) -> None:
        """Ask the master for its `--allocation_interval` (`master_flags`, GET_FLAGS) and
        hand it to the plan; kept for later option changes (`_config`). Refused or failed:
        the plan keeps what it has, and one warning names the grant."""
        driver = self.driver
        master = driver.master if driver is not None else None
        if not master:
            return
        keeps = self.timings.get("allocation_interval_seconds", 1.0)  # PlanConfig's default
        ask = partial(self._ask_master, master, "/api/v1", GET_FLAGS)
        seconds = self.master_flags.allocation_interval(ask, keeps, master)
        if seconds is None:
            return

        def learned(now: float) -> list[ev.Decision]:
            self.timings["allocation_interval_seconds"] = seconds  # under the lock
            return self.plan.on_allocation_interval(seconds, now)

        self._event("master-flags", learned)

    def _another_framework(self, framework_id: str) -> bool:
        """Registered anew: does the master still run a framework of ours (same name and
        principal, not completed) that the state has lost? Its tasks live on, so going on
        would run a second copy of every daemon. `service.existing_framework` says what to
        do: `refuse` (fail, naming it) or `replace` (take over its ID: the tasks the lost
        state cannot vouch for are killed, and the plan runs afresh). Either way the new,
        empty registration is torn down before the plan hears of it. True if it acted.

        Asked with the operator API's `GET_FRAMEWORKS` (`POST /api/v1`, apache/mesos
        src/master/http.cpp `Master::Http::getFrameworks`, Mesos 1.0 onwards): every
        registered framework (connected, disconnected or recovered) with its whole
        `framework_info` (so its `principal`) and no tasks, where `/master/state` and
        `/master/frameworks` (`Master::Http::frameworks`, whose `framework_id` filter needs
        the ID we are looking for) carry every task of every framework, and
        `/master/state-summary` (`Master::Http::stateSummary`) has no principal but every
        agent. Frameworks the principal may not view are left out, as in `/master/state`."""
        self._fresh = False
        driver = self.driver
        try:
            answer = self._ask_master(driver.master, "/api/v1", {"type": "GET_FRAMEWORKS"})
        except Exception as exc:
            LOG.warning("cannot ask the master for frameworks like this one: %s", exc)
            return False
        service = self.options["service"]
        principal = self.tokens.account.uid if self.tokens else (service["principal"] or None)
        if _lists_framework(answer, framework_id):
            self._frameworks_unseen = None
        else:
            asker = self.master_flags.principal  # who asked (`_ask_master_once`)
            who = f"the principal {asker!r}" if asker else "a request without a principal"
            self._frameworks_unseen = (
                f"the master's GET_FRAMEWORKS does not list this framework itself "
                f"({framework_id}): {who} may not view frameworks (Mesos' VIEW_FRAMEWORK; "
                "on DC/OS, dcos:mesos:master:framework:role:<role> read), so a framework of "
                "ours that the state lost cannot be found; grant it (README, strict mode)"
            )
            LOG.warning("%s", self._frameworks_unseen)
        others = []
        for f in (answer.get("get_frameworks") or {}).get("frameworks") or ():
            info = f.get("framework_info") if isinstance(f, Mapping) else None
            fid = (info or {}).get("id") or {}
            if (
                isinstance(info, Mapping)
                and isinstance(fid, Mapping)
                and fid.get("value") not in (None, framework_id)
                and info.get("name") == service["name"]
                and (info.get("principal") or None) == principal
            ):
                others.append({"id": fid["value"], "name": info["name"], "active": f.get("active")})
        if not others:
            return False
        old = others[0]
        found = (
            f"the master still runs framework {old['id']} named {old.get('name')!r}"
            f"{f' (principal {principal})' if principal else ''}, "
            f"{'connected' if old.get('active') else 'disconnected'}, which the state "
            f"({service['state']}) does not know"
        )
        self.driver = None
        driver.stop(failover=False)  # TEARDOWN of the registration just made: it has nothing
        if service["existing_framework"] != "replace":
            self.fail(
                f"{found}: its tasks still run, so a second framework would run a second copy "
                "of every daemon. Restore the state, or set service.existing_framework to "
                "'replace' to take that framework over (its tasks are replaced), or tear it "
                "down (dcos service shutdown, or the master's /teardown) first"
            )
            return True
        LOG.warning("%s: taking it over (service.existing_framework=replace)", found)
        with self.lock:
            self.plan.framework_id = old["id"]
            self.store.set_framework_id(old["id"])
        threading.Thread(
            target=self._subscribe_later, args=(driver, 0.0), name="take-over", daemon=True
        ).start()
        return True

    def _agents_known(self) -> None:
        """Ask the master which agents it knows, so that agents removed while this scheduler
        was away leave the plan; a failed request changes nothing.

        `/master/slaves` (apache/mesos src/master/http.cpp `Master::Http::slaves`, from 1.8
        src/master/readonly_handler.cpp `ReadOnlyHandler::slaves`): `slaves`, the registered
        agents, each with its `pid` (`slave(1)@<ip>:<port>`, kept for reading sandboxes), and
        `recovered_slaves`, those a failed-over master recovered from its registry that have
        not re-registered yet (kept: they are coming back). No task, where `/master/state`
        has every task of the cluster; `/master/state-summary` has no `recovered_slaves`.
        Unreachable agents are in neither list (`/master/state` only counts them), so they
        leave the plan here as they do while it runs, where the master's `__removeSlave`
        sends every framework a FAILURE for an agent it marks unreachable or gone
        (src/master/master.cpp, `sendSlaveLost`); their tasks are reconciled as
        TASK_UNREACHABLE/TASK_GONE/TASK_UNKNOWN, and an agent that comes back offers again
        and rejoins the plan."""
        driver = self.driver
        master = driver.master if driver is not None else None
        if not master:
            return
        try:
            answer = self._ask_master(master, "/master/slaves")
        except Exception as exc:  # the plan just keeps every agent it knows
            LOG.warning("cannot ask the master %s for its agents: %s", master, exc)
            return
        known = {
            agent["id"]
            for key in ("slaves", "recovered_slaves")
            if isinstance(answer.get(key), list)
            for agent in answer[key]
            if isinstance(agent, Mapping) and "id" in agent
        }
        self.agent_files.remember_slaves(answer.get("slaves"))
        # The answer is ~7 KiB of objects per agent (each agent's resources and attributes)
        # and this runs at SUBSCRIBED, beside the first OFFERS event of every agent: drop it
        # before queueing the plan's event, which keeps only the IDs (issue 17, peak RSS).
        del answer
        self._event("agents", lambda now: self.plan.on_agents_known(known, now))

    def _ask_master(self, master: str, path: str, call: Mapping | None = None) -> dict:
        """GET a JSON endpoint of the leading master, or POST `call` as JSON (the operator
        API), authenticated as the scheduler is; `requests.HTTPError` for a 4xx/5xx answer.

        Strict mode: a 401 is the master refusing the token (expired, or signed with a key
        the IAM has since rotated): the token is dropped and the ask sent once more with a
        fresh login (`dcos_auth.again_after_401`, as the agents' `/files/read` is, and as
        the sender does for calls, `sender.Master.post`); a second 401 is the answer.
        """
        reply = again_after_401(
            self.tokens,
            "the Mesos master",
            path,
            lambda: self._ask_master_once(master, path, call),
            lambda reply: reply.status_code,
        )
        reply.raise_for_status()
        try:  # from the bytes: no text copy of an answer of ~1 KB per agent, 10x faster
            return orjson.loads(reply.content)
        except orjson.JSONDecodeError:  # what orjson refuses (a lone surrogate, NaN): as before
            return reply.json()

    def _ask_master_once(self, master: str, path: str, call: Mapping | None) -> Any:
        """One request of `_ask_master`: the `requests.Response`, whatever its status."""
        import requests

        service = self.options["service"]
        if self.tokens is not None:
            url, headers = f"https://{master}{path}", self.tokens.header()
            verify: Any = service["ca_bundle"] or True
        else:
            url, headers, verify = f"http://{master}{path}", {}, True
        auth = None
        if self.tokens is None and service["principal"] and service["secret_file"]:
            secret = read_secret(service["secret_file"], "service.secret_file")
            auth = (service["principal"], secret)
        if call is None:
            return requests.get(url, headers=headers, auth=auth, verify=verify, timeout=15)
        headers = {**headers, "Accept": "application/json"}
        return requests.post(
            url, json=dict(call), headers=headers, auth=auth, verify=verify, timeout=15
        )

    def disconnected(self, driver) -> None:
        self._safely("disconnected", self._disconnected)

    def _disconnected(self) -> None:
        """A warning only when unexpected: not while stopping, nor after our own TEARDOWN
        (the master closes the subscription of a framework it removes)."""
        if self._torn_down is not None:
            LOG.info("disconnected from the Mesos master after the TEARDOWN, as expected")
        elif not self._stopping.is_set():
            LOG.warning("disconnected from the Mesos master; pymesos reconnects")
        with self.lock:
            self.plan.on_disconnected()

    def processHeartBeat(self, driver) -> None:  # noqa: N802 (pymesos' name)
        self._last_heartbeat = time.monotonic()

    def resourceOffers(self, driver, offers) -> None:  # noqa: N802
        self.counters["offers"] += len(offers)
        if self._agents_due and (timer := self._agents_timer) is not None:
            timer.cancel()  # asked below, once this event is handled (`_ask_for_agents`)
        self.agent_files.remember(offers)
        self._safely("offers", self._event, "offers", lambda now: self.plan.on_offers(offers, now))
        if self._agents_due:
            self._ask_for_agents()

    def offerRescinded(self, driver, offer_id) -> None:  # noqa: N802
        """RESCIND: pymesos hands the event's `offer_id` as the v1 OfferID message, a dict
        `{"value": …}` (douban/pymesos `pymesos/scheduler.py`, `on_rescind`); the plan keys
        held offers by the value."""
        value = offer_id.get("value", "") if isinstance(offer_id, Mapping) else str(offer_id)
        self.counters["RESCIND"] += 1
        self._safely("rescind", self._event, "rescind", lambda now: self.plan.on_rescind(value))

    def statusUpdate(self, driver, status) -> None:  # noqa: N802
        self._safely("update", self._status, driver, status)

    def _status(self, driver, status: Mapping) -> None:
        """Each update is logged: a WARNING when it is a failure of a step (`Core.is_failure`:
        asked of the plan before it takes the update in), INFO otherwise, an end the plan
        expects (its own kill, a restart's cut-off) included."""
        seen = bounded_status(status, self.options, self.artifacts_url)
        task_id, message = seen["task_id"]["value"], seen.get("message")
        line = ("%s %s%s%s", task_id, seen["state"], ": " if message else "", message or "")
        then = None
        if "uuid" in status:
            then = Call(task_id, partial(self._acknowledge, status))

        def update(now: float) -> list[ev.Decision]:
            failed = self.plan.is_failure(seen)
            LOG.log(logging.WARNING if failed else logging.INFO, *line)  # formatted if shown
            return self.plan.on_status(seen, now)

        if not self._event("update", update, then):
            LOG.info(*line)

    def _acknowledge(self, status: Mapping, session: Any) -> None:
        """From the sender, once the update's effect is durable (never after a failed
        write); on the task's own lane, so that its acknowledgements keep their order."""
        driver = self.driver
        if self.failure or driver is None:
            return
        self.counters["ACKNOWLEDGE"] += 1
        body = {
            "type": "ACKNOWLEDGE",
            "framework_id": {"value": driver.framework_id},
            "acknowledge": {
                "agent_id": status["agent_id"],
                "task_id": status["task_id"],
                "uuid": status["uuid"],
            },
        }
        self.master_api.post(session, body)

    def _task_output(self, task_id: str, words: str, message: str) -> None:
        """From the agent-files thread: the end of a failed task's stderr. For a failed fetch,
        the fetcher's line there names the URI, and so the one option to change
        (`steps.fetch_output_hint`), where the update could name only the step's options."""
        parsed = parse_task_id(task_id)
        if parsed:
            words, message = fetch_output_hint(
                parsed[0], words, message, self.options, self.artifacts_url
            )
        self._event("stderr", lambda now: self.plan.on_task_output(task_id, words, message, now))

    def _agent_credential(self) -> tuple[str | None, bool]:
        """What a request to an agent carries, as the calls to the master do (`sender.Master`):
        the driver's `Authorization` (Basic), or strict mode's `token=…` and TLS. Strict mode
        reads the `TokenSource` itself, also before the driver exists (a read then carried no
        token, and its 401 made the token be renewed for nothing), and not through the
        driver, whose failed login fails the scheduler: a stderr read must not."""
        if self.tokens is not None:  # the token itself, driver or not: a read that cannot
            # get one raises (`AuthError`), so that the read, never the scheduler, gives up
            return f"token={self.tokens.token()}", True
        driver = self.driver
        if driver is None:
            return None, False
        return driver._basic_credential, False

    def slaveLost(self, driver, agent_id) -> None:  # noqa: N802
        aid = agent_id["value"]
        LOG.info("agent %s is gone (FAILURE)", aid)  # the plan says what it is (a Note)
        self._safely(
            "agent lost", self._event, "lost", lambda now: self.plan.on_agent_lost(aid, now)
        )

    def executorLost(self, driver, executor_id, agent_id, status) -> None:  # noqa: N802
        LOG.info("executor %s on %s ended (%s)", executor_id, agent_id, status)

    def error(self, driver, message) -> None:
        self._safely("error", self._error, driver, message)

    def _error(self, driver, message: str) -> None:
        if FRAMEWORK_REMOVED not in message and not self.plan.subscribed:
            self._refused(driver, message)
            return
        if FRAMEWORK_REMOVED not in message:
            LOG.error("Mesos says: %s", message)
            return
        LOG.error(
            "Mesos says %r: its tasks are gone. Registering as a new framework; "
            "the agents' progress is kept and reconciled.",
            message,
        )
        self._event("removed", lambda now: self.plan.on_framework_removed())
        driver._framework.pop("id", None)  # pymesos has no public way to forget the ID

    def _refused(self, driver, message: str) -> None:
        """The master refused the subscription: an ERROR event, then it closes the stream
        (apache/mesos src/master/master.cpp, `Master::subscribe`, `refuseSubscription`).
        pymesos would subscribe again at once, hundreds of times a second; instead the
        driver is stopped and a new one subscribes after a backoff (1 s, doubling up to
        30 s). The reason is logged once per change; refused for `refusal_timeout`
        seconds, the scheduler fails with it, so that the process exits non-zero."""
        now = time.monotonic()
        self._refusals += 1
        self._refused_since = self._refused_since or now
        if message != self.refusal:
            LOG.error("the master refuses the subscription: %s", message)
            self.refusal = message
        if now - self._refused_since >= self.refusal_timeout:
            seconds = now - self._refused_since
            self.fail(f"the master refused the subscription for {seconds:.0f} s: {message}")
        if self.driver is not driver:
            return
        self.driver = None  # stopped on purpose: not an aborted driver
        driver.stop(failover=True)  # no join here: this is the driver's own thread
        if self.failure:
            return
        delay = min(REFUSAL_MAX_BACKOFF_SECONDS, 2 ** (self._refusals - 1))
        LOG.info("subscribing again in %.0f s (refusal %d)", delay, self._refusals)
        threading.Thread(
            target=self._subscribe_later, args=(driver, delay), name="resubscribe", daemon=True
        ).start()

    def _subscribe_later(self, stopped: MesosSchedulerDriver, delay: float) -> None:
        stopped.join()
        if not self._stopping.wait(delay):
            self._start_driver()

    def _safely(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        started = self.busy.start()
        try:
            fn(*args)
        except Exception:
            LOG.exception("handling %s failed; carrying on", what)
        finally:
            self.busy.stop(started)

    # -- the API's read and command interface --------------------------------------------

    def plan_view(self) -> dict:
        with self.lock:
            view = self.plan.plan_view(self.now())
        if isinstance(self.plan, Uninstall) and not self.uninstalled.is_set():
            view = _until_wiped(view)
        return view

    def summary(self) -> dict:
        with self.lock:
            return self.plan.summary(self.now())

    def warnings(self) -> list[str]:
        """What the scheduler itself warns of now, for the status page and `/v1/status`
        beside the options' warnings (`operator_api.warnings_for`): the master's
        `--allocation_interval` not learned (`MasterFlags.warning`), and GET_FRAMEWORKS
        not listing this framework (`_another_framework`)."""
        found = (self.master_flags.warning, self._frameworks_unseen)
        return [warning for warning in found if warning]

    def lost_at(self, agent_id: str) -> float | None:
        """When the plan found `agent_id` gone from the cluster (the master removed it, or
        said it is gone: `slaveLost`), in seconds since the epoch (`now`; 0 when a record
        from before that was kept says it is gone); None while it is in the cluster, and
        once its record is deleted (`gone_retention_seconds`). For `local`'s display."""
        with self.lock:
            agent = self.plan.agents.get(agent_id)
            return agent.lost_at if agent is not None and agent.lost else None

    def agent_records(self) -> dict[str, dict]:
        """Every agent's record, a stalled step's message saying how long it has waited."""
        with self.lock:
            return self.plan.agent_records(self.now())

    def held_offers(self) -> int:
        """Offers the plan holds now (`/metrics`)."""
        with self.lock:
            return self.plan.held_offers

    def convergence_seconds(self) -> float | None:
        """Time to converge: from the first SUBSCRIBED until the plan was first complete."""
        if self._converged_at is None or self._subscribed_at is None:
            return None
        return self._converged_at - self._subscribed_at

    def health(self) -> tuple[str, list[str]]:
        """`"healthy"` when subscribed to Mesos and not failing (and once uninstalled, so
        that Marathon leaves the finished scheduler alone); `"broken"` once it fails, which a
        restart may cure; `"waiting"` while it is not subscribed (a master failover, the
        master unreachable), which a restart would not cure. With the reasons."""
        if self.uninstalled.is_set():
            return HEALTHY, []
        if self.failure:
            return BROKEN, [self.failure]
        if not self.plan.subscribed and self.refusal:
            return WAITING, [f"the master refuses the subscription: {self.refusal}"]
        if not self.plan.subscribed:
            return WAITING, ["not subscribed to a Mesos master"]
        return HEALTHY, []

    def framework_id(self) -> str | None:
        """The stored framework ID: None before the first SUBSCRIBED and after the wipe."""
        return self.store.get_framework_id()

    def artifact(self, name: str) -> Path | None:
        return self.artifacts.get(name)

    def report(self, agent_id: str, report: Mapping) -> None:
        """The installer on an agent found Calico already there, says why its task fails, or
        what its task left not as the options want (`api.parse_report`'s shapes)."""
        if report.get("failed"):
            LOG.warning("agent %s: %s failed: %s", agent_id, report["task_id"], report["reason"])
        elif "warning" not in report:  # a warning is logged by the plan (`Note`), once
            LOG.warning("agent %s already runs Calico: %s", agent_id, report.get("found"))
        self._event_durably("report", lambda now: self.plan.on_report(agent_id, report, now))

    def report_authorized(self, agent_id: str, token: str) -> bool:
        """Is `token` the report token of `agent_id` (constant-time)?"""
        return self.report_key.verify(agent_id, token)

    def command(self, name: str, agent_id: str | None = None, step: str | None = None) -> str:
        """Operator commands: interrupt, continue, restart, force-complete (KeyError if
        unknown). Returns what the plan said it does (its `Note`s, also logged), or "", once
        what the command changed is durable in the store; RuntimeError (the API's 503) when
        the scheduler has failed or the store does not confirm the write in
        `COMMAND_DURABLE_SECONDS` (`_event_durably`)."""
        actions = {
            "interrupt": lambda now: self.plan.interrupt(agent_id, now),
            "continue": lambda now: self.plan.proceed(agent_id, now),
            "restart": lambda now: self.plan.restart(agent_id, step, now),
            "force-complete": lambda now: self.plan.force_complete(agent_id, step, now),
        }
        said: list[str] = []

        def run(now: float) -> list[ev.Decision]:
            out = actions[name](now)
            said.extend(d.message for d in out if isinstance(d, ev.Note))
            return out

        self._event_durably(name, run)
        return "; ".join(said)

    def _event_durably(self, name: str, handler: Callable[[float], list[ev.Decision]]) -> None:
        """`_event`, returning only once what it changed is stored: an HTTP answer of 200 is
        the asker's proof, so a crash right after it must not lose a FORCED mark, an
        interrupt or an installer's warning. RuntimeError (the API's 503) when the scheduler
        has failed or the store does not confirm within `COMMAND_DURABLE_SECONDS`."""
        if not self._event(name, handler):  # failed: the asker must not read "done"
            raise RuntimeError(f"not acting on {name}: {self.failure}")
        stored = self.pipeline.flush(COMMAND_DURABLE_SECONDS)
        if self.pipeline.failed:
            raise RuntimeError(f"{name} was not stored: {self.failure}")
        if not stored:
            raise RuntimeError(
                f"{name} was decided, but the state store has not confirmed the write within "
                f"{COMMAND_DURABLE_SECONDS:.0f} s: ask `calico-dcos plan show` whether it took "
                "effect before repeating it"
            )

    def change_options(self, options: Mapping) -> None:
        """New options: the steps whose fingerprint changed re-run, within the budget."""
        with self.lock:
            self.options = options
            self._apply(self.plan.on_options(self._config(options), self.now()))


def _until_wiped(view: dict) -> dict:
    """The uninstall's plan while the state is still being deleted (on its own thread, after
    the core is done): COMPLETE only once it is gone. DC/OS' package manager deletes the app,
    and so stops this scheduler, as soon as the plan answers 200 (dcos/cosmos
    `ServiceUninstaller.checkSdkUninstallCompleted`); a wipe cut short would leave state behind.
    """
    if view.get("status") != "COMPLETE":
        return view
    phases = [dict(phase) for phase in view["phases"]]
    last = phases[-1]
    last["steps"] = [
        {**step, "status": "STARTED", "message": "deleting the state"}
        if step["name"] == "wipe-state"
        else step
        for step in last["steps"]
    ]
    last["status"] = combine([s["status"] for s in last["steps"]], False)
    return {**view, "phases": phases, "status": combine([ph["status"] for ph in phases], False)}


def _lists_framework(answer: Mapping, framework_id: str) -> bool:
    """Does a `GET_FRAMEWORKS` answer list the framework `framework_id` (registered or
    completed)? Mesos leaves out the frameworks the principal may not view (VIEW_FRAMEWORK),
    so an answer without the asker's own framework means the principal may view none of its
    role's."""
    found = answer.get("get_frameworks") if isinstance(answer, Mapping) else None
    if not isinstance(found, Mapping):
        return False
    for key in ("frameworks", "completed_frameworks"):
        for f in found.get(key) or ():
            info = f.get("framework_info") if isinstance(f, Mapping) else None
            fid = info.get("id") if isinstance(info, Mapping) else None
            if isinstance(fid, Mapping) and fid.get("value") == framework_id:
                return True
    return False
