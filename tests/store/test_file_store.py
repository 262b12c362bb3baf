"""What only the embedded file store does: its SQLite database, permissions, a group cut
short by a crash, and the one-time migration of the old one-file-per-record layout."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from calico_dcos.store import StateCorrupt, StoreError, encode_document, open_store
from calico_dcos.store.file import DATABASE_NAME, LOCK_NAME, MIGRATED_NAME
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


def test_an_unreadable_database_is_a_clear_error_naming_the_file(world_readable_dir):
    store = open_store(str(world_readable_dir / "state"))
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    store.close()
    database = world_readable_dir / "state" / DATABASE_NAME
    database.chmod(0)

    with as_unprivileged_user(), pytest.raises(StateCorrupt) as raised:
        open_store(str(world_readable_dir / "state"))

    assert str(database) in str(raised.value)
    assert "Permission denied" in str(raised.value)


def test_a_full_disk_is_a_clear_error_naming_the_database_and_what_to_do(tmp_path):
    """SQLite answers SQLITE_FULL when a write finds no room; `PRAGMA max_page_count` at the
    database's size makes this SQLite answer it for real, without filling a disk."""
    store = open_store(str(tmp_path))
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    with store._mutex:
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
    big = agent_record("a1b2-S1") | {"message": "x" * 60_000}

    with pytest.raises(StoreError) as raised:
        store.put_many([("agent", "a1b2-S0", big), ("agent", "a1b2-S1", big)])

    message = str(raised.value)
    assert str(tmp_path / DATABASE_NAME) in message
    assert "database or disk is full (SQLITE_FULL)" in message  # SQLite's own words
    assert f"the file system holding {tmp_path} is full: free space there" in message
    assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
    assert store.load_agents() == {"a1b2-S0": agent_record("a1b2-S0")}  # all or nothing


def test_a_state_directory_sqlite_may_not_write_is_a_clear_error_saying_what_to_check(
    world_readable_dir,
):
    """The database is the scheduler's, but its directory is not writable (as on a file
    system mounted read-only): SQLite cannot make its write-ahead log there and answers
    SQLITE_READONLY_DIRECTORY (https://www.sqlite.org/rescode.html)."""
    root = world_readable_dir / "state"
    open_store(str(root)).close()
    database = root / DATABASE_NAME
    if os.geteuid() == 0:  # the database becomes the unprivileged user's; root keeps the dir
        os.chown(database, NOBODY, NOBODY)
    root.chmod(0o555)
    try:
        with as_unprivileged_user(), pytest.raises(StoreError) as raised:
            open_store(str(root))
    finally:
        root.chmod(0o755)

    message = str(raised.value)
    assert str(database) in message
    assert "attempt to write a readonly database (SQLITE_READONLY" in message
    assert f"check that the file system holding {root} is mounted read-write" in message
    assert "may write" in message and f"{root} itself" in message
    assert isinstance(raised.value.__cause__, sqlite3.Error)


def test_a_file_that_is_not_a_database_is_corrupt_and_kept(tmp_path):
    (tmp_path / DATABASE_NAME).write_bytes(b"not a database, but some bytes of an editor" * 50)

    with pytest.raises(StateCorrupt) as raised:
        open_store(str(tmp_path))

    assert str(tmp_path / DATABASE_NAME) in str(raised.value)
    assert "restore it from a backup" in str(raised.value)
    assert (tmp_path / DATABASE_NAME).read_bytes().startswith(b"not a database")


def test_a_corrupt_row_names_the_database_the_agent_and_the_fix(tmp_path):
    store = open_store(str(tmp_path))
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    with contextlib.closing(sqlite3.connect(tmp_path / DATABASE_NAME)) as db, db:
        db.execute("UPDATE agents SET record = ? WHERE agent_id = 'a1b2-S0'", (b'{"half',))

    with pytest.raises(StateCorrupt) as raised:
        store.load_agents()

    message = str(raised.value)
    assert f"{tmp_path / DATABASE_NAME} (agent a1b2-S0)" in message
    assert "DELETE FROM agents WHERE agent_id = 'a1b2-S0'" in message


def test_a_state_directory_that_cannot_be_created_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")

    with pytest.raises(StoreError, match="cannot create the state directory"):
        open_store(str(tmp_path / "file" / "state"))


# A writer killed in the middle of its transaction, after SQLite has spilled pages of it to
# the log (cache_size=1 forces the spill): what a scheduler killed inside `put_many` leaves.
KILLED_WRITER = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA synchronous=FULL")
db.execute("PRAGMA cache_size=1")
db.execute("BEGIN IMMEDIATE")
db.execute("UPDATE agents SET record = ?", (b'{"half": "' + b"x" * 3000 + b'"}',))
print(os.path.getsize(sys.argv[1] + "-wal"), flush=True)
os._exit(137)
"""


def test_a_group_cut_short_by_a_crash_leaves_every_old_record(tmp_path):
    store = open_store(str(tmp_path))
    records = {f"g-S{n}": agent_record(f"g-S{n}") for n in range(200)}
    store.put_many([("agent", aid, encode_document(r)) for aid, r in records.items()])
    wal_before = (tmp_path / f"{DATABASE_NAME}-wal").stat().st_size

    writer = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / DATABASE_NAME)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert writer.returncode == 137, writer.stderr
    assert int(writer.stdout) > wal_before  # the uncommitted group did reach the log
    assert open_store(str(tmp_path)).load_agents() == records
    assert store.load_agents() == records


def test_wipe_keeps_a_held_leader_lock_and_removes_the_records(tmp_path):
    leader, contender = open_store(str(tmp_path)), open_store(str(tmp_path))
    leader.acquire_leadership(on_lost=lambda: None)
    leader.put_meta("report-key", {"key": "5ec7e7" * 8})

    leader.wipe()

    assert b"5ec7e7" not in (tmp_path / f"{DATABASE_NAME}-wal").read_bytes()
    acquired = threading.Event()
    threading.Thread(
        target=lambda: (contender.acquire_leadership(lambda: None), acquired.set()), daemon=True
    ).start()
    assert not acquired.wait(0.3), "wipe let a second leader in"
    leader.close()
    assert acquired.wait(5)
    contender.close()
    # Read only now: closing a descriptor of the database drops this process's POSIX locks
    # on it, the open stores' included (https://www.sqlite.org/howtocorrupt.html).
    assert b"5ec7e7" not in (tmp_path / DATABASE_NAME).read_bytes()


def old_layout(root) -> dict:
    """A state directory as the previous file store wrote it (the records it reads back)."""
    (root / "agents").mkdir(parents=True)
    (root / "meta").mkdir()
    agents = {f"a1b2-S{n}": agent_record(f"a1b2-S{n}") for n in range(3)}
    for agent_id, record in agents.items():
        (root / "agents" / f"{agent_id}.json").write_text(json.dumps(record))
    (root / "agents" / ".tmp-crashed").write_bytes(b'{"half')  # an interrupted old write
    (root / "meta" / "report-key.json").write_text('{"key": "00ff"}')
    (root / "framework.json").write_text('{"framework_id": "f0c2-0001"}')
    (root / LOCK_NAME).write_text("4242\n")
    return agents


def test_an_old_layout_directory_is_imported_once_and_its_files_set_aside(tmp_path):
    agents = old_layout(tmp_path)

    store = open_store(str(tmp_path))

    assert store.load_agents() == agents
    assert store.get_meta("report-key") == {"key": "00ff"}
    assert store.get_framework_id() == "f0c2-0001"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(DATABASE_NAME)) == [
        LOCK_NAME,
        MIGRATED_NAME,
    ]
    aside = tmp_path / MIGRATED_NAME
    assert sorted(p.name for p in aside.iterdir()) == ["agents", "framework.json", "meta"]
    assert (aside / "agents" / ".tmp-crashed").read_bytes() == b'{"half'
    store.put_agent("a1b2-S0", {"newer": True})
    assert open_store(str(tmp_path)).load_agents()["a1b2-S0"] == {"newer": True}


OLD_LAYOUT = Path(__file__).with_name("old_file_layout")


def test_a_state_directory_written_by_the_previous_version_is_imported_whole(tmp_path):
    """`old_file_layout/` is the state directory a `calico-dcos local --agents 2
    --public-agents 1` run of the previous version (commit 727d49f) left behind: three
    converged agents, the report key (of that throwaway run) and the framework ID."""
    shutil.copytree(OLD_LAYOUT, tmp_path / "state")
    files = {p.relative_to(OLD_LAYOUT): p.read_bytes() for p in OLD_LAYOUT.rglob("*.json")}

    store = open_store(str(tmp_path / "state"))

    agents = {p.stem: json.loads(data) for p, data in files.items() if p.parts[0] == "agents"}
    assert len(agents) == 3 and store.load_agents() == agents
    assert store.get_meta("report-key") == json.loads(files[Path("meta/report-key.json")])
    assert store.get_framework_id() == json.loads(files[Path("framework.json")])["framework_id"]
    aside = tmp_path / "state" / MIGRATED_NAME
    assert {p: (aside / p).read_bytes() for p in files} == files  # kept as they were


def test_the_migration_says_in_the_log_what_it_imported_and_where_the_files_went(tmp_path, caplog):
    shutil.copytree(OLD_LAYOUT, tmp_path / "state")

    with caplog.at_level(logging.INFO, logger="calico_dcos.store"):
        first = open_store(str(tmp_path / "state"))
        first.close()
        second = open_store(str(tmp_path / "state"))  # once only
        second.close()

    [line] = [r for r in caplog.records if r.name == "calico_dcos.store"]
    assert first.migrated == line.getMessage() and second.migrated == ""  # local prints it
    assert line.levelno == logging.WARNING
    message = line.getMessage()
    assert "3 agent records, 1 meta documents, the framework ID" in message
    assert str(tmp_path / "state" / MIGRATED_NAME) in message


def test_rolling_back_restores_the_earlier_versions_files_as_they_were(tmp_path):
    """README's roll-back: with no scheduler running, move the files back out of
    migrated-file-layout/ and remove state.sqlite3*: the directory holds what the earlier
    version wrote, byte for byte (it reads nothing else: its store globbed agents/*.json and
    read framework.json, commit f62ad17), and a later upgrade imports it again."""
    state = tmp_path / "state"
    shutil.copytree(OLD_LAYOUT, state)
    before = {p.relative_to(state): p.read_bytes() for p in state.rglob("*") if p.is_file()}
    store = open_store(str(state))
    store.put_agent("08da6f65-439e-4763-b2ab-0ecc454b3a74-S9", agent_record("x-S9"))
    store.close()

    aside = state / MIGRATED_NAME
    for entry in list(aside.iterdir()):
        entry.rename(state / entry.name)
    aside.rmdir()
    for database_file in state.glob(f"{DATABASE_NAME}*"):
        database_file.unlink()

    after = {p.relative_to(state): p.read_bytes() for p in state.rglob("*") if p.is_file()}
    assert after == before  # what was written after the upgrade (S9) is not in it
    assert len(open_store(str(state)).load_agents()) == 3


def test_after_a_downgrade_every_leftover_of_the_old_layout_is_named_at_once(tmp_path):
    """An earlier version ran on the directory after the import (a downgrade) and wrote its
    files again; the upgraded one refuses once, naming all of them and both ways out."""
    agents = old_layout(tmp_path)
    open_store(str(tmp_path)).close()
    for name in ("agents", "meta", "framework.json"):  # what the earlier version writes
        source = tmp_path / MIGRATED_NAME / name
        copy = shutil.copytree if source.is_dir() else shutil.copyfile
        copy(source, tmp_path / name)

    with pytest.raises(StoreError) as raised:
        open_store(str(tmp_path))

    message = str(raised.value)
    for name in ("agents", "meta", "framework.json"):
        assert str(tmp_path / name) in message
    assert f"remove {tmp_path / DATABASE_NAME}" in message
    # The second way out: the earlier version's files are imported again.
    for database_file in tmp_path.glob(f"{DATABASE_NAME}*"):
        database_file.unlink()
    shutil.rmtree(tmp_path / MIGRATED_NAME)
    assert open_store(str(tmp_path)).load_agents() == agents


def test_an_import_refuses_before_anything_when_an_earlier_imports_files_are_in_the_way(
    tmp_path,
):
    old_layout(tmp_path)
    (tmp_path / MIGRATED_NAME / "agents").mkdir(parents=True)

    with pytest.raises(StoreError, match="move .* out of the directory"):
        open_store(str(tmp_path))

    assert not list(tmp_path.glob(f"{DATABASE_NAME}*")) and (tmp_path / "agents").is_dir()


def test_the_database_and_its_log_are_the_owners_alone(tmp_path):
    """They hold the report key (README, security), as the old layout's 0600 files did;
    whatever the umask (the tests' 022 would give 0644)."""
    store = open_store(str(tmp_path))
    store.put_meta("report-key", {"key": "00ff"})

    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.glob(f"{DATABASE_NAME}*")}

    suffixes = ("", "-wal", "-shm")
    assert modes == {f"{DATABASE_NAME}{suffix}": 0o600 for suffix in suffixes}


def test_a_migration_interrupted_after_its_commit_only_finishes_moving_the_files(tmp_path):
    """The crash between the import's commit and the renames: the next open must not import
    the old files again (they may be older than what was written since)."""
    agents = old_layout(tmp_path)
    open_store(str(tmp_path)).close()
    aside = tmp_path / MIGRATED_NAME
    (aside / "meta").rename(tmp_path / "meta")  # as if the crash came before this rename
    (tmp_path / "meta" / "report-key.json").write_text('{"key": "changed behind our back"}')

    store = open_store(str(tmp_path))

    assert store.get_meta("report-key") == {"key": "00ff"}
    assert store.load_agents() == agents
    assert not (tmp_path / "meta").exists() and (aside / "meta").is_dir()


def test_a_corrupt_old_file_stops_the_migration_naming_it_and_changes_nothing(tmp_path):
    old_layout(tmp_path)
    broken = tmp_path / "agents" / "a1b2-S1.json"
    broken.write_bytes(b'{"agent_id": "a1b2-S1", "ste')

    with pytest.raises(StateCorrupt) as raised:
        open_store(str(tmp_path))

    assert str(broken) in str(raised.value)
    assert not (tmp_path / MIGRATED_NAME).exists() and broken.exists()
    assert not list(tmp_path.glob(f"{DATABASE_NAME}*"))  # nothing created before the check
    broken.write_text(json.dumps(agent_record("a1b2-S1")))  # the operator repairs it
    assert sorted(open_store(str(tmp_path)).load_agents()) == ["a1b2-S0", "a1b2-S1", "a1b2-S2"]


def test_no_migration_while_a_scheduler_holds_the_old_layouts_lock(tmp_path):
    """A scheduler of the earlier version still writing the files (here: this test process
    holding its flock): importing them now would miss its later writes, so an open in
    another process refuses, naming the holder from the lock file."""
    old_layout(tmp_path)
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        child = subprocess.run(
            [sys.executable, "-c", OPEN_STORE, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        os.close(fd)

    assert child.returncode == 3, child.stderr
    assert "held by pid 4242: a scheduler of that version still runs on it" in child.stdout
    assert (tmp_path / "agents").is_dir() and not (tmp_path / MIGRATED_NAME).exists()
    assert not list(tmp_path.glob(f"{DATABASE_NAME}*"))  # no empty database left behind
    assert sorted(open_store(str(tmp_path)).load_agents()) == ["a1b2-S0", "a1b2-S1", "a1b2-S2"]


def test_run_sends_to_service_state_only_errors_about_the_states_address(tmp_path, capsys):
    """`calico-dcos run`'s start: an earlier version's scheduler holding the old layout's
    lock (this test, on its own descriptor: flock(2) locks are per open file) is not a
    wrong service.state; a directory that cannot be made is."""
    from calico_dcos.commands.run import start_or_exit
    from calico_dcos.options import load_options

    old_layout(tmp_path / "state")
    fd = os.open(tmp_path / "state" / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        options = load_options(None, {"CALICO_SERVICE_STATE": str(tmp_path / "state")})
        with pytest.raises(SystemExit):
            start_or_exit(options, host="127.0.0.1", port=0)
    finally:
        os.close(fd)
    (tmp_path / "file").write_text("")
    options = load_options(None, {"CALICO_SERVICE_STATE": str(tmp_path / "file" / "state")})
    with pytest.raises(SystemExit):
        start_or_exit(options, host="127.0.0.1", port=0)

    held, unmakeable = capsys.readouterr().err.strip().splitlines()
    assert held.endswith("stop it, and this one will import its state once"), held
    assert "cannot create the state directory" in unmakeable
    assert f"check service.state ({tmp_path / 'file' / 'state'})" in unmakeable
    assert not list((tmp_path / "state").glob(f"{DATABASE_NAME}*"))


OPEN_STORE = """
import sys
from calico_dcos.store import StoreError, open_store
try:
    open_store(sys.argv[1])
except StoreError as exc:
    print(exc)
    sys.exit(3)
"""
