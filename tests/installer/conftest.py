"""Run the built installer zipapp as a real subprocess against temporary host roots.

The devcluster's `systemctl` and `docker` stand-ins come first on PATH (no systemd or Docker
engine can run on a test machine); they act on the host root and log every call.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from installer_host import Agent

from calico_dcos.artifacts import build_installer_zipapp
from calico_dcos.devcluster.hostroot import create_host_root


@pytest.fixture(scope="session")
def zipapp(tmp_path_factory) -> Path:
    return build_installer_zipapp(tmp_path_factory.mktemp("artifacts")).path


@pytest.fixture
def make_agent(tmp_path, zipapp):
    """A fresh host (its root has a space in its name) with fetched plugins in a sandbox."""
    count = iter(range(100))

    def make(**host_options) -> Agent:
        index = next(count)
        root = tmp_path / f"host root {index}"
        sandbox = tmp_path / f"sandbox {index}"
        sandbox.mkdir()
        (sandbox / "calico").write_bytes(b"\x7fELF calico plugin v3")
        (sandbox / "calico-ipam").write_bytes(b"\x7fELF calico-ipam plugin v3")
        host_options.setdefault("agent_id", f"5f1c-S{index}")
        create_host_root(root, hostname=f"agent-{index}", ip=f"127.0.1.{index + 1}", **host_options)
        return Agent(root, zipapp, sandbox)

    return make


@pytest.fixture
def agent(make_agent) -> Agent:
    return make_agent()
