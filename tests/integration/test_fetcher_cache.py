"""A crash-looping daemon is downloaded once per agent, not once per relaunch: the scheduler
marks its versioned tarball `cache: true` and the devcluster's agents fetch as Mesos' do
(through a per-agent fetcher cache, apache/mesos docs/fetcher.md).

The real scheduler and the devcluster's process executor; the etcd "release" is a tarball
served over HTTP on loopback whose `etcd` exits 1 at once (a stand-in: no real etcd needed
to crash), so the scheduler relaunches the etcd-proxy step again and again.
"""

from __future__ import annotations

import functools
import io
import tarfile
import threading
from http.server import ThreadingHTTPServer

from tests.helpers.counting_http import CountingHandler
from tests.integration.harness import running_cluster, scheduler_on, wait_until

ONLY_THE_PROXY = {
    "docker_enable": "false",
    "cni_enable": "false",
    "libnetwork_enable": "false",
    "node_enable": "false",
}
RELEASE = "etcd-v3.5.17-linux-amd64"


def crashing_etcd_release(path) -> None:
    """`<RELEASE>.tar.gz` holding `<RELEASE>/etcd`, a script that exits 1 at once."""
    script = b"#!/bin/sh\necho 'etcd stand-in: crashing on purpose' >&2\nexit 1\n"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(f"{RELEASE}/etcd")
        info.size, info.mode = len(script), 0o755
        archive.addfile(info, io.BytesIO(script))


def test_a_crash_looping_etcd_proxy_downloads_its_tarball_once(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    crashing_etcd_release(served / f"{RELEASE}.tar.gz")
    gets: dict[str, int] = {}
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(CountingHandler, gets, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}/{RELEASE}.tar.gz"
    try:
        with (
            running_cluster(agents=1, public_agents=0, executor="process") as cluster,
            scheduler_on(
                cluster, tmp_path, etcd_run_proxy="true", etcd_binary_uri=uri, **ONLY_THE_PROXY
            ),
        ):
            agent = cluster.agents[0]

            def failures() -> int:
                return sum(
                    1
                    for e in cluster.timeline()
                    if e["event"] == "status" and e.get("state") == "TASK_FAILED"
                )

            wait_until(lambda: failures() >= 3, 30, "the proxy failing three times")
            timeline = cluster.timeline()
    finally:
        server.shutdown()
        server.server_close()

    launches = [e for e in timeline if e["event"] == "launch"]
    assert len(launches) >= 3 and {e["agent_id"] for e in launches} == {agent.agent_id}
    assert gets == {f"/{RELEASE}.tar.gz": 1}  # one download for every relaunch
