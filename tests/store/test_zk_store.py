"""What only the ZooKeeper store does: ACLs, sessions, restarts, and scale."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

from calico_dcos.store import StateCorrupt, StoreError, open_store
from calico_dcos.store.zk import ZooKeeperStore
from tests.helpers.zookeeper import free_port
from tests.store.test_store_contract import agent_record


@pytest.fixture
def root() -> str:
    return f"/test-{uuid.uuid4().hex[:8]}/calico"


@pytest.fixture
def credentials_file(tmp_path) -> str:
    path = tmp_path / "zk-credentials"
    path.write_text("calico:s3cret\n")
    return str(path)


def expire_session(hosts: str, store: ZooKeeperStore) -> None:
    """Close the store's session from a second client with the same session ID and password:
    the server expires it, as it would after a network partition longer than the timeout."""
    twin = KazooClient(hosts=hosts, client_id=store._client.client_id)
    twin.start(timeout=10)
    twin.stop()
    twin.close()


def test_digest_acls_keep_an_unauthenticated_client_out(
    zookeeper, zk_client, root, credentials_file
):
    store = open_store(f"zk://{zookeeper.hosts}{root}", credentials_file)
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    node = f"{root}/agents/a1b2-S0"

    with pytest.raises(NoAuthError):
        zk_client.get(node)
    with pytest.raises(NoAuthError):
        zk_client.set(node, b"{}")
    with pytest.raises(NoAuthError):
        zk_client.create(f"{root}/agents/intruder", b"{}")
    with pytest.raises(NoAuthError):
        zk_client.get(f"{root}/agents")
    insider = open_store(f"zk://{zookeeper.hosts}{root}", credentials_file)
    assert insider.load_agents() == {"a1b2-S0": agent_record("a1b2-S0")}
    insider.close()
    store.close()


def test_no_credential_nor_stored_data_is_logged_even_at_debug(
    zookeeper, root, credentials_file, caplog
):
    """Issue 14: with `service.log_level: debug` kazoo logged `Auth(…, auth='calico:s3cret')`.
    Level 1 takes in kazoo's BLATHER (5) as well as debug."""
    caplog.set_level(1)
    secret_data = "ab" * 32
    store = open_store(f"zk://{zookeeper.hosts}{root}", credentials_file)
    store.put_meta("report-key", {"key": secret_data})
    assert store.get_meta("report-key") == {"key": secret_data}
    store.close()

    digest_id = make_digest_acl("calico", "s3cret").id.id  # "calico:<base64 sha1>"
    logged = [record.getMessage() for record in caplog.records]
    assert any("Sending request" in line and "Auth(" in line for line in logged)
    assert any("Create(" in line and f"{root}/meta/report-key" in line for line in logged)
    for secret in ("calico:s3cret", "s3cret", digest_id.split(":", 1)[1], secret_data):
        assert not [line for line in logged if secret in line], secret
        assert secret not in caplog.text


def test_a_store_without_the_credentials_gets_a_clear_error(zookeeper, root, credentials_file):
    owner = open_store(f"zk://{zookeeper.hosts}{root}", credentials_file)
    owner.set_framework_id("f0c2-0001")
    outsider = open_store(f"zk://{zookeeper.hosts}{root}")

    with pytest.raises(StateCorrupt, match=f"{root}/framework_id.*not authorised"):
        outsider.get_framework_id()
    with pytest.raises(StoreError, match=f"{root}/agents: not authorised"):
        outsider.load_agents()
    owner.close()
    outsider.close()


def test_bad_credentials_file_and_url_are_refused(zookeeper, tmp_path):
    bad = tmp_path / "creds"
    bad.write_text("no-colon")

    with pytest.raises(StoreError, match="expected user:password"):
        open_store(f"zk://{zookeeper.hosts}/x", str(bad))
    with pytest.raises(StoreError, match="service.zk_credentials_file: the file .* does not exist"):
        open_store(f"zk://{zookeeper.hosts}/x", str(tmp_path / "missing"))
    with pytest.raises(StoreError, match="expected zk://host:port"):
        open_store(f"zk://{zookeeper.hosts}")
    with pytest.raises(StoreError, match="unknown option"):
        open_store(f"zk://{zookeeper.hosts}/x?chroot=1")


def test_unreachable_zookeeper_is_a_clear_error():
    hosts = f"127.0.0.1:{free_port()}"

    with pytest.raises(StoreError, match=f"cannot reach ZooKeeper at {hosts}"):
        ZooKeeperStore(hosts, "/x", connect_timeout=0.5)


def test_the_url_sets_the_connect_timeout():
    hosts = f"127.0.0.1:{free_port()}"

    with pytest.raises(StoreError, match=r"within 0\.3s"):
        open_store(f"zk://{hosts}/x?connect_timeout=0.3&session_timeout=2")


def test_session_expiry_calls_on_lost_and_fences_writes_until_leader_again(zookeeper, root):
    store = ZooKeeperStore(zookeeper.hosts, root, session_timeout=2, lost_grace=30)
    store.put_agent("a1b2-S0", agent_record("a1b2-S0"))
    lost = threading.Event()
    store.acquire_leadership(on_lost=lost.set)

    expire_session(zookeeper.hosts, store)

    assert lost.wait(10), "on_lost was not called when the session expired"
    with pytest.raises(StoreError, match="leadership was lost"):
        store.put_agent("a1b2-S1", agent_record("a1b2-S1"))
    store.acquire_leadership(on_lost=lambda: None)
    store.put_agent("a1b2-S1", agent_record("a1b2-S1"))
    assert sorted(store.load_agents()) == ["a1b2-S0", "a1b2-S1"]
    store.close()


def test_a_write_waiting_for_zookeeper_gives_up_when_leadership_is_lost(private_zookeeper, root):
    store = ZooKeeperStore(private_zookeeper.hosts, root, session_timeout=10, lost_grace=0.5)
    store.acquire_leadership(on_lost=lambda: None)
    private_zookeeper.stop()
    started = time.monotonic()

    with pytest.raises(StoreError):
        store.put_agent("a1b2-S0", agent_record("a1b2-S0"))

    assert time.monotonic() - started < 5, "the write outlived the leadership"
    store.close()


def test_released_leadership_never_calls_on_lost(zookeeper, root):
    store = ZooKeeperStore(zookeeper.hosts, root, session_timeout=2, lost_grace=30)
    lost = threading.Event()
    store.acquire_leadership(on_lost=lost.set)
    store.release_leadership()

    expire_session(zookeeper.hosts, store)
    store.put_meta("probe", {"after": "expiry"})

    assert not lost.is_set()
    store.close()


def test_connection_suspended_past_the_grace_calls_on_lost(private_zookeeper, root):
    store = ZooKeeperStore(private_zookeeper.hosts, root, session_timeout=2, lost_grace=0.3)
    lost = threading.Event()
    store.acquire_leadership(on_lost=lost.set)

    private_zookeeper.stop()

    assert lost.wait(10), "on_lost was not called while ZooKeeper was unreachable"
    private_zookeeper.start()
    store.acquire_leadership(on_lost=lambda: None)
    store.close()


def test_zookeeper_restarted_mid_use_reconnects_with_the_data_intact(private_zookeeper, root):
    store = ZooKeeperStore(private_zookeeper.hosts, root, session_timeout=6)
    for i in range(3):
        store.put_agent(f"a1b2-S{i}", agent_record(f"a1b2-S{i}"))

    private_zookeeper.restart()
    store.put_agent("a1b2-S3", agent_record("a1b2-S3"))

    assert store.load_agents() == {f"a1b2-S{i}": agent_record(f"a1b2-S{i}") for i in range(4)}
    store.acquire_leadership(on_lost=lambda: None)
    store.close()


def test_many_agents_stay_one_small_node_each_whatever_the_cluster_size(zookeeper, root):
    """Scale figures (5,000 agents, put and load times) are the benchmark's job; this checks
    the shape: one node per agent, and bytes per agent that do not grow with the cluster."""
    store = open_store(f"zk://{zookeeper.hosts}{root}")
    records = {f"5e1f0c2a-0b7d-4c1e-9f3a-2d5c8e7b6a10-S{i}": None for i in range(1000)}
    for agent_id in records:
        records[agent_id] = agent_record(agent_id)

    sizes = []
    for count, (agent_id, record) in enumerate(records.items(), start=1):
        before = store.bytes_written
        store.put_agent(agent_id, record)
        if count in (10, 1000):
            sizes.append(store.bytes_written - before)
    reader = open_store(f"zk://{zookeeper.hosts}{root}")
    loaded = reader.load_agents()
    reader.close()

    assert loaded == records
    assert store.writes == 1000
    assert len(store._client.get_children(f"{root}/agents")) == 1000
    assert sizes[0] < 1024 and sizes[1] <= sizes[0] + 4
    store.close()


def test_leadership_taken_again_does_not_wait_behind_its_own_old_lock_node(zookeeper, root):
    store = ZooKeeperStore(zookeeper.hosts, root, session_timeout=2)
    store.acquire_leadership(on_lost=lambda: None)
    store._lock = None  # as after a release that failed while ZooKeeper was unreachable

    acquired = threading.Event()
    threading.Thread(
        target=lambda: (store.acquire_leadership(lambda: None), acquired.set()), daemon=True
    ).start()

    assert acquired.wait(5), "the scheduler waits behind its own lock node"
    store.close()


def test_a_leader_whose_lock_node_is_gone_cannot_write(zookeeper, zk_client, root):
    store = ZooKeeperStore(zookeeper.hosts, root, session_timeout=2)
    store.acquire_leadership(on_lost=lambda: None)
    (lock_node,) = zk_client.get_children(f"{root}/leader")
    zk_client.delete(f"{root}/leader/{lock_node}")  # as when the session expired unnoticed

    with pytest.raises(StoreError, match="leadership was lost"):
        store.put_agent("a1b2-S0", agent_record("a1b2-S0"))

    assert zk_client.exists(f"{root}/agents/a1b2-S0") is None
    store.close()
