"""Run the built installer zipapp as a real subprocess against temporary host roots.

The devcluster's `systemctl` and `docker` stand-ins come first on PATH (no systemd or Docker
engine can run on a test machine); they act on the host root and log every call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from calico_dcos.artifacts import build_installer_zipapp
from tests.installer.installer_host import Agent, create_agent


@pytest.fixture(scope="session")
def zipapp(tmp_path_factory) -> Path:
    return build_installer_zipapp(tmp_path_factory.mktemp("artifacts")).path


@pytest.fixture
def make_agent(tmp_path, zipapp):
    """Factory of fresh simulated hosts, each with fetched plugins in its own sandbox."""
    count = iter(range(100))
    return lambda **host_options: create_agent(tmp_path, zipapp, next(count), **host_options)


@pytest.fixture
def agent(make_agent) -> Agent:
    return make_agent()
