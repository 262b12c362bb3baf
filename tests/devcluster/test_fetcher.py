"""The fetcher puts a task's URIs in its sandbox as Mesos' fetcher does, through the agent's
fetcher cache for URIs with `cache: true` (apache/mesos docs/fetcher.md)."""

from __future__ import annotations

import asyncio
import functools
import io
import re
import tarfile
import threading
import zipfile
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from calico_dcos.devcluster.fetcher import FetcherCache, FetchError, fetch, fetch_all
from tests.devcluster.test_process_executor import make, run_to_end, task
from tests.helpers.counting_http import CountingHandler


@pytest.fixture
def served(counted):
    """A directory served over HTTP on loopback, like the scheduler's artifact endpoint."""
    root, url, _ = counted
    return root, url


@pytest.fixture
def counted(tmp_path):
    """`served`, and the GET requests it answered, by path: the copies that left the server."""
    root = tmp_path / "served"
    root.mkdir()
    gets: dict[str, int] = {}
    handler = functools.partial(CountingHandler, gets, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", gets
    finally:
        server.shutdown()
        server.server_close()


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


def test_failed_fetch_fails_the_task_before_it_starts_in_the_agents_words(tmp_path, served):
    """As a Mesos agent: TASK_FAILED says only that the fetcher exited 1 for the container
    (src/slave/containerizer/fetcher.cpp `FetcherProcess::run`, src/slave/slave.cpp
    `Slave::executorLaunched`); the fetcher program's own line, naming the URI, is in the
    sandbox's `stderr` (src/launcher/fetcher.cpp `main`), after its INFO lines."""
    root, url = served
    (root / "here.pyz").write_bytes(b"PK")

    async def scenario():
        executor, agent = make(tmp_path)
        uris = [{"value": f"{url}/here.pyz"}, {"value": f"{url}/gone.pyz"}]
        broken = task("calico-cni__y", "true", uris=uris)
        final = await run_to_end(executor, agent, broken)
        assert agent.states("calico-cni__y") == ["TASK_FAILED"]
        assert re.fullmatch(
            r"Failed to launch container: Failed to fetch all URIs for container "
            r"'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}': "
            r"exited with status 1",
            final["message"],
        ), final["message"]
        assert (final["reason"], final["source"]) == (
            "REASON_CONTAINER_LAUNCH_FAILED",
            "SOURCE_AGENT",
        )
        sandbox = executor.sandbox_of(agent.agent_id, "calico-cni__y")
        lines = (sandbox / "stderr").read_text().splitlines()
        glog = r"(?P<level>[IE])\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ fetcher\.cpp:\d+\] (?P<text>.*)"
        parsed = [re.fullmatch(glog, line) for line in lines]
        assert all(parsed), lines
        assert [(m["level"], m["text"]) for m in parsed] == [
            ("I", f"Fetching URI '{url}/here.pyz'"),
            ("I", f"Fetched '{url}/here.pyz' to '{sandbox / 'here.pyz'}'"),
            ("I", f"Fetching URI '{url}/gone.pyz'"),
            (
                "E",
                f"EXIT with status 1: Failed to fetch '{url}/gone.pyz': Error downloading "
                "resource, received HTTP return code 404",
            ),
        ]
        assert (sandbox / "stdout").read_bytes() == b""

    asyncio.run(scenario())


def test_a_cached_archive_is_downloaded_once_per_user_and_extracted_from_the_cache(
    tmp_path, counted
):
    root, url, gets = counted
    make_tgz(root / "etcd-v3.5.17.tar.gz", {"etcd-v3.5.17/etcd": b"#!/bin/sh\n"})
    uri = {"value": f"{url}/etcd-v3.5.17.tar.gz", "extract": True, "cache": True}
    cache = FetcherCache(tmp_path / "fetch")

    for n in range(4):
        fetch(uri, tmp_path / f"sandbox{n}", cache)
    fetch(uri, tmp_path / "other-user", cache, user="nobody")
    fetch({**uri, "cache": False}, tmp_path / "bypass", cache)

    assert gets == {"/etcd-v3.5.17.tar.gz": 3}  # once, once for another user, once bypassing
    assert (cache.downloads, cache.hits) == (2, 3)
    for n in range(4):
        sandbox = tmp_path / f"sandbox{n}"
        assert (sandbox / "etcd-v3.5.17/etcd").read_bytes() == b"#!/bin/sh\n"
        assert not (sandbox / "etcd-v3.5.17.tar.gz").exists()  # only what it held
    assert (tmp_path / "bypass" / "etcd-v3.5.17.tar.gz").exists()  # bypassing: both
    cached = sorted(p.relative_to(tmp_path / "fetch") for p in (tmp_path / "fetch").rglob("c*"))
    assert [str(p) for p in cached] == ["c1-etcd-v3.5.17.tar.gz", "nobody/c2-etcd-v3.5.17.tar.gz"]


def test_a_cached_executable_is_copied_under_its_output_file_and_made_executable_there(
    tmp_path, counted
):
    root, url, gets = counted
    (root / "calico-amd64").write_bytes(b"elf")
    uri = {"value": f"{url}/calico-amd64", "executable": True, "cache": True}
    cache = FetcherCache(tmp_path / "fetch")

    first = fetch({**uri, "output_file": "bin/calico"}, tmp_path / "a", cache)
    second = fetch(uri, tmp_path / "b", cache)

    assert gets == {"/calico-amd64": 1}
    assert first == tmp_path / "a/bin/calico" and first.stat().st_mode & 0o111
    assert second == tmp_path / "b/calico-amd64" and second.read_bytes() == b"elf"
    assert not (tmp_path / "fetch/c1-calico-amd64").stat().st_mode & 0o111  # not the cache's


def test_a_failed_download_is_not_cached_and_the_next_fetch_tries_again(tmp_path, counted):
    root, url, gets = counted
    uri = {"value": f"{url}/late.pyz", "cache": True}
    cache = FetcherCache(tmp_path / "fetch")

    with pytest.raises(FetchError, match="HTTP return code 404"):
        fetch(uri, tmp_path / "a", cache)
    (root / "late.pyz").write_bytes(b"PK")
    fetch(uri, tmp_path / "b", cache)
    fetch(uri, tmp_path / "c", cache)

    assert gets == {"/late.pyz": 2} and (tmp_path / "c/late.pyz").read_bytes() == b"PK"


def test_the_cache_evicts_the_least_recently_used_file_beyond_its_size(tmp_path, counted):
    root, url, gets = counted
    for name in ("a.bin", "b.bin", "c.bin"):
        (root / name).write_bytes(b"x" * 100)
    cache = FetcherCache(tmp_path / "fetch", size_limit=250)

    for name in ("a.bin", "b.bin", "a.bin", "c.bin", "a.bin", "b.bin"):
        fetch({"value": f"{url}/{name}", "cache": True}, tmp_path / "s", cache)

    assert gets == {"/a.bin": 1, "/b.bin": 2, "/c.bin": 1}  # b went for c, then came back


def test_a_crash_looping_task_relaunched_on_its_agent_fetches_its_archive_once(tmp_path, counted):
    """The executor fetches as the agent does: each relaunch (a new task ID, a new sandbox)
    copies from the agent's cache; an agent restart empties the cache, as Mesos' does."""
    root, url, gets = counted
    make_tgz(root / "calico.tar.gz", {"calico/crash.sh": b"#!/bin/sh\nexit 1\n"})
    uris = [{"value": f"{url}/calico.tar.gz", "cache": True}, {"value": f"{url}/calico.tar.gz"}]

    async def scenario():
        executor, agent = make(tmp_path)
        for attempt in range(1, 5):
            tid = f"calico-node__S1__f00d__{attempt}"
            final = await run_to_end(executor, agent, task(tid, "calico/crash.sh", uris=uris))
            assert final["state"] == "TASK_FAILED"
        assert gets == {"/calico.tar.gz": 1 + 4}  # cached once; the uncached one every time
        await executor.agent_stopping(agent, keep_tasks=True)
        await run_to_end(executor, agent, task("calico-node__S1__f00d__5", "true", uris=uris))
        assert gets == {"/calico.tar.gz": 2 + 5}

    asyncio.run(scenario())
