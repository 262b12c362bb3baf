"""The StateStore contract, run against the file store and a real ZooKeeper alike."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from calico_dcos.store import (
    MAX_META_BYTES,
    MAX_RECORD_BYTES,
    RecordTooLarge,
    StateCorrupt,
    StoreError,
    encode_document,
)

HOLDER = Path(__file__).with_name("lock_holder.py")


def agent_record(agent_id: str) -> dict:
    return {
        "agent_id": agent_id,
        "hostname": f"agent-{agent_id[-1]}",
        "public": False,
        "steps": {
            "cni": {
                "task_id": f"calico-cni__{agent_id}__4f2a0000__2",
                "state": "TASK_FINISHED",
                "fingerprint": "4f2a" * 8,
                "attempts": 2,
                "updated": 1764357000.0,
                "message": "installed",
            }
        },
    }


def acquire_in_thread(store) -> threading.Event:
    """Start acquire_leadership in a thread; the event is set once it returns."""
    acquired = threading.Event()

    def acquire() -> None:
        store.acquire_leadership(on_lost=lambda: None)
        acquired.set()

    threading.Thread(target=acquire, daemon=True).start()
    return acquired


def test_framework_id_round_trips_and_can_be_forgotten(backend):
    store = backend.open()
    assert store.get_framework_id() is None

    store.set_framework_id("f0c2-0001")
    assert backend.open().get_framework_id() == "f0c2-0001"

    store.set_framework_id(None)
    assert backend.open().get_framework_id() is None


def test_agents_round_trip_through_a_second_store(backend):
    store = backend.open()
    records = {f"a1b2-S{i}": agent_record(f"a1b2-S{i}") for i in range(4)}
    for agent_id, record in records.items():
        store.put_agent(agent_id, record)

    assert backend.open().load_agents() == records


def test_put_agent_replaces_the_record_and_delete_forgets_it(backend):
    store = backend.open()
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    store.put_agent("a1b2-S1", agent_record("a1b2-S1"))
    updated = agent_record("a1b2-S0") | {"hostname": "renamed"}

    store.put_agent("a1b2-S0", updated)
    store.delete_agent("a1b2-S1")
    store.delete_agent("never-existed-S9")

    assert backend.open().load_agents() == {"a1b2-S0": updated}


def test_each_put_agent_is_one_write_of_that_agent_alone(backend):
    store = backend.open()
    for i in range(10):
        store.put_agent(f"a1b2-S{i}", agent_record(f"a1b2-S{i}"))
    before = (store.writes, store.bytes_written)

    store.put_agent("a1b2-S3", agent_record("a1b2-S3"))

    assert store.writes == before[0] + 1
    assert 0 < store.bytes_written - before[1] < 1024


@pytest.mark.parametrize(("kind", "bound"), [("agent", MAX_RECORD_BYTES), ("meta", MAX_META_BYTES)])
def test_a_record_over_its_bound_is_refused_before_anything_is_written(backend, kind, bound):
    """The bounds are far below ZooKeeper's 1 MiB (a larger request drops the connection)."""
    store = backend.open()
    put = store.put_agent if kind == "agent" else store.put_meta
    put("a1b2-S0", {"message": "kept"})
    before = (store.writes, store.bytes_written)
    padding = bound - len('{"message":""}')

    put("a1b2-S0", {"message": "x" * padding})  # exactly the bound: written
    with pytest.raises(
        RecordTooLarge, match=rf"a1b2-S0(\.json)?: a record of {bound + 1} bytes is over"
    ):
        put("a1b2-S0", {"message": "y" * (padding + 1)})

    assert bound < 0xFFFFF  # ZooKeeper's default jute.maxbuffer
    assert (store.writes, store.bytes_written) == (before[0] + 1, before[1] + bound)
    stored = backend.open()
    got = stored.load_agents()["a1b2-S0"] if kind == "agent" else stored.get_meta("a1b2-S0")
    assert got == {"message": "x" * padding}


def test_meta_documents_round_trip(backend):
    store = backend.open()
    assert store.get_meta("plan") is None

    store.put_meta("plan", {"interrupted": True})

    assert backend.open().get_meta("plan") == {"interrupted": True}


def test_corrupt_agent_record_names_where_it_is_and_is_kept(backend):
    store = backend.open()
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    backend.write_raw("a1b2-S1", b'{"agent_id": "a1b2-S1", "ste')

    with pytest.raises(StateCorrupt) as raised:
        store.load_agents()

    assert backend.agent_location("a1b2-S1") in str(raised.value)
    with pytest.raises(StateCorrupt):
        backend.open().load_agents()


def test_a_record_that_is_not_an_object_is_corrupt(backend):
    store = backend.open()
    backend.write_raw("a1b2-S1", b"[1, 2]")

    with pytest.raises(StateCorrupt, match="expected a JSON object"):
        store.load_agents()


def test_names_that_could_escape_the_store_are_refused(backend):
    store = backend.open()
    for bad in ("../framework", "a/b", "", ".hidden"):
        with pytest.raises(StoreError, match="invalid agent ID"):
            store.put_agent(bad, {})


def test_wipe_removes_the_state_and_nothing_beside_it(backend):
    neighbour = backend.sibling("-neighbour")
    try:
        neighbour.open().put_agent("n-S0", agent_record("n-S0"))
        store = backend.open()
        store.set_framework_id("f0c2-0001")
        store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
        store.put_meta("uninstall", {"started": True})

        store.wipe()

        fresh = backend.open()
        assert fresh.get_framework_id() is None
        assert fresh.load_agents() == {}
        assert fresh.get_meta("uninstall") is None
        assert list(neighbour.open().load_agents()) == ["n-S0"]
    finally:
        neighbour.close_all()


def test_second_leader_waits_until_the_first_releases(backend):
    first, second = backend.open(), backend.open()
    first.acquire_leadership(on_lost=lambda: None)

    acquired = acquire_in_thread(second)
    assert not acquired.wait(0.5), "two leaders at once"

    first.release_leadership()
    assert acquired.wait(10)


def test_second_leader_takes_over_when_the_first_process_is_killed(backend):
    holder = subprocess.Popen(
        [sys.executable, str(HOLDER), backend.url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "leader"
        acquired = acquire_in_thread(backend.open())
        assert not acquired.wait(0.5), "two leaders at once"

        holder.send_signal(signal.SIGKILL)

        assert acquired.wait(15), "the lock of a killed leader never passed on"
    finally:
        holder.kill()
        holder.wait()


def test_put_many_writes_a_group_that_a_second_store_reads_back(backend):
    store = backend.open()
    store.put_agent("g-S0", {"old": True})
    records = {f"g-S{n}": agent_record(f"g-S{n}") for n in range(50)}
    writes = [("agent", aid, record) for aid, record in records.items()]
    writes += [("meta", "flags", {"paused": True}), ("framework_id", "", {"framework_id": "f-9"})]

    store.put_many(writes)

    reader = backend.open()
    assert reader.load_agents() == records
    assert reader.get_meta("flags") == {"paused": True}
    assert reader.get_framework_id() == "f-9"
    assert store.writes == 1 + len(writes)


def test_put_many_takes_records_encoded_already_and_reads_them_back_as_objects(backend):
    """The scheduler encodes a record when it decides it (`encode_document`'s bytes)."""
    store = backend.open()
    records = {f"g-S{n}": agent_record(f"g-S{n}") for n in range(3)}

    store.put_many([("agent", aid, encode_document(record)) for aid, record in records.items()])

    assert backend.open().load_agents() == records


def test_encoded_records_read_back_as_they_were_whatever_their_text(backend):
    """orjson's bytes (UTF-8 beyond ASCII) and the standard library's (lone surrogates, which
    orjson refuses) both read back as the documents they encode."""
    store = backend.open()
    record = agent_record("u-S1")
    record["hostname"] = "agent-é-😀"
    record["steps"]["cni"]["message"] = "bad byte \ud800 in the output"
    store.put_many([("agent", "u-S1", encode_document(record))])

    assert backend.open().load_agents() == {"u-S1": record}


def test_put_many_is_one_flush_for_the_whole_group(backend):
    store = backend.open()
    before = store.commits

    store.put_many([("agent", f"g-S{n}", agent_record(f"g-S{n}")) for n in range(100)])

    # The file store: one SQLite transaction (one fsync of its log); ZooKeeper: one multi-op.
    assert store.commits - before == 1


def test_put_many_refuses_a_group_with_one_record_over_its_bound_before_writing(backend):
    store = backend.open()
    too_large = {"blob": "x" * MAX_RECORD_BYTES}
    writes = [("agent", "g-S0", agent_record("g-S0")), ("agent", "g-S1", too_large)]

    with pytest.raises(RecordTooLarge, match="g-S1"):
        store.put_many(writes)

    assert backend.open().load_agents() == {}


def test_put_many_deletes_an_agent_given_none_and_ignores_one_never_stored(backend):
    store = backend.open()
    store.put_agent("g-S0", agent_record("g-S0"))

    store.put_many([("agent", "g-S0", None), ("agent", "g-S9", None), ("agent", "g-S1", {})])

    assert backend.open().load_agents() == {"g-S1": {}}
