"""The operator routes over a real scheduler, for the API, CLI and browser tests.

`start_service` (commands/run.py) serves only `api.build_app`'s routes until the operator
routes are wired there, so these tests serve the same app plus `add_operator_routes` on a
port of their own, over the very scheduler the service runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from calico_dcos.api import ApiServer, build_app
from calico_dcos.operator_api import add_operator_routes


@contextlib.contextmanager
def operator_api(view: Any, token: str | None = None) -> Iterator[str]:
    """The API with the operator routes on a free loopback port; yields its base URL."""
    app = build_app(view)
    add_operator_routes(app, view, token)
    server = ApiServer(app, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
