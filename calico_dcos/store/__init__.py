"""Durable state of the framework: its framework ID, each agent's progress, small documents.

A scheduler that is restarted, loses its master or loses ZooKeeper resumes from here, so the
store never guesses: data it cannot read or parse raises `StateCorrupt` naming the znode or
file, and is never replaced silently. Two implementations share one interface:

- `ZooKeeperStore` for `zk://host:port[,host:port]/path` (production, with a leader lock);
- `FileStore` for a local directory: one SQLite database in it (the embedded default of
  `calico-dcos local` and the bench).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from calico_dcos import compact_json

# Mesos agent IDs ("<uuid>-S3") and our meta keys; nothing that could escape a directory
# or a znode path.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# Size bounds, checked before every write (`check_size`), far below ZooKeeper's node limit:
# "jute.maxbuffer … specifies the maximum size of the data that can be stored in a znode. The
# default is 0xfffff, or just under 1M" (ZooKeeper Administrator's Guide, apache/zookeeper
# zookeeper-docs/src/main/resources/markdown/zookeeperAdmin.md; the server's check is in
# zookeeper-jute/src/main/java/org/apache/jute/BinaryInputArchive.java). Every document is
# per agent or of a fixed shape, so no bound grows with the cluster: an agent record is a few
# KiB at most (every field that comes from the network is bounded where it enters:
# api.parse_report, scheduler.bounded_status; the uninstall keeps each host's revert task in
# its agent's record), and a meta document holds a few fields (the uninstall's stage, the
# report key). Before this layout the uninstall kept every host's revert task in its one meta
# document, ~425 bytes a host, and broke ZooKeeper's limit above ~2,350 hosts; such a document
# is still read (reads have no bound) and migrated (core/uninstall.py `legacy_migration`).
MAX_RECORD_BYTES = 64 * 1024  # an agent record, the framework ID
MAX_META_BYTES = 64 * 1024  # a meta document


class StoreError(Exception):
    """The store cannot do what was asked (unreachable, bad URL, bad name)."""


class StoreAddressError(StoreError):
    """The state's address (the `service.state` option) is wrong: a malformed or unreachable
    ZooKeeper URL, a directory that cannot be made or used. Only these errors send the
    operator to that option; the others say what to do in their own words."""


class LeaderLockHeld(StoreError):
    """Another scheduler holds the state's leader lock, and the caller would not wait for it
    (`calico-dcos uninstall`); `holder` says who, as the store knows it ("pid N on host H")."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class RecordTooLarge(StoreError):
    """A record longer than its bound: refused before anything is written."""


class StateCorrupt(StoreError):
    """Stored data exists but cannot be read or parsed; `where` is the znode, or the file
    (with the database row, for the file store); `why` says what is wrong and, where the
    store knows one, how to repair it."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"state at {where} is unreadable or corrupt: {why}")
        self.where = where
        self.why = why


class StateStore(Protocol):
    """What the scheduler needs from durable state; see docs/CONTRACTS.md."""

    writes: int
    bytes_written: int
    # Commits: transactions, one fsync of SQLite's log each (file store), or write requests
    # (ZooKeeper); the benchmark's "records per commit" divides `writes` by it.
    commits: int

    def get_framework_id(self) -> str | None: ...

    def set_framework_id(self, framework_id: str | None) -> None: ...

    def load_agents(self) -> dict[str, dict]: ...

    def put_agent(self, agent_id: str, record: dict) -> None: ...

    def put_many(self, writes: Sequence[tuple[str, str, dict | bytes | None]]) -> None: ...

    def delete_agent(self, agent_id: str) -> None: ...

    def get_meta(self, key: str) -> dict | None: ...

    def put_meta(self, key: str, value: dict) -> None: ...

    def wipe(self) -> None: ...

    def acquire_leadership(self, on_lost: Callable[[], None]) -> None: ...

    def try_acquire_leadership(self, on_lost: Callable[[], None]) -> bool: ...

    def leader_holder(self) -> str | None: ...

    def release_leadership(self) -> None: ...

    def close(self) -> None: ...


def check_name(kind: str, name: str) -> str:
    """Refuse agent IDs and meta keys that are not a single safe path component."""
    if not NAME_PATTERN.match(name):
        raise StoreError(f"invalid {kind} {name!r}: expected letters, digits, '.', '_', '-'")
    return name


def check_size(where: str, data: bytes, limit: int) -> bytes:
    """`data`, or RecordTooLarge naming `where` when it is longer than `limit` bytes."""
    if len(data) > limit:
        raise RecordTooLarge(
            f"{where}: a record of {len(data)} bytes is over the store's bound of {limit} "
            "bytes; nothing was written"
        )
    return data


def encode_document(document: dict | bytes) -> bytes:
    """Compact JSON with sorted keys: records are read by programs, and small values keep
    writes cheap. A document already encoded here (bytes) is returned as it is: the scheduler
    encodes a record when it decides it, since the bytes (~1.7 KB) are a third of the dict's
    size while it waits for its group commit.

    orjson (`OPT_SORT_KEYS`) writes what `json.dumps(separators=(",", ":"), sort_keys=True)`
    wrote, byte for byte, for ASCII text, at a tenth of the CPU (~2 µs for an agent record
    against ~20: pymesos' event thread encodes one per status update). Text beyond ASCII is
    written as UTF-8 where the standard library wrote `\\uXXXX` escapes: the same value for
    any JSON reader (`parse_document`, ZooKeeper's clients), and never longer (a character is
    2-4 bytes of UTF-8 against 6 or 12 escaped), so no document that fit `MAX_RECORD_BYTES`
    grows past it. What orjson refuses (a lone surrogate, which the event stream's fallback
    decoder lets through in a status message; an integer beyond 64 bits; a key that is not
    text) is encoded by the standard library as before. Non-finite floats are the one value
    the two write differently (orjson `null`, the standard library the non-JSON `Infinity`);
    no document holds one: a record's times are the plan's clock plus delays from its
    timings and options, and the options refuse a number that is not finite
    (`options.load_options`)."""
    if isinstance(document, bytes):
        return document
    try:
        # held until its group commit: its own size, not orjson's buffer (`compact_json`)
        return compact_json.dumps(document, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def parse_document(where: str, data: bytes) -> dict:
    """The JSON object in `data`, or StateCorrupt naming `where`."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateCorrupt(where, f"not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise StateCorrupt(where, f"expected a JSON object, found {type(document).__name__}")
    return document


def open_store(url: str, credentials_file: str = "") -> StateStore:
    """The store for the `service.state` option: ZooKeeper for zk://…, else a directory."""
    if url.startswith("zk://"):
        from calico_dcos.store.zk import ZooKeeperStore

        return ZooKeeperStore.from_url(url, credentials_file)
    from calico_dcos.store.file import FileStore

    return FileStore(url)
