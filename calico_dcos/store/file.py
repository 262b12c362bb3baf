"""The embedded store: one SQLite database in a local directory, for a single scheduler machine.

    <dir>/state.sqlite3          the database (tables below), journal_mode=WAL, mode 0600
    <dir>/state.sqlite3-wal      its write-ahead log, and state.sqlite3-shm its WAL index
                                 (SQLite's own files: never copy the database without them
                                 while a scheduler runs; `sqlite3 state.sqlite3 .backup X` does)
    <dir>/leader.lock            held with flock(2) by the scheduler that acts

    agents(agent_id TEXT UNIQUE, record BLOB)   one agent's record, compact JSON
    meta(key TEXT UNIQUE, document BLOB)        small documents (plan flags, uninstall, report key)
    framework(id = 0, document BLOB)            {"framework_id": "…"}
    migrations(name TEXT UNIQUE, at REAL)       "file-layout": the old layout's one-time import

Why SQLite (the standard library's `sqlite3`): the previous layout wrote every record as its
own temporary file, fsynced, renamed over the old one, and fsynced its directory (with one
syncfs(2) per group): at 1,000 agents that create-and-rename cost ~6.6 s of the scheduler's
14.3 s of CPU, 5.2 s of it in the kernel. A group (`put_many`) is now one SQLite transaction:
its records are appended to the write-ahead log and the commit syncs the log once.

Guarantees, and where SQLite states them:
- A group is durable when `put_many` returns: "With synchronous=FULL in WAL mode, an
  additional sync operation of the WAL file happens after each transaction commit. The extra
  WAL sync following each transaction helps ensure that transactions are durable across a
  power loss" (https://www.sqlite.org/pragma.html#pragma_synchronous); "Writers sync the WAL
  on every transaction commit if PRAGMA synchronous is set to FULL"
  (https://www.sqlite.org/wal.html, "Performance Considerations"). A newly created WAL file's
  directory entry is synced by SQLite too (sqlite/sqlite src/os_unix.c `unixOpen`: a new WAL
  or journal opens its directory, which "the first time unixSync() is called … will be
  fsync()ed"); the database file's own directory entry is synced here once, when it is made.
- A crash at any point leaves the old or the new version of each record, never half: a
  transaction is atomic ("A COMMIT does not work by rewriting the database file … the
  original content is preserved in the database file and the changes are appended into a
  separate WAL file", wal.html "How WAL Works"; a torn, uncommitted tail of the log is
  ignored on recovery because each frame carries a checksum, https://www.sqlite.org/fileformat2.html#walformat).
  A group is all or nothing, which is more than the old layout gave.
- Two schedulers on one directory: the leader lock stays an flock on `leader.lock`, released
  by the kernel when its holder dies (flock(2)). SQLite's own locks only order writers.

An existing directory in the OLD layout (`agents/<id>.json`, `meta/<key>.json`,
`framework.json`, written by versions before this one) is migrated when the store is opened,
once and losing nothing: every old file is read and parsed first (a corrupt one stops the
open with `StateCorrupt` naming that file, and nothing is changed), then all are inserted
in ONE transaction that also records the row `migrations("file-layout")`; only after that
commit are `agents/`, `meta/` and `framework.json` renamed into `<dir>/migrated-file-layout/`
and the directory fsynced. A crash before the commit leaves the old layout as it was (the next
open imports it again); a crash after it finds the marker and only finishes the renames. What an
operator finds afterwards: `state.sqlite3` holding the state, and `migrated-file-layout/`
holding the old files untouched, for reference and roll-back (README; an earlier version
started on this directory would not read the database; `wipe()` removes that folder); the
log says so once (a WARNING of `calico_dcos.store`, with the counts). The migration runs only
while `leader.lock` is free (taken for the migration and released): a scheduler of an earlier
version still running on the directory keeps writing the old files, so the open refuses with
a `StoreError` saying so instead of importing a state that is still changing. Every check
that can refuse an import (that lock, a corrupt old file, an earlier import's files in the
way) comes before the database is created, so a refusal leaves the directory as it was. Old
files found beside a database that imported them already (an earlier version ran here after
the upgrade) are all named in one error, with both ways out.

Counters (the bench's figures): `writes` records written, `bytes_written` their JSON bytes
(SQLite writes whole 4 KiB pages to its log, two to three times that), `commits` committed
transactions, each one fsync of the log; SQLite's automatic checkpoints, every 1,000 pages of
log (https://www.sqlite.org/wal.html#automatic_checkpoint), sync the log and the database
once more each and are not counted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from calico_dcos.store import (
    MAX_META_BYTES,
    MAX_RECORD_BYTES,
    StateCorrupt,
    StoreAddressError,
    StoreError,
    check_name,
    check_size,
    encode_document,
    parse_document,
)

LOG = logging.getLogger("calico_dcos.store")

DATABASE_NAME = "state.sqlite3"
LOCK_NAME = "leader.lock"
MIGRATED_NAME = "migrated-file-layout"  # where the old layout's files go once imported
OLD_LAYOUT = ("agents", "meta", "framework.json")  # before state.sqlite3
SCHEMA_VERSION = 1  # PRAGMA user_version
BUSY_TIMEOUT_SECONDS = 30.0  # another connection's write transaction (short) or checkpoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (agent_id TEXT NOT NULL UNIQUE, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL UNIQUE, document BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS framework (id INTEGER PRIMARY KEY CHECK (id = 0),
                                      document BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS migrations (name TEXT NOT NULL UNIQUE, at REAL NOT NULL);
"""
# An update keeps the row (and its rowid), so only the table's leaf page changes, not the
# index on agent_id as INSERT OR REPLACE's delete-and-insert would.
UPSERT = {
    "agent": "INSERT INTO agents (agent_id, record) VALUES (?, ?) "
    "ON CONFLICT (agent_id) DO UPDATE SET record = excluded.record",
    "meta": "INSERT INTO meta (key, document) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET document = excluded.document",
    "framework_id": "INSERT INTO framework (id, document) VALUES (0, ?) "
    "ON CONFLICT (id) DO UPDATE SET document = excluded.document",
}
WIPE = tuple(f"DELETE FROM {t}" for t in ("agents", "meta", "framework", "migrations"))  # noqa: S608
# SQLite's primary result codes for a damaged file (https://www.sqlite.org/rescode.html).
CORRUPT_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


class FileStore:
    """StateStore on a local directory (see the module docstring for the layout).

    Safe to share between threads (the scheduler's event thread, its group committer, the
    API): one connection, used under a lock. Several stores, in one process or several, may
    open the same directory; `acquire_leadership` decides which one acts.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.migrated = ""  # what the open imported of the old layout, said once
        self.root = Path(path)
        self.database = self.root / DATABASE_NAME
        self.writes = 0
        self.bytes_written = 0
        self.commits = 0  # committed transactions, one fsync of the WAL each (the bench's figure)
        self._lock_fd: int | None = None
        self._mutex = threading.Lock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreAddressError(
                f"cannot create the state directory {self.root}: {exc}"
            ) from exc
        if any((self.root / name).exists() for name in OLD_LAYOUT):
            self._db = self._migrate_old_layout()
        else:
            self._db = self._connect()

    # -- StateStore ------------------------------------------------------------------------

    def get_framework_id(self) -> str | None:
        row = self._query_one("SELECT document FROM framework WHERE id = 0", ())
        document = None if row is None else self._parse("framework", row[0])
        return None if document is None else document.get("framework_id")

    def set_framework_id(self, framework_id: str | None) -> None:
        self.put_many([("framework_id", "", {"framework_id": framework_id})])

    def load_agents(self) -> dict[str, dict]:
        with self._using():
            rows = self._db.execute("SELECT agent_id, record FROM agents ORDER BY agent_id")
            return {agent_id: self._parse(f"agent {agent_id}", data) for agent_id, data in rows}

    def put_agent(self, agent_id: str, record: dict) -> None:
        self.put_many([("agent", agent_id, record)])

    def delete_agent(self, agent_id: str) -> None:
        self.put_many([("agent", agent_id, None)])

    def get_meta(self, key: str) -> dict | None:
        row = self._query_one("SELECT document FROM meta WHERE key = ?", (self._key(key),))
        return None if row is None else self._parse(f"meta {key}", row[0])

    def put_meta(self, key: str, value: dict) -> None:
        self.put_many([("meta", key, value)])

    def put_many(self, writes: Sequence[tuple[str, str, dict | bytes | None]]) -> None:
        """Write a group of records in one transaction, durable when this returns.

        `writes`: ("agent", agent ID, record or None to delete it), ("meta", key, document)
        or ("framework_id", "", {"framework_id": …}); a record may come encoded already
        (`encode_document`'s bytes). Every name and size is checked before anything is
        written (StoreError, RecordTooLarge); the group is then all or nothing.
        """
        rows: dict[str, list[tuple]] = {"agent": [], "meta": [], "framework_id": []}
        deleted: list[tuple[str]] = []
        size = 0
        for kind, name, document in writes:
            if kind == "agent" and document is None:
                deleted.append((self._agent(name),))
                continue
            if kind == "agent":
                where, key, limit = f"agent {name}", self._agent(name), MAX_RECORD_BYTES
            elif kind == "meta":
                where, key, limit = f"meta {name}", self._key(name), MAX_META_BYTES
            elif kind == "framework_id":
                where, key, limit = "framework ID", None, MAX_RECORD_BYTES
            else:
                raise StoreError(f"unknown kind of record {kind!r}")
            data = check_size(f"{self.database}: {where}", encode_document(document), limit)
            rows[kind].append((data,) if key is None else (key, data))
            size += len(data)
        with self._using(), self._transaction():
            for kind, values in rows.items():
                if values:
                    self._db.executemany(UPSERT[kind], values)
            if deleted:
                self._db.executemany("DELETE FROM agents WHERE agent_id = ?", deleted)
        self.commits += 1
        self.writes += sum(len(values) for values in rows.values())
        self.bytes_written += size

    def wipe(self) -> None:
        """Remove all state under the directory; a held leader lock stays held.

        Every row goes in one transaction; VACUUM then rewrites the database without the
        freed pages and a TRUNCATE checkpoint empties the log, so that no deleted record
        (the report key among them) stays readable in either file
        (https://www.sqlite.org/lang_vacuum.html, https://www.sqlite.org/pragma.html#pragma_wal_checkpoint).
        Anything else in the directory but the database's files and `leader.lock` (the
        migrated old layout) is removed.
        """
        with self._using():
            with self._transaction():
                for statement in WIPE:
                    self._db.execute(statement)
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        keep = {DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", LOCK_NAME}
        for entry in self.root.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        _fsync_directory(self.root)

    def acquire_leadership(self, on_lost: Callable[[], None]) -> None:
        """Block until this process holds `leader.lock`.

        An flock is held until released or until the process dies, so `on_lost` is never
        called: a local lock cannot be lost while its holder lives.
        """
        self._take_lock(blocking=True)

    def try_acquire_leadership(self, on_lost: Callable[[], None]) -> bool:
        """`acquire_leadership` without waiting: False at once when another store (this
        process's or another's) holds `leader.lock`."""
        return self._take_lock(blocking=False)

    def leader_holder(self) -> str | None:
        """Who holds `leader.lock`, as "pid N on this host" (the pid its holder wrote into
        it); None when nobody does. Asked with a shared lock taken and given back at once,
        on a descriptor of its own: flock(2) locks belong to the open file description, so
        closing it leaves every other lock of this process as it was."""
        fd = self._open_lock()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _lock_pid(fd)
                return f"{'a process' if pid is None else f'pid {pid}'} on this host"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _take_lock(self, blocking: bool) -> bool:
        if self._lock_fd is not None:
            return True
        fd = self._open_lock()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return True

    def release_leadership(self) -> None:
        if self._lock_fd is None:
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None

    def close(self) -> None:
        """Release the lock and close the database (the last connection to close folds the
        log into the database and removes it, https://www.sqlite.org/wal.html)."""
        self.release_leadership()
        with self._mutex:
            self._db.close()

    # -- the database ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open (or create) the database: WAL, synchronous=FULL, the schema."""
        existed = self.database.exists()
        if not existed:
            self._create_database_file()
        elif not os.access(self.database, os.R_OK | os.W_OK, effective_ids=True):
            # What SQLite would only call "unable to open database file". A probe must not
            # open and close the file: closing any descriptor of it drops every POSIX lock
            # this process holds on it, another connection's included ("Posix advisory
            # locks canceled by a separate thread doing close()", https://www.sqlite.org/howtocorrupt.html).
            raise StateCorrupt(
                str(self.database),
                f"{os.strerror(errno.EACCES)}: the scheduler must be able to read and write it",
            )
        try:
            db = sqlite3.connect(
                self.database,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,  # transactions are this class's BEGIN … COMMIT
                check_same_thread=False,  # shared between threads under self._mutex
            )
        except sqlite3.Error as exc:
            raise StoreAddressError(
                f"cannot open the state database {self.database}: {exc}"
            ) from exc
        try:
            with self._errors():
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    raise StoreAddressError(
                        f"{self.database}: SQLite refused its write-ahead log (journal mode "
                        f"{mode!r}); the state directory must be on a local file system"
                    )
                db.execute("PRAGMA synchronous=FULL")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.database} was written by a newer calico-dcos (schema "
                        f"{version}, this one reads {SCHEMA_VERSION}); run that version"
                    )
                if version < SCHEMA_VERSION:
                    db.executescript(
                        f"BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                    )
        except BaseException:
            db.close()
            raise
        if not existed:
            _fsync_directory(self.root)  # the database file's own name
        return db

    def _create_database_file(self) -> None:
        """An empty `state.sqlite3` (SQLite takes it for a new database), owner only, as the
        old layout's files (mkstemp's 0600) were: the report key is in it. SQLite gives its
        log and the log's index the database file's permissions (sqlite/sqlite
        src/os_unix.c `findCreateFileMode`, `unixOpenSharedMemory`). Made under another name
        and linked into place, so that no descriptor of the database is ever closed beside
        a connection (see `_connect`), and a store opening it at the same time either finds
        it whole or makes its own link fail."""
        temporary = self.root / f".{DATABASE_NAME}-{os.getpid()}-{threading.get_ident()}"
        try:
            os.close(os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600))
            try:
                os.link(temporary, self.database)
            except FileExistsError:
                pass  # another store made it just now
            finally:
                os.unlink(temporary)
        except OSError as exc:
            raise StoreAddressError(f"cannot create the database {self.database}: {exc}") from exc

    def _migrate_old_layout(self) -> sqlite3.Connection:
        """Import `agents/`, `meta/`, `framework.json` once, then rename them aside (see the
        module docstring); the open connection. Runs while holding `leader.lock`, taken
        without waiting. Every check that can refuse (the lock, a corrupt old file, leftovers
        beside an import already made) comes before a new database is created, so a refusal
        leaves the directory as it was."""
        fd = self._open_lock()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                raise StoreError(
                    f"{self.root} holds state in the file layout of an earlier calico-dcos "
                    f"and {self.root / LOCK_NAME} is held{holder}: a scheduler of that version "
                    "still runs on it; stop it, and this one will import its state once"
                ) from None
            old = None
            if not self.database.exists():
                aside = self.root / MIGRATED_NAME
                taken = [name for name in OLD_LAYOUT if (aside / name).exists()]
                if taken and any((self.root / name).exists() for name in taken):
                    raise StoreError(
                        f"{self.root} holds state in the file layout of an earlier calico-dcos "
                        f"to import, but {aside} holds files of an earlier import "
                        f"({', '.join(taken)}) and there is no {self.database}: move {aside} "
                        "out of the directory, and this one will import the old files once"
                    )
                old = _read_old_layout(self.root)
            db = self._connect()
            try:
                self._db = db
                self._import_old_layout(old)
            except BaseException:
                db.close()
                raise
            return db
        finally:
            os.close(fd)  # releases the flock

    def _import_old_layout(
        self, old: tuple[bytes | None, dict[str, bytes], dict[str, bytes]] | None
    ) -> None:
        """The migration's transaction (unless its marker is in the database: a crash came
        after it) and the renames; `old`: the old layout already read, or None."""
        aside = self.root / MIGRATED_NAME
        done = self._query_one("SELECT at FROM migrations WHERE name = 'file-layout'", ())
        if done is None:
            framework, agents, meta = _read_old_layout(self.root) if old is None else old
            with self._using(), self._transaction():
                if framework is not None:
                    self._db.execute(UPSERT["framework_id"], (framework,))
                self._db.executemany(UPSERT["agent"], sorted(agents.items()))
                self._db.executemany(UPSERT["meta"], sorted(meta.items()))
                self._db.execute(
                    "INSERT INTO migrations (name, at) VALUES ('file-layout', ?)",
                    (time.time(),),
                )
        else:
            leftovers = [
                name
                for name in OLD_LAYOUT
                if (self.root / name).exists() and (aside / name).exists()
            ]
            if leftovers:
                raise StoreError(_leftovers_message(self.root, self.database, leftovers, done[0]))
        aside.mkdir(exist_ok=True)
        for name in OLD_LAYOUT:
            if (self.root / name).exists():
                os.rename(self.root / name, aside / name)
        _fsync_directory(aside)
        _fsync_directory(self.root)
        if done is None:
            self.migrated = (
                f"imported the state of an earlier calico-dcos's file layout in {self.root} "
                f"into {self.database}: {len(agents)} agent records, {len(meta)} meta "
                f"documents, {'the framework ID' if framework is not None else 'no framework ID'}"
                f'; its files are kept as they were in {aside} (README: "A state directory '
                'of an earlier version" says how to roll back)'
            )
            LOG.warning("%s", self.migrated)

    def _query_one(self, sql: str, parameters: tuple) -> tuple | None:
        with self._using():
            return self._db.execute(sql, parameters).fetchone()

    @contextlib.contextmanager
    def _using(self) -> Iterator[None]:
        """The connection, for this thread alone, with SQLite's errors as the store's."""
        with self._mutex, self._errors():
            yield

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT (takes the write lock at once: no upgrade deadlock with
        another connection, https://www.sqlite.org/lang_transaction.html), or ROLLBACK."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """sqlite3's exceptions as StateCorrupt (a damaged file) or StoreError (the rest)."""
        try:
            yield
        except sqlite3.ProgrammingError as exc:
            raise StoreError(f"the state database {self.database} is closed: {exc}") from exc
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorname", "")
            if code.startswith(CORRUPT_CODES):
                raise StateCorrupt(
                    str(self.database),
                    f"{exc} ({code}); restore it from a backup, or move {self.root} aside "
                    "to start with no state (the scheduler then finds its framework still "
                    "running and stops, naming it; service.existing_framework: replace takes "
                    "it over)",
                ) from exc
            hint = _write_failure_hint(code, self.database, self.root)
            raise StoreError(f"the state database {self.database}: {exc} ({code}){hint}") from exc

    def _parse(self, what: str, data: bytes) -> dict:
        """The JSON object in a row, or StateCorrupt naming the database and the row."""
        try:
            return parse_document(f"{self.database} ({what})", bytes(data))
        except StateCorrupt as exc:
            table, _, key = what.partition(" ")
            fix = _row_fix(self.database, table, key)
            raise StateCorrupt(exc.where, f"{exc.why}; {fix}") from exc.__cause__

    def _agent(self, agent_id: str) -> str:
        return check_name("agent ID", agent_id)

    def _key(self, key: str) -> str:
        return check_name("meta key", key)

    def _open_lock(self) -> int:
        return os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)


def _read_old_layout(root: Path) -> tuple[bytes | None, dict[str, bytes], dict[str, bytes]]:
    """The old layout's framework document, agent records and meta documents, each parsed
    (StateCorrupt naming the file) and returned as the bytes to store. Leftover temporary
    files of an interrupted old write (`.tmp-*`) are not records and are skipped, as the old
    store skipped them."""

    def read(path: Path) -> bytes:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StateCorrupt(str(path), exc.strerror or str(exc)) from exc
        return encode_document(parse_document(str(path), data))

    framework_path = root / "framework.json"
    framework = read(framework_path) if framework_path.exists() else None
    agents, meta = {}, {}
    folders = ((root / "agents", agents, "agent ID"), (root / "meta", meta, "meta key"))
    for folder, found, kind in folders:
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            found[check_name(kind, path.stem)] = read(path)
    return framework, agents, meta


def _write_failure_hint(code: str, database: Path, root: Path) -> str:
    """What an operator does about the SQLite errors a host causes, as "; …" (or "" for the
    others), from the error's (extended) result code name, `sqlite3.Error.sqlite_errorname`.

    What each means, after https://www.sqlite.org/rescode.html: SQLITE_FULL (13), a write
    could not complete for a full disk (or a temporary file's, or `max_page_count`
    reached); SQLITE_READONLY (8) and its extended codes, the connection has no write
    permission for what it alters (a read-only file, directory or mount); SQLITE_IOERR (10)
    and its extended codes (SQLITE_IOERR_WRITE, _FSYNC, …), the operating system reported an
    I/O error; SQLITE_CANTOPEN (14), SQLite could not open a file (the database, its -wal
    or -shm). The original message and code stay in the error, before the hint."""
    files = f"{database}, {database.name}-wal, {database.name}-shm and {root} itself"
    if code.startswith("SQLITE_FULL"):
        return (
            f"; the file system holding {root} is full: free space there (df {root}), then "
            "restart the scheduler (it resumes from the last group stored)"
        )
    if code.startswith("SQLITE_READONLY"):
        return (
            f"; SQLite may not write there: check that the file system holding {root} is "
            f"mounted read-write (findmnt -T {root}) and that the scheduler's user may write "
            f"{files}, then restart the scheduler"
        )
    if code.startswith("SQLITE_IOERR"):
        return (
            f"; the operating system failed to read or write {database}: check the disk and "
            f"the mount of {root} (the kernel log: dmesg), then restart the scheduler; if "
            "it then reports the database damaged, restore it from a backup"
        )
    if code.startswith("SQLITE_CANTOPEN"):
        return f"; check that the scheduler's user may read and write {files}"
    return ""


def _row_fix(database: Path, table: str, key: str) -> str:
    """How an operator clears one unreadable row (the scheduler never replaces it itself)."""
    if table == "agent":
        # A sentence for the operator, never executed.
        command = f"DELETE FROM agents WHERE agent_id = '{key}'"  # noqa: S608
        return (
            f'to forget that agent, stop the scheduler and run sqlite3 {database} "{command}" '
            "(its running tasks are then adopted when they match the options, killed otherwise)"
        )
    if table == "meta":
        return f"stop the scheduler and repair the row key = '{key}' of table meta in {database}"
    return f"stop the scheduler and repair the row of table framework in {database}"


def _leftovers_message(root: Path, database: Path, names: list[str], at: float) -> str:
    """Every old-layout entry found beside an import already made, in one sentence: an
    earlier calico-dcos ran on the directory after the upgrade (a downgrade), or someone
    copied the files back."""
    paths = ", ".join(str(root / name) for name in names)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    aside = root / MIGRATED_NAME
    return (
        f"{paths} {'is' if len(names) == 1 else 'are'} in the old file layout, but that layout "
        f"was imported into {database} already ({when}) and {aside} holds what was imported: "
        f"remove {paths} to keep the database's state; or, to keep theirs (an earlier "
        f"calico-dcos ran here since), stop every scheduler and remove "
        f"{database}, {database}-wal, {database}-shm and {aside}, and they are imported again"
    )


def _lock_holder(fd: int) -> str:
    """' by pid N' from the lock file's content, when it names one."""
    pid = _lock_pid(fd)
    return "" if pid is None else f" by pid {pid}"


def _lock_pid(fd: int) -> int | None:
    """The pid the lock's holder wrote into the lock file, if it did."""
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None


def _fsync_directory(directory: Path) -> None:
    """Make a new name, rename or unlink in `directory` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
