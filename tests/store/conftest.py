"""Fixtures for the store tests: a real ZooKeeper and both stores behind one interface."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kazoo.client import KazooClient

from calico_dcos.store import StateStore, open_store
from calico_dcos.store.file import DATABASE_NAME
from tests.helpers.zookeeper import ZooKeeperServer


@pytest.fixture(scope="session")
def zookeeper() -> Iterator[ZooKeeperServer]:
    """One real ZooKeeper for the whole session; tests keep apart by using their own root."""
    with ZooKeeperServer() as server:
        yield server


@pytest.fixture
def private_zookeeper() -> Iterator[ZooKeeperServer]:
    """A ZooKeeper of the test's own, for tests that stop or restart the server."""
    with ZooKeeperServer() as server:
        yield server


@pytest.fixture
def zk_client(zookeeper: ZooKeeperServer) -> Iterator[KazooClient]:
    """A plain kazoo client without credentials: the outsider and the test's own eyes."""
    client = KazooClient(hosts=zookeeper.hosts)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


class Backend:
    """Where a store lives, so tests can open several stores on it and tamper with it."""

    def __init__(self, kind: str, url: str, zk_hosts: str = "") -> None:
        self.kind = kind
        self.url = url
        self.zk_hosts = zk_hosts
        self.opened: list[StateStore] = []

    def open(self, credentials_file: str = "") -> StateStore:
        store = open_store(self.url, credentials_file)
        self.opened.append(store)
        return store

    def agent_location(self, agent_id: str) -> str:
        """Where one agent's record is, as StateCorrupt names it: the database and the row
        (file store), or the znode."""
        if self.kind == "file":
            return f"{self.url}/{DATABASE_NAME} (agent {agent_id})"
        return f"{self.root}/agents/{agent_id}"

    @property
    def root(self) -> str:
        return urlsplit(self.url).path

    def write_raw(self, agent_id: str, data: bytes) -> None:
        """Put bytes where the agent's record lives, behind the store's back."""
        if self.kind == "file":
            with contextlib.closing(sqlite3.connect(Path(self.url) / DATABASE_NAME)) as db, db:
                db.execute("INSERT INTO agents (agent_id, record) VALUES (?, ?)", (agent_id, data))
            return
        client = KazooClient(hosts=self.zk_hosts)
        client.start(timeout=10)
        try:
            client.create(self.agent_location(agent_id), data, makepath=True)
        finally:
            client.stop()
            client.close()

    def sibling(self, suffix: str) -> Backend:
        """Another store right beside this one: `<path><suffix>`."""
        parts = urlsplit(self.url)
        url = parts._replace(path=parts.path + suffix).geturl()
        return Backend(self.kind, url, self.zk_hosts)

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(params=["file", "zk"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each contract test runs against the file store and against ZooKeeper."""
    if request.param == "file":
        chosen = Backend("file", str(tmp_path / "state"))
    else:
        server = request.getfixturevalue("zookeeper")
        root = f"/test-{uuid.uuid4().hex[:8]}/calico"
        chosen = Backend("zk", f"zk://{server.hosts}{root}?session_timeout=2", server.hosts)
    yield chosen
    chosen.close_all()


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="store-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
