"""The benchmark: convergence at cluster scale, against its lower bound (issue 7).

Each size runs in two child processes so that their costs are not mixed:

- the devcluster (`python -m calico_dcos.bench devcluster …`): the embedded master with N
  synthetic agents. It watches what Mesos really saw — every scheduler call by type, every
  offer, each agent's latest task per step — and prints JSON lines: `ready`, `subscribed`,
  `progress`, `converged`, and the final `counts` when its stdin closes;
- the scheduler (`python -m calico_dcos.bench scheduler …`): started exactly as
  `calico-dcos run` starts it; on SIGTERM it stops (failover) and writes its state store's
  `writes` and `bytes_written` to a file, because nothing else exposes them.

The parent samples the scheduler's CPU and RSS with psutil and turns the lines into figures.
Wall time runs from the framework's SUBSCRIBE until every agent's steps are done and every
status update is acknowledged, both on the devcluster's clock (what Mesos saw, not the
scheduler's own view); `mesos_wall_seconds` stops at the update that completes the last agent.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import psutil

from calico_dcos import logs
from calico_dcos import steps as catalog
from calico_dcos.core.budget import RestartBudget
from calico_dcos.metrics import revive_reasons

CALL_TYPES = ("ACCEPT", "DECLINE", "REVIVE", "KILL", "RECONCILE", "ACKNOWLEDGE")
DONE_STATE = {
    f"calico-{s.name}": "TASK_FINISHED" if s.kind == "oneshot" else "TASK_RUNNING"
    for s in catalog.STEPS
}
RESTARTING = tuple(f"calico-{s.name}" for s in catalog.STEPS if s.restarts)
# The cores this process may run on (and so its children): see `cpu_floor`.
CORES = len(os.sched_getaffinity(0))


def cpu_floor(*process_cpu: float, cores: int = CORES) -> float:
    """The least wall time, in seconds, in which this machine can do the work of processes
    that used `process_cpu` seconds of CPU, whatever the plan's own pace (the lower bound):
    their sum spread over the cores, but never less than the busiest one's own, since each
    runs its Python on one core at a time (CPython's GIL; libcurl's and SQLite's waits
    release it, but their CPU is small)."""
    return max(sum(process_cpu) / cores, *process_cpu)


# the steps that take a restart slot with the bench's options (`scheduler_options`: the
# defaults but for the budget, so no `cni.restart_agent`)
SLOT_TAKING = tuple(
    f"calico-{s.name}"
    for s in catalog.STEPS
    if s.restarts_with({"cni": {"restart_agent": False}}) is not None
)
# Mesos' terminal task states (include/mesos/v1/mesos.proto, `TaskState`)
TERMINAL = frozenset(
    ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED",
     "TASK_GONE", "TASK_GONE_BY_OPERATOR")
)  # fmt: skip


# ---------------------------------------------------------------------------------------
# Settings and the lower bound


@dataclass(frozen=True)
class Settings:
    """What one benchmark run is made of; the same for every size."""

    restart_budget: int | str = "10%"
    step_seconds: float = 0.1  # launch to RUNNING, every task (the synthetic executor's pace)
    restart_seconds: dict[str, float] = field(
        default_factory=lambda: {name: 0.2 for name in RESTARTING}
    )  # RUNNING to FINISHED of each restarting (one-shot) step
    allocation_interval: float = 1.0
    store: str = ""  # zk://host:port/path, or "" for a file store in a temporary directory
    timeout: float = 600.0
    profile_dir: Path | None = None  # py-spy's samples of the scheduler, from SUBSCRIBE on
    profile_cpu: bool = False  # only samples holding the GIL (CPU), not every thread's waits
    # The plan's timings (`PlanConfig`: wait_refuse_seconds, revive_interval_seconds, …) for
    # experiments and the fast smoke test; `calico-dcos run` has none, so figures to quote
    # leave this empty.
    scheduler_timings: dict[str, float] = field(default_factory=dict)

    def budget_for(self, agents: int) -> int:
        """The plan's rule (`RestartBudget`): the slots among `agents`."""
        return RestartBudget.parse(self.restart_budget).limit(agents)


def lower_bound(settings: Settings, agents: int) -> float:
    """No scheduler can converge faster than this on the devcluster, in seconds.

    The slowest agent's chain: every step's duration, with no wait for an offer, since the
    master allocates at once when a framework subscribes and when it REVIVEs (Mesos'
    `HierarchicalAllocatorProcess::addFramework` and `reviveOffers` both call `allocate()`,
    src/master/allocator/mesos/hierarchical.cpp; the devcluster does the same), and a
    finished task's resources come back unfiltered; plus the restart budget's
    serialisation: each step that takes a restart slot with the bench's options holds it
    from launch to FINISHED, so the other agents' holds take (agents × hold ÷ budget − hold)
    seconds before the slowest agent's own. Only docker takes one: the cni step restarts
    the agent only with `cni.restart_agent`, off by default and in the bench (`steps.Step.
    restarts_with`), though its synthetic task still takes `restart_seconds` (until
    2026-11-29 the bound counted it as a slot holder too: 6.3 s instead of 3.6 s at 10 %).
    `allocation_interval` does not enter it: a scheduler that revives never waits for a
    timed round (one that holds offers instead waits for about one round per step: the
    unused part of an ACCEPT comes back at the next, `calico_dcos.core.deploy`).
    (Until 2026-11-29 this counted one allocation interval per step, 5 s of the 11.3 s
    the README's older tables divide by: the strict devcluster's immediate REVIVE made 100
    agents converge in 0.59 of that "bound".)
    """
    chain, serial = bound_parts(settings, agents)
    return chain + serial


def bound_parts(settings: Settings, agents: int) -> tuple[float, float]:
    """`lower_bound`'s two parts, in seconds: one agent's chain (every step's duration), and
    the other agents' slot holds through the restart budget before the slowest agent's."""
    restarts = sum(settings.restart_seconds.values())
    chain = len(DONE_STATE) * settings.step_seconds + restarts
    hold = sum(settings.step_seconds + settings.restart_seconds.get(n, 0.0) for n in SLOT_TAKING)
    serial = agents * hold / settings.budget_for(agents) - hold
    return chain, max(0.0, serial)


def sim_settings(settings: Settings, agents: int, latency: float = 0.0):
    """The plan-only simulation's settings (`calico_dcos.simulate.SimSettings`) for the
    bench's: the same budget, interval, step times and plan timings; one restart time for
    both one-shot steps (the longest); `latency` from a decision to Mesos acting on it."""
    from calico_dcos.simulate import SimSettings

    return SimSettings(
        agents=agents,
        restart_budget=str(settings.restart_budget),
        allocation_interval=settings.allocation_interval,
        step_seconds=settings.step_seconds,
        restart_seconds=max(settings.restart_seconds.values(), default=0.0),
        latency_seconds=latency,
        timings=settings.scheduler_timings or None,
    )


def plan_pace(settings: Settings, agents: int) -> float | None:
    """The plan's own pace for these settings, in seconds: the virtual time the pure core
    takes to converge `agents` agents fed by a simulated master with no latency and no CPU
    cost (`calico_dcos.simulate`, as `--simulate` runs it). Another lower limit of the wall
    time: offers wait for allocation rounds, which the bound does not count. None when the
    simulation does not converge."""
    from calico_dcos.simulate import Simulation

    result = Simulation(sim_settings(settings, agents)).run()
    return result.virtual_seconds if result.converged else None


LIMITS = {
    "lower_bound_seconds": "the bound (step times and the restart budget)",
    "plan_pace_seconds": "the plan's pace (offers wait for allocation rounds: --simulate)",
    "cpu_floor_seconds": "CPU (the scheduler's and the devcluster's Python on the cores)",
}


def limited_by(run: dict) -> tuple[str, float] | None:
    """Which lower limit of the wall time is the highest (`LIMITS`: the bound, the plan's
    pace, the CPU floor), and its seconds; None before a run converged. What the wall time
    has beyond it is latency and the two processes' contention, which none counts."""
    limits = [(run.get(key), words) for key, words in LIMITS.items()]
    known = [(seconds, words) for seconds, words in limits if seconds is not None]
    if run.get("wall_seconds") is None or not known:
        return None
    seconds, words = max(known)
    return words, seconds


def growth_exponent(small: tuple[int, float], large: tuple[int, float]) -> float | None:
    """The log-log slope from the smallest to the largest size: 1.0 is linear."""
    (n1, y1), (n2, y2) = small, large
    if n1 == n2 or y1 <= 0 or y2 <= 0:
        return None
    return math.log(y2 / y1) / math.log(n2 / n1)


# ---------------------------------------------------------------------------------------
# The devcluster child: what Mesos saw


class Watch:
    """Counts calls and offers and finds converged agents from the master's timeline entries.

    An agent is done when the latest task of every step is in its done state (daemons
    RUNNING and not unhealthy, one-shots FINISHED). Each entry costs O(1).

    `slot_seconds`: the time integral of slot-taking tasks (`SLOT_TAKING`) between their
    launch and their terminal update, on the master's clock. Divided by the budget and the
    wall time it says how busy the restart slots were: near 1 the budget paced the rollout;
    well below it the slots waited (for offers, decisions, the store or the sender).
    """

    def __init__(self, agents: int) -> None:
        self.agents = agents
        self.calls: Counter[str] = Counter()
        self.offers = 0
        self.offers_by_role: Counter[str] = Counter()  # the role each offer was allocated to
        self.subscribed_at: float | None = None
        self.converged_at: float | None = None
        self._latest: dict[tuple[str, str], str] = {}  # (agent, task name) -> task ID
        self._done_steps: dict[str, set[str]] = {}
        self.done = 0
        self.slot_seconds = 0.0
        self._in_slot: set[str] = set()  # task IDs of slot-taking tasks not yet ended
        self._slot_since = 0.0  # when `_in_slot` last changed (master clock)

    def see(self, entry: dict) -> None:
        kind = entry["event"]
        if kind == "call":
            self.calls[entry["type"]] += 1
        elif kind == "offer":
            self.offers += 1
            self.offers_by_role[entry.get("role", "*")] += 1
        elif kind == "framework_subscribed" and self.subscribed_at is None:
            self.subscribed_at = entry["t"]
        elif kind == "launch" and entry.get("task_name") in DONE_STATE:
            self._latest[(entry["agent_id"], entry["task_name"])] = entry["task_id"]
            self._mark(entry, False)
            if entry["task_name"] in SLOT_TAKING:
                self._slots(entry["t"], entry["task_id"], True)
        elif kind == "status" and self._is_latest(entry):
            done = entry["state"] == DONE_STATE[entry["task_name"]]
            self._mark(entry, done and entry.get("healthy") is not False)
            if entry["state"] in TERMINAL and entry["task_id"] in self._in_slot:
                self._slots(entry["t"], entry["task_id"], False)

    def _slots(self, t: float, task_id: str, taken: bool) -> None:
        self.slot_seconds += len(self._in_slot) * max(0.0, t - self._slot_since)
        self._slot_since = t
        (self._in_slot.add if taken else self._in_slot.discard)(task_id)

    def _is_latest(self, entry: dict) -> bool:
        return self._latest.get((entry["agent_id"], entry.get("task_name"))) == entry["task_id"]

    def _mark(self, entry: dict, done: bool) -> None:
        steps = self._done_steps.setdefault(entry["agent_id"], set())
        before = len(steps) == len(DONE_STATE)
        (steps.add if done else steps.discard)(entry["task_name"])
        after = len(steps) == len(DONE_STATE)
        self.done += after - before
        if self.done == self.agents and self.converged_at is None:
            self.converged_at = entry["t"]


class Updates:
    """Each status update as Mesos saw it: first forwarded to the scheduler, forwarded again
    (an agent's retry: its acknowledgement was late), acknowledged.

    Keyed by the update's uuid; `latencies` are seconds from the first forward to the
    ACKNOWLEDGE, on the master's clock.
    """

    def __init__(self) -> None:
        self.first_sent: dict[str, float] = {}
        self.resent = 0
        self.latencies: list[float] = []

    def forwarded(self, status: dict) -> None:
        uuid_b64 = status.get("uuid")
        if uuid_b64 is None:
            return
        if uuid_b64 in self.first_sent:
            self.resent += 1
        else:
            self.first_sent[uuid_b64] = time.monotonic()

    def acknowledged(self, uuid_b64: str) -> None:
        sent = self.first_sent.pop(uuid_b64, None)
        if sent is not None:
            self.latencies.append(time.monotonic() - sent)

    def summary(self) -> dict:
        """Median and 99th percentile in seconds (None without acknowledgements)."""
        ordered = sorted(self.latencies)
        return {
            "updates_resent": self.resent,
            "ack_latency_median_seconds": percentile(ordered, 0.5),
            "ack_latency_p99_seconds": percentile(ordered, 0.99),
            "acknowledged": len(ordered),
        }


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def observe_updates(master: Any, updates: Updates) -> None:
    """Let `updates` see every delivery attempt and every acknowledgement the master handles
    (`Master.forward_update`, `Master.acknowledged`; both run on the master's loop)."""
    forward, acknowledged = master.forward_update, master.acknowledged

    def forward_and_watch(agent: Any, status: dict) -> None:
        updates.forwarded(status)
        forward(agent, status)

    def acknowledged_and_watch(framework: Any, agent: Any, task_id: str, uuid: str) -> None:
        updates.acknowledged(uuid)
        acknowledged(framework, agent, task_id, uuid)

    master.forward_update = forward_and_watch
    master.acknowledged = acknowledged_and_watch


def observe(master: Any, watch: Watch) -> None:
    """Let `watch` see every timeline entry as it is recorded (the timeline itself is capped)."""
    record = master.record

    def record_and_watch(event: str, **fields: Any) -> None:
        record(event, **fields)
        watch.see(master.timeline_entries[-1])

    master.record = record_and_watch


class Lines:
    """JSON lines to the parent; two threads write them."""

    def __init__(self, out: IO[str]) -> None:
        self.out, self.lock = out, threading.Lock()

    def emit(self, **fields: Any) -> None:
        with self.lock:
            self.out.write(json.dumps(fields) + "\n")
            self.out.flush()


def report_progress(cluster: Any, watch: Watch, lines: Lines, stop: threading.Event) -> None:
    """`subscribed`, `progress` when the done count moves, then `converged` once.

    Converged: every agent done as Mesos saw it (`mesos_t`), and then every status update
    acknowledged (`t`): the scheduler acknowledges an update only after storing its effect,
    so from then on its own view and its store agree with Mesos.
    """
    subscribed = False
    done = -1
    while not stop.wait(0.05):
        if not subscribed and watch.subscribed_at is not None:
            subscribed = True
            lines.emit(event="subscribed", t=watch.subscribed_at)
        if watch.done != done:
            done = watch.done
            lines.emit(event="progress", done=done)
        if watch.converged_at is not None and cluster.call(unacknowledged, cluster.master) == 0:
            lines.emit(event="converged", t=time.monotonic(), mesos_t=watch.converged_at)
            return


def unacknowledged(master: Any) -> int:
    """Status updates the agents still wait to have acknowledged."""
    return sum(agent.pending_updates() for agent in master.agents.values())


def serve_devcluster(agents: int, interval: float, step: float, durations: dict) -> None:
    """The devcluster child: runs until its stdin closes, then prints the counts."""
    from calico_dcos.devcluster import DevCluster

    lines, watch, started = Lines(sys.stdout), Watch(agents), time.monotonic()
    cluster = DevCluster(
        agents=agents, public_agents=0, port=0, executor="synthetic",
        allocation_interval=interval, synthetic_durations=durations,
        synthetic_step=step / 2,  # launch to STARTING, and again to RUNNING
    )  # fmt: skip
    observe(cluster.master, watch)
    updates = Updates()
    observe_updates(cluster.master, updates)
    cluster.start()
    # Start-up made the agents, their host roots and the master's tables, which live as long
    # as the process: later collections need not scan them again (`gc.freeze`).
    gc.collect()
    gc.freeze()
    # Fewer, larger young collections and rarer full ones (a full one scans every status
    # and timeline entry kept so far): the real master has no collector to pay for.
    gc.set_threshold(50_000, 20, 20)
    lines.emit(event="ready", master=cluster.master_url, seconds=time.monotonic() - started)
    stop = threading.Event()
    reporter = threading.Thread(
        target=report_progress, args=(cluster, watch, lines, stop), daemon=True
    )
    reporter.start()
    sys.stdin.read()
    stop.set()
    reporter.join()
    counts = cluster.call(
        lambda: (
            dict(watch.calls), watch.offers, updates.summary(), watch.slot_seconds,
            dict(watch.offers_by_role),
        )
    )  # fmt: skip
    lines.emit(
        event="counts", calls=counts[0], offers=counts[1], updates=counts[2],
        slot_seconds=counts[3], offers_by_role=counts[4],
    )  # fmt: skip
    cluster.stop()


# ---------------------------------------------------------------------------------------
# The scheduler child: `calico-dcos run`, plus the store's counters at exit


def serve_scheduler(options_file: str, stats_file: str, timings: dict[str, float]) -> None:
    """As `calico-dcos run`; the store's counters go to `stats_file` after the stop."""
    from calico_dcos.options import load_options
    from calico_dcos.service import start_service, wait_for_signal

    options = load_options(options_file, os.environ)
    logs.configure(options["service"]["log_level"].upper())
    service = start_service(options, host="127.0.0.1", timings=timings)
    code = wait_for_signal(service)
    stats = {
        "store_writes": service.store.writes,
        "store_bytes": service.store.bytes_written,
        "store_commits": getattr(service.store, "commits", None),
        "event_thread": service.scheduler.busy.summary(),
        "groups": service.scheduler.pipeline.stats.as_dict(),
        "counters": dict(service.scheduler.counters),
        # what the plan timed itself by: the devcluster's, learned from it (GET_FLAGS)
        "allocation_interval_seconds": service.scheduler.plan.config.allocation_interval_seconds,
    }
    Path(stats_file).write_text(json.dumps(stats))
    sys.exit(code)


def scheduler_options(settings: Settings, master: str, state: str) -> dict:
    """Every step on (the defaults), the devcluster as master, the bench's budget."""
    budget = settings.restart_budget
    return {
        "service": {
            "master": master,
            "state": state,
            "failover_timeout_seconds": 60,
            "user": "nobody",
        },
        "rollout": {"max_concurrent_restarts": int(budget) if str(budget).isdigit() else budget},
    }


# ---------------------------------------------------------------------------------------
# The parent: one run per size


class Sampler(threading.Thread):
    """The scheduler's RSS every 0.1 s (peak kept) and its CPU seconds on demand."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.process = psutil.Process(pid)
        self.peak_rss = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            except psutil.Error:
                return

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system


class Child:
    """A child process whose stdout JSON lines arrive on a queue (read with a deadline)."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        try:
            line = self.lines.get(timeout=max(0.0, remaining))
        except queue.Empty:
            raise TimeoutError("no word from the devcluster before the deadline") from None
        if line is None:
            raise RuntimeError(f"the devcluster exited ({self.process.wait()})")
        return line

    def until(self, event: str, deadline: float) -> dict:
        while (line := self.next(deadline))["event"] != event:
            pass
        return line


def child_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "calico_dcos.bench", *args]


@contextmanager
def devcluster_child(settings: Settings, agents: int) -> Iterator[Child]:
    child = Child(
        child_argv(
            "devcluster", "--agents", str(agents),
            "--allocation-interval", str(settings.allocation_interval),
            "--step-seconds", str(settings.step_seconds),
            "--durations", json.dumps(settings.restart_seconds),
        )
    )  # fmt: skip
    try:
        yield child
    finally:
        _stop(child.process, lambda: child.process.stdin.close())


@contextmanager
def scheduler_child(
    options: dict, timings: dict[str, float], workdir: Path
) -> Iterator[tuple[subprocess.Popen, Path]]:
    options_file, stats_file = workdir / "options.json", workdir / "stats.json"
    options_file.write_text(json.dumps(options))
    env = {**_environ(), "PORT0": "0", "HOST": "127.0.0.1"}
    argv = child_argv(
        "scheduler", "--options", str(options_file), "--stats", str(stats_file),
        "--timings", json.dumps(timings),
    )  # fmt: skip
    with open(workdir / "scheduler.log", "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        yield process, stats_file
    finally:
        _stop(process, lambda: process.send_signal(signal.SIGTERM))


def _environ() -> dict[str, str]:
    """Our environment without CALICO_* variables: the options file alone decides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CALICO_")}


def _stop(process: subprocess.Popen, ask: Callable[[], None]) -> None:
    """Ask politely, give it time, then kill: a bench never leaves a process behind."""
    if process.poll() is None:
        ask()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def state_store(settings: Settings, agents: int) -> Iterator[str]:
    """A fresh file store, or a fresh path under the given ZooKeeper URL (wiped after)."""
    if not settings.store:
        with tempfile.TemporaryDirectory(prefix="calico-bench-state-") as path:
            yield path
        return
    url = f"{settings.store.rstrip('/')}/bench-{agents}-{uuid.uuid4().hex[:8]}"
    try:
        yield url
    finally:
        from calico_dcos.store import open_store

        store = open_store(url)
        store.wipe()
        store.close()


@contextmanager
def profiling(directory: Path | None, pid: int, agents: int, cpu: bool = False) -> Iterator[None]:
    """py-spy samples the scheduler while the body runs, without pausing it: by default every
    thread, waits included (wall time: where a slow rollout waits is as telling as where it
    computes; a sender thread blocked on its socket counts as busy there), or with `cpu` only
    the samples of the thread holding the GIL (py-spy's `--gil`: where the CPU goes), into
    `scheduler-<agents>.txt` or `scheduler-<agents>-cpu.txt`."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"scheduler-{agents}{'-cpu' if cpu else ''}.txt"
    which = ["--gil"] if cpu else ["--idle"]
    spy = subprocess.Popen(
        [_py_spy(), "record", "--pid", str(pid), "--nonblocking", "--threads", *which,
         "--format", "raw", "--rate", "50", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        _stop(spy, lambda: spy.send_signal(signal.SIGINT))


def _py_spy() -> str:
    """py-spy next to our interpreter (pip installs it into the virtualenv), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else "py-spy"


class Progress(Protocol):
    """What a size reports as it runs (`display.CountDisplay`): `start_clock()` at the
    framework's SUBSCRIBE, where the wall time starts; `update(done)` as agents converge,
    and at the end `update(agents, wall_seconds)`, the run's own figure."""

    def start_clock(self) -> None: ...

    def update(self, done: int, elapsed: float | None = None) -> None: ...


def run_size(settings: Settings, agents: int, progress: Progress) -> dict:
    """One size: both children, the scheduler sampled, the figures of the run."""
    deadline = time.monotonic() + settings.timeout
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="calico-bench-") as tmp,
        state_store(settings, agents) as state,
        devcluster_child(settings, agents) as devcluster,
    ):
        master = devcluster.until("ready", deadline)["master"]
        options = scheduler_options(settings, master, state)
        # the master's allocation interval is not among them: the scheduler asks the
        # devcluster for it (GET_FLAGS), as `calico-dcos run` asks a real master
        timings = dict(settings.scheduler_timings)
        with scheduler_child(options, timings, Path(tmp)) as (scheduler, stats_file):
            sampler = Sampler(scheduler.pid)
            sampler.start()
            with profiling(settings.profile_dir, scheduler.pid, agents, settings.profile_cpu):
                measured = _follow(devcluster, sampler, agents, progress, deadline)
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(timeout=60)
            sampler.stopping.set()
        devcluster.process.stdin.close()
        counts = devcluster.until("counts", time.monotonic() + 60)
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    figures = _figures(settings, agents, measured, counts, stats, sampler.peak_rss)
    # The machine's load (1-minute average) when the size started and ended: on a shared
    # machine a figure means little without it.
    figures["load_average"] = [load_before[0], os.getloadavg()[0]]
    return figures


def _follow(
    devcluster: Child, sampler: Sampler, agents: int, progress: Progress, deadline: float
) -> dict:
    """Until converged (or the deadline): the CPU of both children at SUBSCRIBE and at
    convergence (the devcluster's so that a slow embedded master is not blamed on the
    scheduler)."""
    master = psutil.Process(devcluster.process.pid)
    subscribed = devcluster.until("subscribed", deadline)
    startup_cpu, master_cpu = sampler.cpu_seconds(), _cpu_seconds(master)
    progress.start_clock()
    done = 0
    try:
        while (line := devcluster.next(deadline))["event"] != "converged":
            if line["event"] == "progress":
                done = line["done"]
                if done < agents:  # the last count comes with the wall time, below
                    progress.update(done)
    except TimeoutError:
        return {
            "startup_cpu": startup_cpu,
            "cpu": sampler.cpu_seconds(),
            "devcluster_cpu": _cpu_seconds(master) - master_cpu,
            "done": done,
        }
    cpu = sampler.cpu_seconds()
    progress.update(agents, line["t"] - subscribed["t"])  # the wall time, as the result says
    return {
        "startup_cpu": startup_cpu,
        "cpu": cpu,
        "devcluster_cpu": _cpu_seconds(master) - master_cpu,
        "wall": line["t"] - subscribed["t"],
        "mesos_wall": line["mesos_t"] - subscribed["t"],
    }


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _figures(
    settings: Settings, agents: int, measured: dict, counts: dict, stats: dict, peak_rss: int
) -> dict:
    """Totals per run (per-agent figures are these divided by `agents`)."""
    chain, serial = bound_parts(settings, agents)
    bound = chain + serial
    wall = measured.get("wall")
    scheduler_cpu = measured["cpu"] - measured["startup_cpu"]
    return {
        "agents": agents,
        "converged": wall is not None,
        "agents_done": agents if wall is not None else measured["done"],
        "wall_seconds": wall,
        "mesos_wall_seconds": measured.get("mesos_wall"),
        "lower_bound_seconds": bound,
        "lower_bound_chain_seconds": chain,  # one agent's steps
        "lower_bound_slots_seconds": serial,  # the others' slot holds, through the budget
        "restart_slots": settings.budget_for(agents),
        "plan_pace_seconds": plan_pace(settings, agents),
        # None when it did not converge, or when every step takes 0 s (a bound of 0)
        "ratio": wall / bound if wall is not None and bound > 0 else None,
        "scheduler_cpu_seconds": measured["cpu"] - measured["startup_cpu"],
        "scheduler_startup_cpu_seconds": measured["startup_cpu"],
        "offers_received": counts["offers"],
        # by the role Mesos allocated them to: the framework's two (`*`, `slave_public`) get
        # a private agent's unreserved resources in turn, each role's filters its own
        "offers_by_role": counts.get("offers_by_role") or {},
        # how busy the restart slots were between SUBSCRIBE and convergence (`Watch`)
        "restart_slot_busy_share": _ratio(
            counts.get("slot_seconds"), (wall or 0.0) * settings.budget_for(agents)
        ),
        "calls": {t: counts["calls"].get(t, 0) for t in CALL_TYPES},
        # why the plan sent each REVIVE (`calico_dcos.core.revive.REASONS`), from the
        # scheduler's own counters: the master sees only the calls
        "revive_reasons": revive_reasons(stats.get("counters") or {}),
        "store_writes": stats.get("store_writes"),
        "store_bytes": stats.get("store_bytes"),
        "store_commits": stats.get("store_commits"),
        "store_records_per_commit": _ratio(stats.get("store_writes"), stats.get("store_commits")),
        "scheduler_peak_rss_bytes": peak_rss,
        # the master's --allocation_interval as the scheduler learned it (GET_FLAGS): the
        # bench's --allocation-interval when it did, Mesos' default 1 s when it could not
        "scheduler_allocation_interval_seconds": stats.get("allocation_interval_seconds"),
        "store_most_pending_records": (stats.get("groups") or {}).get("most_pending"),
        "devcluster_cpu_seconds": measured["devcluster_cpu"],
        "cores": CORES,
        "cpu_floor_seconds": cpu_floor(scheduler_cpu, measured["devcluster_cpu"]),
        "event_thread_busy_share": _ratio(
            (stats.get("event_thread") or {}).get("busy_seconds"),
            (stats.get("event_thread") or {}).get("window_seconds"),
        ),
        **counts.get("updates", {}),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def summarise(runs: list[dict]) -> dict:
    """The JSON document: the runs, and growth from the smallest to the largest converged
    size (a run cut off by the timeout would understate its cost)."""
    converged = [run for run in runs if run["converged"]]
    document = {"runs": runs, "cpu_growth_exponent": None, "rss_growth_bytes_per_agent": None}
    if len(converged) < 2:
        return document
    small, large = converged[0], converged[-1]
    document["cpu_growth_exponent"] = growth_exponent(
        (small["agents"], small["scheduler_cpu_seconds"]),
        (large["agents"], large["scheduler_cpu_seconds"]),
    )
    rss = large["scheduler_peak_rss_bytes"] - small["scheduler_peak_rss_bytes"]
    document["rss_growth_bytes_per_agent"] = rss / (large["agents"] - small["agents"])
    return document


# ---------------------------------------------------------------------------------------
# Child entry points: `python -m calico_dcos.bench devcluster|scheduler …`


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m calico_dcos.bench")
    sub = parser.add_subparsers(dest="role", required=True)
    dev = sub.add_parser("devcluster")
    dev.add_argument("--agents", type=int, required=True)
    dev.add_argument("--allocation-interval", type=float, required=True)
    dev.add_argument("--step-seconds", type=float, required=True)
    dev.add_argument("--durations", type=json.loads, required=True)
    sched = sub.add_parser("scheduler")
    sched.add_argument("--options", required=True)
    sched.add_argument("--stats", required=True)
    sched.add_argument("--timings", type=json.loads, default={})
    args = parser.parse_args(argv)
    if args.role == "devcluster":
        logging.basicConfig(level=logging.WARNING)
        serve_devcluster(args.agents, args.allocation_interval, args.step_seconds, args.durations)
    else:
        serve_scheduler(args.options, args.stats, args.timings)


if __name__ == "__main__":
    main()
