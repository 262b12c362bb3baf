"""The embedded store: one directory on local disk, for a single scheduler machine.

    <dir>/framework.json         {"framework_id": "…"}
    <dir>/agents/<agent_id>.json one agent's record
    <dir>/meta/<key>.json        small documents (plan flags, uninstall)
    <dir>/leader.lock            held with flock(2) by the scheduler that acts

Every write goes to a temporary file that is fsynced, renamed over the old file, and then the
directory is fsynced, so that a crash at any point leaves either the old or the new record,
never half of one. A group of records (`put_many`, the scheduler's group commit) writes every
temporary file first, makes them all durable with one syncfs(2) of the store's file system
("like sync(), but synchronizes just the filesystem containing file referred to by the open
file descriptor fd", man-pages syncfs.2; since Linux 5.8 it reports writeback errors), then
renames each over its record and fsyncs each directory touched once: one flush and one or
two directory fsyncs for the whole group, and still the old or the new version of each
record after a crash. The leader lock is an flock: the kernel releases it when its holder dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from calico_dcos.store import (
    MAX_META_BYTES,
    MAX_RECORD_BYTES,
    StateCorrupt,
    StoreError,
    check_name,
    check_size,
    encode_document,
    parse_document,
)

TEMP_PREFIX = ".tmp-"
LOCK_NAME = "leader.lock"
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_SYNCFS = getattr(_LIBC, "syncfs", None)  # Linux (glibc 2.14+); elsewhere fsync each file


class FileStore:
    """StateStore on a local directory (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.root = Path(path)
        self.writes = 0
        self.bytes_written = 0
        self.syncs = 0  # fsync(2) calls, files and directories (the benchmark's figure)
        self._lock_fd: int | None = None
        try:
            for sub in ("agents", "meta"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state directory {self.root}: {exc}") from exc

    def get_framework_id(self) -> str | None:
        document = self._read(self.root / "framework.json")
        return None if document is None else document.get("framework_id")

    def set_framework_id(self, framework_id: str | None) -> None:
        self._write(self.root / "framework.json", {"framework_id": framework_id}, MAX_RECORD_BYTES)

    def load_agents(self) -> dict[str, dict]:
        agents = {}
        for path in sorted((self.root / "agents").glob("*.json")):
            record = self._read(path)
            if record is not None:
                agents[path.stem] = record
        return agents

    def put_agent(self, agent_id: str, record: dict) -> None:
        self._write(self._agent_path(agent_id), record, MAX_RECORD_BYTES)

    def delete_agent(self, agent_id: str) -> None:
        self._agent_path(agent_id).unlink(missing_ok=True)
        self._fsync_directory(self.root / "agents")

    def put_many(self, writes: Sequence[tuple[str, str, dict]]) -> None:
        """Write a group of records with one flush (see the module docstring).

        `writes`: ("agent", agent ID, record or None to delete it), ("meta", key, document)
        or ("framework_id", "", {"framework_id": …}); at most one per record. Every name and
        size is checked before anything is written (StoreError, RecordTooLarge).
        """
        deleted = [self._agent_path(name) for kind, name, doc in writes if doc is None]
        planned = [self._planned(kind, name, doc) for kind, name, doc in writes if doc is not None]
        temps: list[tuple[str, Path, int]] = []
        try:
            for path, data in planned:
                fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
                temps.append((temp, path, len(data)))
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    if _SYNCFS is None:
                        handle.flush()
                        os.fsync(handle.fileno())
                        self.syncs += 1
            if _SYNCFS is not None:
                self._syncfs()
            for temp, path, _ in temps:
                os.replace(temp, path)
        except BaseException:
            for temp, _, _ in temps:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
            raise
        for path in deleted:
            path.unlink(missing_ok=True)
        for directory in sorted(
            {path.parent for _, path, _ in temps} | {p.parent for p in deleted}
        ):
            self._fsync_directory(directory)
        self.writes += len(temps)
        self.bytes_written += sum(size for _, _, size in temps)

    def _planned(self, kind: str, name: str, document: dict) -> tuple[Path, bytes]:
        if kind == "agent":
            path, limit = self._agent_path(name), MAX_RECORD_BYTES
        elif kind == "meta":
            path, limit = self._meta_path(name), MAX_META_BYTES
        elif kind == "framework_id":
            path, limit = self.root / "framework.json", MAX_RECORD_BYTES
        else:
            raise StoreError(f"unknown kind of record {kind!r}")
        return path, check_size(str(path), encode_document(document), limit)

    def _syncfs(self) -> None:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _SYNCFS(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs({self.root}): {os.strerror(err)}")
            self.syncs += 1
        finally:
            os.close(fd)

    def get_meta(self, key: str) -> dict | None:
        return self._read(self._meta_path(key))

    def put_meta(self, key: str, value: dict) -> None:
        self._write(self._meta_path(key), value, MAX_META_BYTES)

    def wipe(self) -> None:
        """Remove all state under the directory; a held leader lock stays held."""
        for entry in self.root.iterdir():
            if entry.name == LOCK_NAME and self._lock_fd is not None:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        self._fsync_directory(self.root)
        for sub in ("agents", "meta"):
            (self.root / sub).mkdir(exist_ok=True)

    def acquire_leadership(self, on_lost: Callable[[], None]) -> None:
        """Block until this process holds `leader.lock`.

        An flock is held until released or until the process dies, so `on_lost` is never
        called: a local lock cannot be lost while its holder lives.
        """
        if self._lock_fd is not None:
            return
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def release_leadership(self) -> None:
        if self._lock_fd is None:
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None

    def close(self) -> None:
        self.release_leadership()

    def _agent_path(self, agent_id: str) -> Path:
        return self.root / "agents" / f"{check_name('agent ID', agent_id)}.json"

    def _meta_path(self, key: str) -> Path:
        return self.root / "meta" / f"{check_name('meta key', key)}.json"

    def _read(self, path: Path) -> dict | None:
        """The JSON object in `path`, None if there is no such file."""
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateCorrupt(str(path), exc.strerror or str(exc)) from exc
        return parse_document(str(path), text)

    def _write(self, path: Path, document: dict, limit: int) -> None:
        data = check_size(str(path), encode_document(document), limit)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                self.syncs += 1
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        self._fsync_directory(path.parent)
        self.writes += 1
        self.bytes_written += len(data)

    def _fsync_directory(self, directory: Path) -> None:
        """Make a rename or unlink in `directory` survive a power loss."""
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
            self.syncs += 1
        finally:
            os.close(fd)
