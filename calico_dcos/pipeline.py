"""Group commit: the plan's store writes leave pymesos' event thread, many at a time.

The event thread runs the plan and hands each event's outcome to `Pipeline.submit` as one
`Batch`: the records to write and the actions that may only happen once they are durable
(the Mesos calls of the same decisions, and the acknowledgement of the status update that
caused them). The committer thread takes every batch waiting, writes all their records in
one group (`StateStore.put_many`: one fsync for the file store, one multi-op transaction for
ZooKeeper), and only then passes the actions, in submission order, to `run_actions` (the
sender). So:

- nothing is launched before its record is durable, and an update is acknowledged only
  after what it changed is durable: a crash before the group is durable loses the actions
  as well, and Mesos resends the unacknowledged updates (apache/mesos
  src/slave/task_status_update_manager.cpp retries an update until it is acknowledged);
- while one group is being written, the next one gathers, so the number of fsyncs stops
  growing with the number of events;
- a write that fails stops everything after it (`on_failure`): the scheduler fails and is
  restarted from the store, the last state known to be durable.

Bounded: `submit` blocks while `max_pending` records wait (back-pressure on the event thread,
which then stops reading events, and Mesos holds them), so memory stays bounded when the
store is slow.

Woken once per read, not once per event: a thread that says it will call `handed_over()`
before it next waits for input (pymesos' event thread, before each `select`:
`driver.read_events_faster`) leaves the committer asleep while it handles the events of one
read, and wakes it then, or as soon as `WAKE_AFTER_RECORDS` records wait; every other
thread's batch wakes it at once. The committer wakes by itself after `IDLE_WAIT_SECONDS`
whatever happens, so a batch never waits longer for a thread that stopped before its next
wait. What this changes is only when a group starts (larger groups, fewer wake-ups and
commits), never what happens before a write is durable.

Gathered: once woken, the committer lets a group of fewer than `WAKE_AFTER_RECORDS`
records wait up to `GATHER_SECONDS` (10 ms) for more before it writes it, as PostgreSQL's
`commit_delay` lets a commit wait for others to share its WAL flush
(https://www.postgresql.org/docs/current/wal-configuration.html). A commit costs the
committer ~40 µs of CPU alone plus ~4 µs a record (SQLite, one record of 1.5 KB:
`FileStore.put_many`), and in the scheduler, beside pymesos' event thread and the sender's
lanes, several times that: each SQLite call lets the GIL go and takes it back. At 1,000
agents (`calico-dcos bench`) the groups grew from ~4 records to ~20 and the scheduler's CPU
fell from 4.8-5.0 to 4.3-4.4 ms per agent (load 3-4.5); an acknowledgement or a launch
waits 10 ms more at most, far inside the 10 s after which an agent resends an update
(apache/mesos src/slave/constants.cpp, `STATUS_UPDATE_RETRY_INTERVAL_MIN`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LOG = logging.getLogger("calico_dcos.pipeline")

# What a record is, for `StateStore.put_many`: ("agent", agent ID, record, or None to
# delete it), ("meta", key, document) or ("framework_id", "", {"framework_id": ID or None});
# a record or document may come encoded already (`store.encode_document`'s bytes).
Write = tuple[str, str, dict | bytes | None]
Action = Callable[[], None]

MAX_GROUP_RECORDS = 512  # ZooKeeper's request limit is 1 MiB; records are ~1.2 KiB
MAX_PENDING_RECORDS = 20_000
WAKE_AFTER_RECORDS = 64  # records left unannounced by a deferring thread, at most
IDLE_WAIT_SECONDS = 0.05  # the committer looks for batches at least this often
GATHER_SECONDS = 0.01  # a group of fewer than WAKE_AFTER_RECORDS records waits this long


class _Deferring(threading.local):
    """Per thread: does it call `handed_over()` before it waits, the pipelines whose
    committer it has yet to wake, and what else waits for its hand-over (`at_hand_over`)."""

    active = False
    pipelines: dict[Pipeline, None] | None = None
    others: dict[Callable[[], None], None] | None = None


_deferring = _Deferring()


def handed_over() -> None:
    """The calling thread is about to wait for input: wake the committers of the batches it
    submitted since its last call, and let its next batches wait for its next call (at
    most `WAKE_AFTER_RECORDS` records, `IDLE_WAIT_SECONDS`)."""
    here = _deferring
    here.active = True
    others, here.others = here.others, None
    for then in others or ():
        try:
            then()
        except Exception:  # never into pymesos' IO loop, which would die of it
            LOG.exception("an action waiting for the hand-over failed")
    pipelines, here.pipelines = here.pipelines, None
    for pipeline in pipelines or ():
        pipeline.wake()


def at_hand_over(then: Callable[[], None]) -> bool:
    """If the calling thread calls `handed_over()` before it waits, run `then` (once) at
    its next call and say True; else False: the caller does what it wanted now (the log's
    lines, `calico_dcos.logs`)."""
    here = _deferring
    if not here.active:
        return False
    if here.others is None:
        here.others = {}
    here.others[then] = None
    return True


@dataclass
class Batch:
    """One event's writes and what may happen only once they are durable."""

    writes: list[Write]
    actions: list[Action] = field(default_factory=list)
    cause: str = ""  # the event ("update", "offers", "tick", …), for logs and tests


@dataclass
class GroupStats:
    """What the benchmark reads: groups committed, records in them, the largest group."""

    groups: int = 0
    records: int = 0
    largest: int = 0
    commit_seconds: float = 0.0
    most_pending: int = 0  # records submitted and not yet durable, at the most

    def as_dict(self) -> dict:
        return {
            "groups": self.groups,
            "records": self.records,
            "largest": self.largest,
            "commit_seconds": self.commit_seconds,
            "most_pending": self.most_pending,
        }


class Pipeline:
    """The committer thread; see the module docstring.

    `commit(writes)` makes a group durable (raising on failure); `run_actions(actions)` is
    handed the group's actions in order once it is; `on_failure(exc)` is told once when a
    commit fails, after which every later batch is dropped (never acted on).
    """

    def __init__(
        self,
        commit: Callable[[Sequence[Write]], None],
        run_actions: Callable[[list[Action]], None],
        on_failure: Callable[[BaseException], None],
        max_group: int = MAX_GROUP_RECORDS,
        max_pending: int = MAX_PENDING_RECORDS,
        after_commit: Callable[[int, list[Batch]], None] | None = None,
        idle_wait: float = IDLE_WAIT_SECONDS,
        gather: float = GATHER_SECONDS,
    ) -> None:
        self._commit = commit
        self._run_actions = run_actions
        self._on_failure = on_failure
        self._after_commit = after_commit  # tests: a crash between a group and its actions
        self.max_group = max_group
        self.max_pending = max_pending
        self.idle_wait = idle_wait
        self.gather = gather
        self.stats = GroupStats()
        self._batches: list[Batch] = []
        self._pending = 0  # records submitted and not yet durable
        self._unannounced = 0  # records of batches submitted since the committer was woken
        self._busy = False  # the committer holds a group
        self._hurry = False  # `flush` waits: no gathering
        self._gathering = False  # the committer waits for a small group to grow
        self._failed = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="store-committer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        """Queue one event's batch; blocks while too many records wait (back-pressure)."""
        if not batch.writes and not batch.actions:
            return
        here = _deferring
        with self._cond:
            while self._pending >= self.max_pending and not (self._failed or self._closed):
                self._cond.notify_all()  # the committer may not have been woken for them
                self._cond.wait()
            if self._failed or self._closed:
                return
            self._batches.append(batch)
            self._pending += len(batch.writes)
            self.stats.most_pending = max(self.stats.most_pending, self._pending)
            self._unannounced += len(batch.writes) or 1
            deferred = here.active and self._unannounced < WAKE_AFTER_RECORDS
            if not deferred and not self._gathering_few():
                self._unannounced = 0
                self._cond.notify_all()
        if deferred:
            if here.pipelines is None:
                here.pipelines = {}
            here.pipelines[self] = None

    def wake(self) -> None:
        """Wake the committer if batches wait that it was not woken for."""
        with self._cond:
            if self._unannounced and not self._gathering_few():
                self._unannounced = 0
                self._cond.notify_all()

    def _gathering_few(self) -> bool:
        """The committer gathers and fewer than `WAKE_AFTER_RECORDS` records wait: it takes
        them at the end of its gather without being woken (each wake-up costs it a system
        call and the GIL)."""
        return self._gathering and self._pending < WAKE_AFTER_RECORDS

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every batch submitted so far is committed and handed on (or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._unannounced = 0
            self._hurry = True
            self._cond.notify_all()
            while (self._batches or self._busy) and not self._failed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def failed(self) -> bool:
        return self._failed

    def _take(self) -> list[Batch] | None:
        """Every waiting batch up to `max_group` records (at least one batch)."""
        with self._cond:
            while not self._batches and not self._closed:
                self._cond.wait(self.idle_wait)
            if not self._batches:
                return None
            # Gather: a small group waits a little for more (no longer than `gather`, and
            # not once `WAKE_AFTER_RECORDS` wait); nothing waiting for it is acted on yet.
            until = time.monotonic() + self.gather
            self._gathering = True
            while self._pending < WAKE_AFTER_RECORDS and not (self._closed or self._hurry):
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._gathering = False
            self._unannounced, self._hurry = 0, False
            taken, records = [], 0
            while self._batches and (
                not taken or records + len(self._batches[0].writes) <= self.max_group
            ):
                batch = self._batches.pop(0)
                taken.append(batch)
                records += len(batch.writes)
            self._busy = True
            return taken

    def _run(self) -> None:
        while (batches := self._take()) is not None:
            writes = coalesce([w for batch in batches for w in batch.writes])
            started = time.perf_counter()
            try:
                if writes:
                    self._commit(writes)
            except BaseException as exc:  # noqa: BLE001 (reported, and everything stops)
                with self._cond:
                    self._failed = True
                    self._busy = False
                    self._batches.clear()
                    self._cond.notify_all()
                LOG.exception("state store group write failed")
                self._on_failure(exc)
                return
            submitted = sum(len(batch.writes) for batch in batches)
            self._account(len(writes), time.perf_counter() - started)
            if self._after_commit is not None:
                self._after_commit(self.stats.groups, batches)
            actions = [action for batch in batches for action in batch.actions]
            try:
                if actions:
                    self._run_actions(actions)
            finally:
                with self._cond:
                    self._pending -= submitted
                    self._busy = False
                    self._cond.notify_all()

    def _account(self, records: int, seconds: float) -> None:
        if records:
            self.stats.groups += 1
            self.stats.records += records
            self.stats.largest = max(self.stats.largest, records)
            self.stats.commit_seconds += seconds


def coalesce(writes: Sequence[Write]) -> list[Write]:
    """The last write of each record, in the order of their last writes: an earlier write of
    the same record in the group would be overwritten in the same commit anyway."""
    last: dict[tuple[str, str], Write] = {}
    for write in writes:
        key = (write[0], write[1])
        last.pop(key, None)
        last[key] = write
    return list(last.values())
