"""Run the built installer zipapp as a real subprocess against temporary host roots.

The zipapp runs under `agent_python`: the oldest Python the installer claims (3.6, what DC/OS
agents have), not the Python running the tests (see tests/helpers/agent_python.py).

The devcluster's `systemctl`, `journalctl` and `docker` stand-ins come first on PATH (no
systemd can run on a test machine); they act on the host root and log every call. dockerd is
modelled, except on hosts made with `real_docker=True` (test_installer_docker_engine.py).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from calico_dcos.artifacts import build_installer_zipapp
from tests.helpers.agent_python import find_oldest_agent_python
from tests.installer.installer_host import Agent, create_agent


@pytest.fixture(scope="session")
def agent_python() -> str:
    """The agents' Python to run the zipapp under; a machine without one fails, never skips."""
    try:
        return find_oldest_agent_python()
    except LookupError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def zipapp(tmp_path_factory) -> Path:
    return build_installer_zipapp(tmp_path_factory.mktemp("artifacts")).path


@pytest.fixture
def make_agent(tmp_path, zipapp, agent_python):
    """Factory of fresh simulated hosts, each with fetched plugins in its own sandbox."""
    count = iter(range(100))
    return lambda **host_options: create_agent(
        tmp_path, zipapp, next(count), agent_python, **host_options
    )


@pytest.fixture
def agent(make_agent) -> Agent:
    return make_agent()


class Recorder(BaseHTTPRequestHandler):
    """Stands in for the scheduler's report endpoint: keeps every JSON body it is sent."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.server.authorizations.append(self.headers.get("Authorization"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet: the test asserts on what arrived."""


@pytest.fixture
def report_url():
    """A real HTTP server on loopback for $CALICO_DCOS_REPORT_URL: (url, bodies, authorizations)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.bodies = []
    server.authorizations = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/reports", server.bodies, server.authorizations
    server.shutdown()
    server.server_close()
