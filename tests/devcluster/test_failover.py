"""Master failover: pymesos follows the 307 of the old master, or the ZooKeeper record."""

from __future__ import annotations

import json
import re
import socket

import pytest
from kazoo.client import KazooClient

from tests.helpers.devcluster import Framework, running_cluster, wait_until
from tests.helpers.zookeeper import ZooKeeperServer


def offers_from_current_master(fw: Framework, master_id: str) -> bool:
    with fw.lock:
        return any(o["id"]["value"].startswith(master_id) for o in fw.offers)


def test_framework_follows_the_redirect_to_the_new_master_and_keeps_its_id(cluster, framework):
    first_id = framework.framework_id
    cluster.failover_master()
    wait_until(lambda: framework.registrations >= 2, what="re-subscription")
    assert framework.framework_id == first_id
    wait_until(lambda: offers_from_current_master(framework, cluster.master.id))


@pytest.fixture(scope="module")
def zookeeper():
    with ZooKeeperServer() as server:
        yield server


def test_leader_record_is_json_info_with_master_info_and_moves_on_failover(zookeeper):
    with running_cluster(zk=f"{zookeeper.hosts}/mesos-a") as cluster:
        client = KazooClient(hosts=zookeeper.hosts)
        client.start()
        try:
            (child,) = client.get_children("/mesos-a")
            assert re.fullmatch(r"json\.info_\d{10}", child)
            info = json.loads(client.get(f"/mesos-a/{child}")[0])
            assert info["address"] == {
                "hostname": "127.0.0.1", "ip": "127.0.0.1", "port": cluster.master.port,
            }  # fmt: skip
            cluster.failover_master()
            (moved,) = client.get_children("/mesos-a")
            assert moved > child
            assert json.loads(client.get(f"/mesos-a/{moved}")[0])["port"] == cluster.master.port
        finally:
            client.stop()


def test_pymesos_zk_detection_finds_the_new_master(zookeeper):
    with running_cluster(zk=f"{zookeeper.hosts}/mesos-b") as cluster:
        fw = Framework(cluster)
        fw.start(master=f"zk://{zookeeper.hosts}/mesos-b")
        old_port = cluster.master.port
        try:
            cluster.failover_master(old_master="gone")
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", old_port), timeout=2)
            wait_until(lambda: fw.registrations >= 2, timeout=20, what="re-subscription")
            wait_until(lambda: offers_from_current_master(fw, cluster.master.id))
        finally:
            fw.stop()
