"""The group committer (`calico_dcos.pipeline`): actions only after their writes are durable,
many events' writes in one group, nothing acted on after a failed write.

The store here is a recording stand-in (the real stores' `put_many` are tested in
tests/store against a directory and a real ZooKeeper); the threads are real.
"""

from __future__ import annotations

import threading

from calico_dcos.pipeline import WAKE_AFTER_RECORDS, Batch, Pipeline, coalesce, handed_over
from tests.helpers.wait import wait_until


class GatedStore:
    """Records each group; a commit waits until the test opens the gate."""

    def __init__(self) -> None:
        self.groups: list[list] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail_with: Exception | None = None

    def put_many(self, writes) -> None:
        self.entered.set()
        self.gate.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        self.groups.append(list(writes))


def test_actions_wait_for_their_group_and_later_events_share_one_group():
    store, done, failures = GatedStore(), [], []
    pipeline = Pipeline(store.put_many, done.extend, failures.append)
    pipeline.submit(Batch([("agent", "a-S0", {"n": 1})], [lambda: "ack-1"]))
    assert store.entered.wait(5)
    for n in range(2, 6):  # arrive while the first group is being written
        pipeline.submit(Batch([("agent", f"a-S{n}", {"n": n})], [lambda n=n: f"ack-{n}"]))

    assert done == []
    store.gate.set()
    assert pipeline.flush(5)

    assert [len(group) for group in store.groups] == [1, 4]
    assert [action() for action in done] == [f"ack-{n}" for n in (1, 2, 3, 4, 5)]
    assert pipeline.stats.groups == 2 and pipeline.stats.largest == 4
    assert failures == []
    pipeline.close()


def test_a_failed_write_reports_once_and_nothing_after_it_is_acted_on():
    store, done, failures = GatedStore(), [], []
    store.fail_with = OSError("disk full")
    pipeline = Pipeline(store.put_many, done.extend, failures.append)
    pipeline.submit(Batch([("agent", "a-S0", {})], [lambda: "launch"]))
    store.gate.set()
    wait_until(lambda: failures, timeout=5)
    pipeline.submit(Batch([("agent", "a-S1", {})], [lambda: "ack"]))

    assert pipeline.failed
    assert [str(exc) for exc in failures] == ["disk full"]
    assert done == []
    pipeline.close()


def test_a_batch_without_writes_still_waits_for_the_writes_before_it():
    store, done = GatedStore(), []
    pipeline = Pipeline(store.put_many, done.extend, lambda exc: None)
    pipeline.submit(Batch([("agent", "a-S0", {})], [lambda: "ack-0"]))
    assert store.entered.wait(5)
    pipeline.submit(Batch([], [lambda: "decline"]))

    assert done == []
    store.gate.set()
    assert pipeline.flush(5)
    assert [action() for action in done] == ["ack-0", "decline"]
    pipeline.close()


def test_coalesce_keeps_the_last_write_of_each_record_in_the_order_of_last_writes():
    writes = [("agent", "a", {"v": 1}), ("agent", "b", {"v": 1}), ("agent", "a", {"v": 2})]

    assert coalesce(writes) == [("agent", "b", {"v": 1}), ("agent", "a", {"v": 2})]


def test_submit_blocks_while_too_many_records_wait():
    store = GatedStore()
    pipeline = Pipeline(store.put_many, lambda actions: None, lambda exc: None, max_pending=2)
    pipeline.submit(Batch([("agent", "a", {}), ("agent", "b", {})]))
    third = threading.Thread(target=pipeline.submit, args=(Batch([("agent", "c", {})]),))
    third.start()
    third.join(0.3)  # bounded wait for a thread that must stay blocked, not a sleep to sync

    assert third.is_alive()
    store.gate.set()
    third.join(5)
    assert not third.is_alive()
    pipeline.close()


def on_a_thread(fn) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()


def test_a_thread_that_hands_over_wakes_the_committer_once_per_read():
    """pymesos' event thread calls `handed_over()` before each wait for the stream
    (`driver.SelectHandingOver`): its batches wait for that call, or for 64 records; any
    other thread's batch wakes the committer at once, and takes the waiting ones along."""
    store = GatedStore()
    store.gate.set()
    done: list = []
    # the committer never wakes by itself here: only a wake-up can start a group
    pipeline = Pipeline(store.put_many, done.extend, lambda exc: None, idle_wait=3600)

    def event_thread_reads(first: int, count: int, hand_over: bool) -> None:
        handed_over()  # this thread waits for input between reads: it hands over
        for n in range(first, first + count):
            pipeline.submit(Batch([("agent", f"a-S{n}", {})], [lambda n=n: n]))
        if hand_over:
            handed_over()

    on_a_thread(lambda: event_thread_reads(0, 3, hand_over=False))
    pipeline.submit(Batch([("agent", "other", {})]))  # e.g. an operator's command
    wait_until(lambda: len(store.groups) == 1)
    assert [name for _, name, _ in store.groups[0]] == ["a-S0", "a-S1", "a-S2", "other"]

    on_a_thread(lambda: event_thread_reads(3, 2, hand_over=True))
    wait_until(lambda: len(store.groups) == 2)
    assert [name for _, name, _ in store.groups[1]] == ["a-S3", "a-S4"]

    on_a_thread(lambda: event_thread_reads(5, WAKE_AFTER_RECORDS, hand_over=False))
    wait_until(lambda: sum(len(group) for group in store.groups) == 5 + 1 + WAKE_AFTER_RECORDS)
    assert pipeline.flush(5)
    assert [action() for action in done] == list(range(5 + WAKE_AFTER_RECORDS))
    pipeline.close()


def test_flush_wakes_the_committer_for_batches_not_handed_over():
    store = GatedStore()
    store.gate.set()
    pipeline = Pipeline(store.put_many, lambda actions: None, lambda exc: None, idle_wait=3600)

    def submit_without_handing_over() -> None:
        handed_over()
        pipeline.submit(Batch([("agent", "a-S0", {})]))

    on_a_thread(submit_without_handing_over)
    assert pipeline.flush(5)
    assert store.groups == [[("agent", "a-S0", {})]]
    pipeline.close()


class RecordingStore:
    def __init__(self) -> None:
        self.groups: list[list] = []

    def put_many(self, writes) -> None:
        self.groups.append(list(writes))


def test_a_small_group_gathers_more_before_its_write_and_a_large_one_does_not_wait():
    """A group of fewer than WAKE_AFTER_RECORDS records waits up to `gather` for others to
    share its commit (a flush ends the wait); a larger one is written at once."""
    store, done, failures = RecordingStore(), [], []
    pipeline = Pipeline(store.put_many, done.extend, failures.append, gather=5.0)
    pipeline.submit(Batch([("agent", "a-S0", {"n": 0})], [lambda: "ack-0"]))
    pipeline.submit(Batch([("agent", "a-S1", {"n": 1})], [lambda: "ack-1"]))
    assert pipeline.flush(3)
    assert [len(group) for group in store.groups] == [2]
    assert [action() for action in done] == ["ack-0", "ack-1"]

    many = [("agent", f"a-S{n}", {"n": n}) for n in range(WAKE_AFTER_RECORDS)]
    pipeline.submit(Batch(many, [lambda: "launches"]))
    wait_until(lambda: len(store.groups) == 2, timeout=3)  # well before the 5 s gather

    assert len(store.groups[1]) == WAKE_AFTER_RECORDS and done[-1]() == "launches"
    assert failures == []
    pipeline.close()
