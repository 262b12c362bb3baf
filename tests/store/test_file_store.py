"""What only the embedded file store does: files, permissions, atomic replacement."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import pytest

from calico_dcos.store import StateCorrupt, StoreError, open_store
from tests.store.test_store_contract import agent_record

NOBODY = 65534


@contextlib.contextmanager
def as_unprivileged_user() -> Iterator[None]:
    """Root reads any file; to see a permission error the test must not be root."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


def test_an_unreadable_record_is_a_clear_error_naming_the_file(world_readable_dir):
    store = open_store(str(world_readable_dir / "state"))
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    record = world_readable_dir / "state" / "agents" / "a1b2-S0.json"
    record.chmod(0)

    with as_unprivileged_user(), pytest.raises(StateCorrupt) as raised:
        store.load_agents()

    assert str(record) in str(raised.value)
    assert "Permission denied" in str(raised.value)


def test_a_state_directory_that_cannot_be_created_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")

    with pytest.raises(StoreError, match="cannot create the state directory"):
        open_store(str(tmp_path / "file" / "state"))


def test_writes_leave_only_whole_records_and_leftover_temp_files_are_ignored(tmp_path):
    store = open_store(str(tmp_path))
    for i in range(3):
        store.put_agent(f"a1b2-S{i}", agent_record(f"a1b2-S{i}"))
    (tmp_path / "agents" / ".tmp-crashed").write_bytes(b'{"half')

    assert sorted(p.name for p in (tmp_path / "agents").iterdir()) == [
        ".tmp-crashed",
        "a1b2-S0.json",
        "a1b2-S1.json",
        "a1b2-S2.json",
    ]
    assert sorted(open_store(str(tmp_path)).load_agents()) == ["a1b2-S0", "a1b2-S1", "a1b2-S2"]


def test_wipe_keeps_a_held_leader_lock(tmp_path):
    leader, contender = open_store(str(tmp_path)), open_store(str(tmp_path))
    leader.acquire_leadership(on_lost=lambda: None)
    leader.put_agent("a1b2-S0", agent_record("a1b2-S0"))

    leader.wipe()

    acquired = threading.Event()
    threading.Thread(
        target=lambda: (contender.acquire_leadership(lambda: None), acquired.set()), daemon=True
    ).start()
    assert not acquired.wait(0.3), "wipe let a second leader in"
    leader.close()
    assert acquired.wait(5)
    contender.close()
