"""The group committer (`calico_dcos.pipeline`): actions only after their writes are durable,
many events' writes in one group, nothing acted on after a failed write.

The store here is a recording stand-in (the real stores' `put_many` are tested in
tests/store against a directory and a real ZooKeeper); the threads are real.
"""

from __future__ import annotations

import threading

from calico_dcos.pipeline import Batch, Pipeline, coalesce
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
