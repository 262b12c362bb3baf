"""The production store: ZooKeeper through kazoo, with a leader lock.

    zk://host:port[,host:port]/path[?session_timeout=SECONDS][&connect_timeout=SECONDS]

`session_timeout` (default 10 s) is the session's timeout asked of the server;
`connect_timeout` (default 15 s) how long start-up waits for a first session before it
gives up with `StoreError` (a scheduler started while ZooKeeper is down then exits).

    <root>/framework_id        the framework ID as UTF-8 text
    <root>/agents/<agent_id>   one agent's record (compact JSON, a few hundred bytes)
    <root>/meta/<key>          small documents (plan flags, uninstall)
    <root>/leader              kazoo Lock: the scheduler holding it is the one that acts

One node per agent keeps every value far below ZooKeeper's 1 MiB limit at any cluster size,
and each transition rewrites one small node. The one answer that grows is the list of
`<root>/agents`' children that `load_agents` asks for (~49 bytes an agent: ~2.4 MB at 50,000),
which the server sends whole and kazoo reads whole (tested at 50,000 with ZooKeeper 3.8); a
Java client with its default 1 MB `jute.maxbuffer` (e.g. `zkCli.sh ls`) cannot read it.

With credentials (`user:password` in a file), the client authenticates with the digest
scheme and every node it creates carries an ACL granting that user everything and nobody
else anything.

kazoo logs every request it sends at debug level, with its fields: the `Auth` request holds
the digest credentials as `user:password`, each create carries the ACL (the user and the
password's SHA-1), and the data is the record. Its client and connection log through the
logger given to `KazooClient` (kazoo/client.py passes `logger` on to
kazoo/protocol/connection.py), so the store gives it `KAZOO_LOG`, whose `RedactKazoo`
filter replaces those fields (and any other occurrence of the credentials) at every level.

Leadership is tied to the ZooKeeper session. When the connection is SUSPENDED the session
may still be alive; once it stays suspended past `lost_grace` (well inside the session
timeout, so before another scheduler can take the lock) or the session is LOST, `on_lost`
is called and the scheduler must stop acting until `acquire_leadership` returns again.
From then on the store refuses writes, and every write of a leader is a transaction that
first checks the leader's lock node, so a write delayed past the session's end cannot
overwrite what the next leader stored (fencing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult
from kazoo.recipe.lock import Lock
from kazoo.retry import KazooRetry
from kazoo.security import make_digest_acl

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

# ZooKeeper's default jute.maxbuffer is 1 MiB; a larger request makes the server drop the
# connection, which a client would retry forever. Every record has a bound far below it
# (store/__init__.py), checked before the write.
LEADER = "leader"
MAX_MULTI_BYTES = 512 * 1024  # one transaction's records, well inside jute.maxbuffer
KAZOO_LOG = logging.getLogger("calico_dcos.store.kazoo")
REDACTED = "***"
SECRET_FIELDS = ("auth", "acl", "data")  # of kazoo's request tuples (protocol/serialization.py)


class RedactKazoo(logging.Filter):
    """Rewrites kazoo's log records so that no credential and no stored data is in them.

    A request or response tuple in the arguments keeps its type and path, and its `auth`,
    `acl` and `data` fields become `***`; any remaining occurrence of `secrets` (the digest
    credential, the password, the ACL's hashed id) in the formatted message is replaced.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(arg) for arg in record.args)
        message = record.getMessage()
        for secret in sorted(self.secrets, key=len, reverse=True):
            message = message.replace(secret, REDACTED)
        record.msg, record.args = message, None
        return True


def _redact_value(value: object) -> object:
    """kazoo's request/response namedtuples lose their secret fields; bytes their content."""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    fields = getattr(value, "_fields", None)
    if isinstance(value, tuple) and fields:
        shown = ", ".join(
            f"{name}={REDACTED if name in SECRET_FIELDS else repr(getattr(value, name))}"
            for name in fields
        )
        return f"{type(value).__name__}({shown})"
    if isinstance(value, tuple):
        return tuple(_redact_value(item) for item in value)
    return value


REDACT_KAZOO = RedactKazoo()
KAZOO_LOG.addFilter(REDACT_KAZOO)


def read_credentials(credentials_file: str) -> tuple[str, str] | None:
    """(user, password) from a file holding `user:password`, None without a file."""
    if not credentials_file:
        return None
    from calico_dcos.options import unreadable_secret

    try:
        text = Path(credentials_file).read_text().strip()
    except OSError as exc:  # the words never show `user:password` given where its file belongs
        raise StoreError(
            f"service.zk_credentials_file: {unreadable_secret(credentials_file, exc)}"
        ) from None
    user, colon, password = text.partition(":")
    if not (user and colon and password):
        raise StoreError(
            "ZooKeeper credentials in the file of service.zk_credentials_file: expected "
            "user:password"
        )
    return user, password


URL_OPTIONS = ("session_timeout", "connect_timeout")  # seconds; see the module docstring


def parse_url(url: str) -> tuple[str, str, dict[str, float]]:
    """(hosts, root, options) of zk://host:port[,…]/path[?session_timeout=S&connect_timeout=S]."""
    parts = urlsplit(url)
    root = parts.path.rstrip("/")
    if parts.scheme != "zk" or not parts.netloc or not root:
        raise StoreAddressError(f"invalid ZooKeeper URL {url!r}: expected zk://host:port[,…]/path")
    options = {}
    for name, values in parse_qs(parts.query).items():
        if name not in URL_OPTIONS:
            raise StoreAddressError(f"invalid ZooKeeper URL {url!r}: unknown option {name!r}")
        try:
            options[name] = float(values[-1])
        except ValueError as exc:
            raise StoreAddressError(
                f"invalid ZooKeeper URL {url!r}: {name} is not a number"
            ) from exc
    return parts.netloc, root, options


class ZooKeeperStore:
    """StateStore in ZooKeeper under `root` (see the module docstring for the layout)."""

    def __init__(
        self,
        hosts: str,
        root: str,
        credentials: tuple[str, str] | None = None,
        session_timeout: float = 10.0,
        lost_grace: float | None = None,
        command_deadline: float = 30.0,
        connect_timeout: float = 15.0,
    ) -> None:
        self.hosts = hosts
        self.root = root
        self.writes = 0
        self.bytes_written = 0
        self.commits = 0  # write requests (each one commit in ZooKeeper's log): the bench's
        self.lost_grace = session_timeout / 4 if lost_grace is None else lost_grace
        self._lock: Lock | None = None
        self._on_lost: Callable[[], None] | None = None
        self._leadership_mutex = threading.Lock()
        self._suspended_timer: threading.Timer | None = None
        self._existing: set[str] = set()
        self._fenced = False  # leadership was lost: refuse writes until it is taken again
        self._client_retry = KazooRetry(
            max_tries=-1, delay=0.1, max_delay=1.0, deadline=command_deadline
        )
        self._client = self._make_client(hosts, credentials, session_timeout, self._client_retry)
        self._client.add_listener(self._on_session_state)
        self._connect(connect_timeout)

    @classmethod
    def from_url(cls, url: str, credentials_file: str = "") -> ZooKeeperStore:
        hosts, root, options = parse_url(url)
        return cls(hosts, root, read_credentials(credentials_file), **options)

    @staticmethod
    def _make_client(
        hosts: str,
        credentials: tuple[str, str] | None,
        session_timeout: float,
        command_retry: KazooRetry,
    ) -> KazooClient:
        auth = acl = None
        if credentials:
            user, password = credentials
            auth = [("digest", f"{user}:{password}")]
            acl = [make_digest_acl(user, password, all=True)]
            REDACT_KAZOO.secrets |= {f"{user}:{password}", password, acl[0].id.id}
        return KazooClient(
            hosts=hosts,
            timeout=session_timeout,
            connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
            command_retry=command_retry,
            auth_data=auth,
            default_acl=acl,
            logger=KAZOO_LOG,
        )

    def _connect(self, timeout: float) -> None:
        try:
            self._client.start(timeout=timeout)
        except KazooTimeoutError as exc:
            self._client.close()
            raise StoreAddressError(
                f"cannot reach ZooKeeper at {self.hosts} within {timeout}s"
            ) from exc
        for path in (self.root, self._path("agents"), self._path("meta")):
            with self._errors(path):
                self._client.retry(self._client.ensure_path, path)

    def get_framework_id(self) -> str | None:
        path = self._path("framework_id")
        data = self._get(path)
        if data is None:
            return None
        try:
            return data.decode() or None
        except UnicodeDecodeError as exc:
            raise StateCorrupt(path, f"not UTF-8 text ({exc})") from exc

    def set_framework_id(self, framework_id: str | None) -> None:
        path = self._path("framework_id")
        if framework_id is None:
            self._delete(path)
        else:
            self._put(path, framework_id.encode(), MAX_RECORD_BYTES)

    def load_agents(self) -> dict[str, dict]:
        with self._errors(self._path("agents")):
            raw = self._client.retry(self._fetch_agents)
        return {agent_id: parse_document(path, data) for agent_id, (path, data) in raw.items()}

    def put_agent(self, agent_id: str, record: dict) -> None:
        self._put(self._agent_path(agent_id), encode_document(record), MAX_RECORD_BYTES)

    def delete_agent(self, agent_id: str) -> None:
        self._delete(self._agent_path(agent_id))

    def get_meta(self, key: str) -> dict | None:
        path = self._path("meta", check_name("meta key", key))
        data = self._get(path)
        return None if data is None else parse_document(path, data)

    def put_meta(self, key: str, value: dict) -> None:
        path = self._path("meta", check_name("meta key", key))
        self._put(path, encode_document(value), MAX_META_BYTES)

    def wipe(self) -> None:
        """Remove every node under the root; a held leader lock stays held."""
        self._existing.clear()
        with self._errors(self.root):
            for child in self._client.retry(self._client.get_children, self.root):
                if child == LEADER and self._lock is not None:
                    continue
                self._write_retry(self._client.delete, self._path(child), recursive=True)
            for sub in ("agents", "meta"):
                self._write_retry(self._client.ensure_path, self._path(sub))

    def acquire_leadership(self, on_lost: Callable[[], None]) -> None:
        """Block until this scheduler holds `<root>/leader`; `on_lost` when it may not."""
        self._take_lock(on_lost, blocking=True)

    def try_acquire_leadership(self, on_lost: Callable[[], None]) -> bool:
        """`acquire_leadership` without waiting: False at once when another session holds
        `<root>/leader` (kazoo's `Lock.acquire(blocking=False)` then deletes the node it
        made, kazoo/recipe/lock.py)."""
        return self._take_lock(on_lost, blocking=False)

    def leader_holder(self) -> str | None:
        """Who holds `<root>/leader`, as "pid N on host H" (from the identifier every
        contender writes into its lock node, `host:pid`; the first of kazoo's
        `Lock.contenders()` holds it); None when nobody does."""
        lock = Lock(self._client, self._path(LEADER))
        with self._errors(self._path(LEADER)):
            contenders = self._client.retry(lock.contenders)
        if not contenders:
            return None
        host, colon, pid = contenders[0].rpartition(":")
        return f"pid {pid} on host {host}" if colon and pid.isdigit() else repr(contenders[0])

    def _take_lock(self, on_lost: Callable[[], None], blocking: bool) -> bool:
        self._drop_lock()
        identifier = f"{socket.gethostname()}:{os.getpid()}"
        lock = Lock(self._client, self._path(LEADER), identifier)
        with self._errors(self._path(LEADER)):
            self._client.retry(self._delete_own_lock_nodes)
            if not lock.acquire(blocking=blocking):
                return False
        with self._leadership_mutex:
            self._lock = lock
            self._on_lost = on_lost
            self._fenced = False
        return True

    def release_leadership(self) -> None:
        with self._leadership_mutex:
            self._on_lost = None
        self._drop_lock()

    def close(self) -> None:
        self.release_leadership()
        self._cancel_suspended_timer()
        self._client.stop()
        self._client.close()

    def _drop_lock(self) -> None:
        """Delete our lock node, waiting no longer than the grace: kazoo's own release would
        wait for an unreachable ZooKeeper forever, and the session's end removes it anyway."""
        lock, self._lock = self._lock, None
        if lock is not None and lock.node:
            with contextlib.suppress(KazooException):
                self._wait(self._client.delete_async(f"{lock.path}/{lock.node}"))

    def _delete_own_lock_nodes(self) -> None:
        """Remove lock nodes of this session that a failed release left behind: a new
        contender would otherwise wait behind its own old node for as long as the session
        lives."""
        if self._client.client_id is None:
            raise ConnectionLoss("no session yet")  # KazooRetry waits for one
        session_id = self._client.client_id[0]
        leader = self._path(LEADER)
        with contextlib.suppress(NoNodeError):
            for child in self._client.get_children(leader):
                with contextlib.suppress(NoNodeError):
                    _, stat = self._client.get(f"{leader}/{child}")
                    if stat.ephemeralOwner == session_id:
                        self._client.delete(f"{leader}/{child}")

    def _on_session_state(self, state: str) -> None:
        """kazoo's listener: runs on kazoo's thread, so it only starts timers."""
        if state == KazooState.CONNECTED:
            self._cancel_suspended_timer()
        elif state == KazooState.SUSPENDED:
            self._start_suspended_timer()
        else:
            self._cancel_suspended_timer()
            threading.Thread(target=self._leadership_lost, daemon=True).start()

    def _start_suspended_timer(self) -> None:
        self._cancel_suspended_timer()
        timer = threading.Timer(self.lost_grace, self._still_suspended)
        timer.daemon = True
        self._suspended_timer = timer
        timer.start()

    def _cancel_suspended_timer(self) -> None:
        timer, self._suspended_timer = self._suspended_timer, None
        if timer is not None:
            timer.cancel()

    def _still_suspended(self) -> None:
        """The grace has passed: unless the connection is back, leadership is in doubt."""
        if self._client.state != KazooState.CONNECTED:
            self._leadership_lost()

    def _leadership_lost(self) -> None:
        """Tell the scheduler, once per acquisition, that it must stop acting.

        The lock is forgotten rather than released: releasing would wait for ZooKeeper,
        and the session's end (or the next acquisition) removes its node anyway.
        """
        with self._leadership_mutex:
            on_lost, self._on_lost = self._on_lost, None
            if on_lost is not None:
                self._lock = None
                self._fenced = True
        if on_lost is not None:
            on_lost()

    def _fetch_agents(self) -> dict[str, tuple[str, bytes]]:
        """Every agent node, fetched concurrently: one round trip per node would be slow."""
        children = self._client.get_children(self._path("agents"))
        pending = {c: self._client.get_async(self._path("agents", c)) for c in children}
        found = {}
        for agent_id, result in pending.items():
            path = self._path("agents", agent_id)
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            except NoAuthError as exc:
                raise StateCorrupt(path, "not authorised to read it (credentials?)") from exc
            found[agent_id] = (path, data)
            self._existing.add(path)
        return found

    def _get(self, path: str) -> bytes | None:
        with self._errors(path):
            try:
                data, _ = self._client.retry(self._client.get, path)
            except NoNodeError:
                return None
            except NoAuthError as exc:
                raise StateCorrupt(path, "not authorised to read it (credentials?)") from exc
        return data

    def _put(self, path: str, data: bytes, limit: int) -> None:
        check_size(path, data, limit)
        with self._errors(path):
            self._write_retry(self._set_or_create, path, data)
        self.writes += 1
        self.bytes_written += len(data)

    def put_many(self, writes: Sequence[tuple[str, str, dict]]) -> None:
        """A group of records in one multi-op transaction (ZooKeeper's `multi`: all or none,
        one request, one commit in its log; apache/zookeeper
        `ZooKeeper.multi`/`MultiOperationRecord`), after the leader's fence check.

        `writes` as `FileStore.put_many`. Nodes not known to exist are created in the same
        transaction; if a guess was wrong the transaction fails as a whole and the records
        are written one by one. Sizes are checked first; a group over `MAX_MULTI_BYTES`
        is split.
        """
        ids = [
            document.get("framework_id") for kind, _, document in writes if kind == "framework_id"
        ]
        writes = [write for write in writes if write[0] != "framework_id"]
        planned = [self._planned(kind, name, document) for kind, name, document in writes]
        for framework_id in ids:  # rare (a subscription); may be a delete
            self.set_framework_id(framework_id)
        start, size = 0, 0
        for index, (_, data) in enumerate(planned):
            length = len(data or b"")
            if index > start and size + length > MAX_MULTI_BYTES:
                self._put_group(planned[start:index])
                start, size = index, 0
            size += length
        if start < len(planned):
            self._put_group(planned[start:])

    def _planned(self, kind: str, name: str, document: dict | None) -> tuple[str, bytes | None]:
        if kind == "agent" and document is None:
            return self._agent_path(name), None  # deleted
        if kind == "agent":
            path, limit = self._agent_path(name), MAX_RECORD_BYTES
        elif kind == "meta":
            path, limit = self._path("meta", check_name("meta key", name)), MAX_META_BYTES
        else:
            raise StoreError(f"unknown kind of record {kind!r}")
        return path, check_size(path, encode_document(document), limit)

    def _put_group(self, planned: list[tuple[str, bytes | None]]) -> None:
        where = planned[0][0] if len(planned) == 1 else f"{len(planned)} nodes under {self.root}"
        with self._errors(where):
            try:
                self._write_retry(self._multi_once, planned)
            except (NoNodeError, NodeExistsError):
                for path, data in planned:  # a wrong guess about a node: one by one
                    if data is None:
                        self._delete(path)
                    else:
                        self._write_retry(self._set_or_create, path, data)
        self.writes += len(planned)
        self.bytes_written += sum(len(data or b"") for _, data in planned)

    def _multi_once(self, planned: list[tuple[str, bytes | None]]) -> None:
        transaction = self._client.transaction()
        fence = self._fence
        if fence is not None:
            transaction.check(fence, -1)
        for path, data in planned:
            if data is None:
                transaction.delete(path)
            elif path in self._existing:
                transaction.set_data(path, data)
            else:
                transaction.create(path, data)
        self.commits += 1
        results = self._wait(transaction.commit_async())
        offset = 1 if fence is not None else 0
        if (
            fence is not None
            and isinstance(results[0], Exception)
            and not isinstance(results[0], RolledBackError)
        ):
            with self._leadership_mutex:
                self._fenced = True
            raise StoreError(f"{self.root}: not written, {fence} is gone: leadership was lost")
        for result in results[offset:]:
            if isinstance(result, Exception) and not isinstance(result, RolledBackError):
                raise result
        self._existing.update(path for path, data in planned if data is not None)
        self._existing.difference_update(path for path, data in planned if data is None)

    def _set_or_create(self, path: str, data: bytes) -> None:
        """One round trip when we know whether the node exists, two when we guessed wrong."""
        if path in self._existing:
            try:
                self._write_once("set", path, data)
            except NoNodeError:
                self._write_once("create", path, data)
        else:
            try:
                self._write_once("create", path, data)
            except NodeExistsError:
                self._write_once("set", path, data)
        self._existing.add(path)

    def _write_once(self, kind: str, path: str, data: bytes = b"") -> None:
        """One write; while leading, in a transaction that first checks our lock node, so
        that a write delayed past the loss of the session can never land (fencing)."""
        fence = self._fence
        self.commits += 1
        if fence is None:
            operations = {"set": self._client.set_async, "create": self._client.create_async}
            if kind == "delete":
                self._wait(self._client.delete_async(path))
            else:
                self._wait(operations[kind](path, data))
            return
        transaction = self._client.transaction()
        transaction.check(fence, -1)
        if kind == "delete":
            transaction.delete(path)
        else:
            getattr(transaction, "set_data" if kind == "set" else "create")(path, data)
        check, result = self._wait(transaction.commit_async())
        if isinstance(check, Exception) and not isinstance(check, RolledBackError):
            with self._leadership_mutex:
                self._fenced = True
            raise StoreError(f"{path}: not written, {fence} is gone: leadership was lost")
        if isinstance(result, Exception):
            raise result

    def _wait(self, result: IAsyncResult) -> object:
        """kazoo waits for a disconnected client forever; give up after the grace (a second
        at least) so that KazooRetry can check its deadline and whether leadership was lost."""
        try:
            return result.get(timeout=max(self.lost_grace, 1.0))
        except KazooTimeoutError as exc:
            raise ConnectionLoss("no answer from ZooKeeper") from exc

    @property
    def _fence(self) -> str | None:
        lock = self._lock
        return f"{lock.path}/{lock.node}" if lock is not None and lock.node else None

    def _write_retry(self, func: Callable, *args: object, **kwargs: object) -> object:
        """kazoo's command retry, but a store that lost leadership writes nothing more: the
        new leader may be writing already, and a write waiting for ZooKeeper gives up."""
        if self._fenced:
            raise StoreError(f"{self.root}: leadership was lost; no writes until it is regained")
        retry = self._client_retry.copy()
        retry.interrupt = lambda: self._fenced
        return retry(func, *args, **kwargs)

    def _delete(self, path: str) -> None:
        self._existing.discard(path)
        with self._errors(path), contextlib.suppress(NoNodeError):
            self._write_retry(self._write_once, "delete", path)

    @contextlib.contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        """Turn kazoo's exceptions into StoreError naming the znode."""
        try:
            yield
        except StoreError:
            raise
        except NoAuthError as exc:
            raise StoreError(f"{path}: not authorised (ZooKeeper credentials?)") from exc
        except KazooException as exc:
            raise StoreError(f"{path}: ZooKeeper error {type(exc).__name__} {exc}") from exc

    def _agent_path(self, agent_id: str) -> str:
        return self._path("agents", check_name("agent ID", agent_id))

    def _path(self, *names: str) -> str:
        return "/".join((self.root, *names))
