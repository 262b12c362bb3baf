"""Fixtures for the devcluster tests: a running DevCluster and a pymesos framework on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from calico_dcos.devcluster import DevCluster
from tests.helpers.devcluster import Framework, running_cluster


@pytest.fixture
def cluster() -> Iterator[DevCluster]:
    """Two private agents and one public agent, synthetic executor, fast intervals."""
    with running_cluster() as running:
        yield running


@pytest.fixture
def process_cluster(tmp_path: Path) -> Iterator[DevCluster]:
    """One private agent running real processes in sandboxes under `tmp_path`."""
    options = {"agents": 1, "public_agents": 0, "executor": "process", "workdir": tmp_path}
    with running_cluster(**options) as running:
        yield running


@pytest.fixture
def framework(cluster: DevCluster) -> Iterator[Framework]:
    """A subscribed pymesos framework (MULTI_ROLE `*` + `slave_public`, checkpointing)."""
    with Framework(cluster) as running:
        yield running
