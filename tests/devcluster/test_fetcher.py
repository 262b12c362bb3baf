"""The fetcher puts a task's URIs in its sandbox as Mesos' fetcher does."""

from __future__ import annotations

import asyncio
import functools
import io
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from calico_dcos.devcluster.fetcher import FetchError, fetch, fetch_all
from tests.devcluster.test_process_executor import make, run_to_end, task


@pytest.fixture
def served(tmp_path):
    """A directory served over HTTP on loopback, like the scheduler's artifact endpoint."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def make_tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o100755 << 16
            archive.writestr(info, data)
    return path


def test_file_uri_and_plain_path_are_copied_under_their_basename(tmp_path):
    source = tmp_path / "installer.pyz"
    source.write_bytes(b"PK")
    sandbox = tmp_path / "sandbox"
    fetched = fetch_all(
        [{"value": source.as_uri()}, {"value": str(source), "output_file": "copy.pyz"}], sandbox
    )
    assert fetched == [sandbox / "installer.pyz", sandbox / "copy.pyz"]
    assert (sandbox / "copy.pyz").read_bytes() == b"PK"


def test_http_uri_is_downloaded_and_made_executable(tmp_path, served):
    root, url = served
    (root / "calicoctl").write_bytes(b"#!/bin/sh\necho calicoctl\n")
    target = fetch(
        {"value": f"{url}/calicoctl", "executable": True, "cache": True}, tmp_path / "sandbox"
    )
    assert target.read_bytes().startswith(b"#!/bin/sh")
    assert target.stat().st_mode & 0o111


def test_tgz_and_zip_are_extracted_keeping_modes(tmp_path, served):
    root, url = served
    make_tgz(root / "cni.tgz", {"bin/calico": b"elf"})
    make_zip(tmp_path / "ipam.zip", {"bin/calico-ipam": b"elf2"})
    sandbox = tmp_path / "sandbox"
    fetch_all([{"value": f"{url}/cni.tgz"}, {"value": str(tmp_path / "ipam.zip")}], sandbox)
    assert (sandbox / "bin/calico").read_bytes() == b"elf"
    assert (sandbox / "bin/calico-ipam").stat().st_mode & 0o777 == 0o755
    assert (sandbox / "cni.tgz").exists()


def test_executable_and_extract_false_leave_archives_packed(tmp_path):
    make_tgz(tmp_path / "a.tgz", {"inside": b"x"})
    sandbox = tmp_path / "sandbox"
    fetch_all(
        [
            {"value": str(tmp_path / "a.tgz"), "extract": False},
            {"value": str(tmp_path / "a.tgz"), "executable": True, "output_file": "b.tgz"},
        ],
        sandbox,
    )
    assert not (sandbox / "inside").exists()
    assert (sandbox / "b.tgz").stat().st_mode & 0o111


def test_archive_members_cannot_escape_the_sandbox(tmp_path):
    make_tgz(tmp_path / "evil.tgz", {"../escaped": b"x"})
    with pytest.raises(FetchError):
        fetch({"value": str(tmp_path / "evil.tgz")}, tmp_path / "sandbox")
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize(
    "uri", ["file:///nonexistent/installer.pyz", "relative/path", "ftp://example.invalid/x"]
)
def test_unfetchable_uris_raise_with_the_uri_in_the_message(tmp_path, uri):
    with pytest.raises(FetchError, match=f"Failed to fetch '{uri}'"):
        fetch({"value": uri}, tmp_path / "sandbox")


def test_http_error_status_fails_the_fetch(tmp_path, served):
    _, url = served
    with pytest.raises(FetchError, match="HTTP return code 404"):
        fetch({"value": f"{url}/missing.pyz"}, tmp_path / "sandbox")


def test_task_runs_with_its_fetched_and_extracted_uris(tmp_path, served):
    root, url = served
    make_tgz(root / "installer.tgz", {"installer/run.sh": b"#!/bin/sh\necho installed\n"})
    (root / "tool").write_bytes(b"#!/bin/sh\necho tool\n")

    async def scenario():
        executor, agent = make(tmp_path)
        fetching = task(
            "calico-cni__x",
            "installer/run.sh && ./mytool",
            uris=[
                {"value": f"{url}/installer.tgz", "extract": True},
                {"value": f"{url}/tool", "executable": True, "output_file": "mytool"},
            ],
        )
        final = await run_to_end(executor, agent, fetching)
        assert final["state"] == "TASK_FINISHED"
        stdout = executor.sandbox_of(agent.agent_id, "calico-cni__x") / "stdout"
        assert stdout.read_text() == "installed\ntool\n"

    asyncio.run(scenario())


def test_failed_fetch_fails_the_task_before_it_starts(tmp_path, served):
    _, url = served

    async def scenario():
        executor, agent = make(tmp_path)
        broken = task("calico-cni__y", "true", uris=[{"value": f"{url}/gone.pyz"}])
        final = await run_to_end(executor, agent, broken)
        assert agent.states("calico-cni__y") == ["TASK_FAILED"]
        assert f"Failed to fetch '{url}/gone.pyz'" in final["message"]
        assert "404" in final["message"]
        assert final["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"

    asyncio.run(scenario())
