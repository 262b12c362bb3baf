"""The scheduler image's Dockerfile, checked without a Docker engine (none runs on test hosts).

What can be shown here is shown for real: the files the Dockerfile copies are enough to build
the package wheel (offline, in a copy of the build context), the wheel carries the options
schema, and the HEALTHCHECK command passes against a healthy /v1/health and fails otherwise.
"""

import http.server
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def instructions():
    """The Dockerfile as (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(words[0].upper(), words[1] if len(words) > 1 else "") for words in pairs]


def stage(number):
    """The instructions of one build stage (0: build, 1: run)."""
    stages, current = [], None
    for name, args in instructions():
        if name == "FROM":
            current = []
            stages.append(current)
        current.append((name, args))
    return stages[number]


def test_both_stages_use_slim_python_3_11():
    assert [args for name, args in instructions() if name == "FROM"] == [
        "python:3.11-slim AS build",
        "python:3.11-slim",
    ]


def test_pymesos_is_installed_through_the_http_parser_wheel_script():
    runs = " ".join(args for name, args in stage(0) if name == "RUN")
    assert "python scripts/build_http_parser_wheel.py /wheels" in runs
    assert "--find-links /wheels --only-binary http-parser" in runs
    runs = " ".join(args for name, args in stage(1) if name == "RUN")
    assert "--no-index --find-links /wheels calico-dcos" in runs


def test_runs_as_a_non_root_user_with_calico_dcos_run():
    final = dict(stage(1))
    assert final["USER"] not in ("root", "0")
    assert f"--uid {final['USER']}" in final["RUN"]
    entry = [
        *json.loads(final["ENTRYPOINT"]),
        *json.loads(final["CMD"]),
    ]
    assert entry == ["calico-dcos", "run"]


def copy_into(context, source):
    """`COPY source` into a build context copy, as Docker does (symlinks stay symlinks)."""
    origin, target = ROOT / source, context / source
    if origin.is_dir():
        shutil.copytree(origin, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, target)


def test_copied_context_builds_a_wheel_with_the_options_schema(tmp_path):
    context = tmp_path / "context"
    for name, args in stage(0):
        if name == "COPY":
            *sources, _ = args.split()
            for source in sources:
                copy_into(context, source.rstrip("/"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "wheels"), str(context)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    wheel = next((tmp_path / "wheels").glob("calico_dcos-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        schema = archive.read("calico_dcos/options.schema.json")
        assert "calico_dcos/installer/__main__.py" in archive.namelist()
    assert schema == (ROOT / "config/options.schema.json").read_bytes()


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(self.status if self.path == "/v1/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def healthcheck(port_env):
    args = dict(instructions())["HEALTHCHECK"]
    command = shlex.split(args.split(" CMD ", 1)[1])
    env = {"PATH": os.environ["PATH"], **port_env}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=20)


@pytest.mark.parametrize("variable", ["PORT0", "PORT_API", "CALICO_SERVICE_API_PORT"])
def test_healthcheck_passes_when_the_api_is_healthy(health_server, variable):
    port = str(health_server.server_address[1])
    result = healthcheck({"CALICO_SERVICE_API_PORT": "0", variable: port})
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_the_api_is_unhealthy(health_server, monkeypatch):
    monkeypatch.setattr(Health, "status", 503)
    assert healthcheck({"PORT0": str(health_server.server_address[1])}).returncode != 0
