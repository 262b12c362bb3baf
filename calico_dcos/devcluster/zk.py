"""The master's ZooKeeper leader record, in the real format, so `zk://` detection works.

A real master contends for leadership with an ephemeral sequential znode named
`json.info_<10-digit seq>` holding its MasterInfo as JSON; pymesos' detector watches the
children and follows the lowest one.
"""

from __future__ import annotations

import json

from kazoo.client import KazooClient


class LeaderRecord:
    def __init__(self, zk: str) -> None:
        """`zk`: `host:port[,host:port]/path`, with or without a `zk://` scheme."""
        hosts, _, path = zk.removeprefix("zk://").partition("/")
        self.path = "/" + path.strip("/")
        self.client = KazooClient(hosts=hosts, timeout=10)
        self.node: str | None = None

    def start(self) -> None:
        self.client.start(timeout=15)
        self.client.ensure_path(self.path)

    def publish(self, master_info: dict) -> None:
        """Replace our record with one for `master_info` (a new leader after failover)."""
        self.withdraw()
        data = json.dumps(master_info).encode()
        self.node = self.client.create(
            f"{self.path}/json.info_", data, ephemeral=True, sequence=True
        )

    def withdraw(self) -> None:
        if self.node:
            self.client.delete(self.node)
            self.node = None

    def stop(self) -> None:
        self.withdraw()
        self.client.stop()
        self.client.close()
