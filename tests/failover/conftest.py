"""Fixtures for the failover tests: real ZooKeeper, a devcluster, schedulers as processes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# `tests` is not a package: put the repository on sys.path for `tests.helpers` and harnesses.
REPO = str(Path(__file__).resolve().parents[2])
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.helpers.zookeeper import ZooKeeperServer  # noqa: E402


@pytest.fixture
def zookeeper() -> Iterator[ZooKeeperServer]:
    """A ZooKeeper of the test's own: these tests stop and restart it."""
    with ZooKeeperServer() as server:
        yield server
