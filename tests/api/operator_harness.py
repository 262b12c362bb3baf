"""The operator routes as the real service serves them (`start_service`, `api.build_app`),
for the API, CLI and browser tests: a converging scheduler and its API's base URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from calico_dcos.service import Service
from tests.integration.harness import scheduler_on


@contextlib.contextmanager
def operator_service(
    cluster, workdir: Path, token: str | None = None, **options: str
) -> Iterator[tuple[Service, str]]:
    """A scheduler on `cluster` whose API needs `token` (`service.api_token_file`)."""
    if token is not None:
        token_file = workdir / "api-token"
        token_file.write_text(token + "\n")
        options["service_api_token_file"] = str(token_file)
    with scheduler_on(cluster, workdir, **options) as service:
        yield service, f"http://127.0.0.1:{service.api.port}"
