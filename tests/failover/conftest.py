"""Fixtures for the failover tests: real ZooKeeper, a devcluster, schedulers as processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.zookeeper import ZooKeeperServer


@pytest.fixture
def zookeeper() -> Iterator[ZooKeeperServer]:
    """A ZooKeeper of the test's own: these tests stop and restart it."""
    with ZooKeeperServer() as server:
        yield server
