"""A download that fails names the option that gave its URI (issue 20): on /v1/plan, where
`calico-dcos status`, the page and `local` read it. Real fetches by the devcluster's process
executor, from a file:// URI that does not exist.

As on a Mesos agent, the task's TASK_FAILED names no URI ("Failed to fetch all URIs for
container …": apache/mesos src/slave/containerizer/fetcher.cpp, `FetcherProcess::run`); the
fetcher program's line that does is in the sandbox's `stderr` (src/launcher/fetcher.cpp,
`main`), which the scheduler reads from the agent's `/files/read`."""

from __future__ import annotations

import logging

from calico_dcos.options import load_options
from calico_dcos.steps import fetch_hint, fetch_output_hint
from tests.integration.harness import cni_standins, running_cluster, scheduler_on, wait_until


def test_fetch_hint_names_the_one_option_that_gave_the_failed_uri():
    """The devcluster's fetcher, as Mesos' fetcher program, names the URI it failed on
    (apache/mesos src/launcher/fetcher.cpp); the hint names the option that gave it."""
    options = load_options(
        None,
        {
            "CALICO_CNI_CALICO_URI": "file:///x/calico",
            "CALICO_CNI_CALICO_IPAM_URI": "file:///x/calico-ipam",
            "CALICO_ETCD_BINARY_URI": "https://e/etcd-v3.5.17.tar.gz",
        },
    )

    def hint(step: str, uri: str) -> str:
        return fetch_hint(step, f"Failed to fetch '{uri}': gone", options, "http://s:1")

    assert hint("cni", "file:///x/calico").startswith("cannot download cni.calico_uri: Failed")
    assert hint("cni", "file:///x/calico-ipam").startswith("cannot download cni.calico_ipam_uri:")
    installer = "http://s:1/v1/artifacts/installer.pyz"
    assert hint("cni", installer).startswith("cannot download service.artifacts_url: Failed")
    assert hint("uninstall", installer).startswith("cannot download service.artifacts_url:")
    assert hint("etcd-proxy", "https://e/etcd-v3.5.17.tar.gz").startswith(
        "cannot download etcd.binary_uri: Failed"
    )


def test_fetch_hint_without_the_uri_names_every_option_the_step_downloads_from():
    """Mesos' agent says only "Failed to fetch all URIs for container …" (no URI)."""
    mesos = "Failed to fetch all URIs for container 'c1': exited with status 1"
    assert fetch_hint("etcd-proxy", mesos) == f"cannot download etcd.binary_uri: {mesos}"
    assert fetch_hint("cni", mesos).startswith(
        "cannot download one of service.artifacts_url, cni.calico_uri, cni.calico_ipam_uri: "
    )
    assert fetch_hint("cni", "Command exited with status 1") == "Command exited with status 1"
    assert fetch_hint("node", mesos) == mesos  # an image, not a download of ours


MESOS = (
    "Failed to launch container: Failed to fetch all URIs for container 'c1': exited with status 1"
)
TAIL = (  # `sandbox.last_words` of a real fetcher's stderr for a local URI: `cp`'s complaint
    # (stout's os::copyfile runs cp), then its own line; its INFO lines are left out
    "cp: cannot stat '/x/calico': No such file or directory | E1129 21:30:00.123456  4242 "
    "fetcher.cpp:615] EXIT with status 1: Failed to fetch 'file:///x/calico': cp failed "
    "with status: 256"
)


def test_the_stderr_read_names_the_one_option_with_the_fetchers_line():
    options = load_options(
        None,
        {
            "CALICO_CNI_CALICO_URI": "file:///x/calico",
            "CALICO_ETCD_BINARY_URI": "https://u:secret@e/etcd-v3.5.17.tar.gz",
        },
    )
    hinted = fetch_hint("cni", MESOS, options, "http://s:1")
    assert hinted.startswith("cannot download one of service.artifacts_url, cni.calico_uri, ")

    words, message = fetch_output_hint("cni", TAIL, hinted, options, "http://s:1")

    assert words == (
        "cannot download cni.calico_uri: Failed to fetch 'file:///x/calico': cp failed with "
        "status: 256; cp: cannot stat '/x/calico': No such file or directory"
    )
    assert message == MESOS  # the agent's own words, without the update's hint
    # A password in the URI is hidden in the sandbox's words (`last_words`): still found.
    redacted = "E1129 fetcher.cpp:615] Failed to fetch 'https://u:***@e/etcd-v3.5.17.tar.gz': 404"
    words, _ = fetch_output_hint("etcd-proxy", redacted, MESOS, options, "")
    assert words.startswith("cannot download etcd.binary_uri: Failed to fetch 'https://u:***@")
    # No fetcher line (an older log, or cut off): the step's options lead what was there.
    words, _ = fetch_output_hint("cni", "E… something else", hinted, options, "http://s:1")
    assert words.startswith("cannot download one of service.artifacts_url, ") and "else" in words
    # A command's stderr, not a fetch: unchanged.
    assert fetch_output_hint("cni", "oops", "Command exited with status 1", options) == (
        "oops",
        "Command exited with status 1",
    )


def test_a_cni_plugin_that_cannot_be_downloaded_is_named_by_its_option(tmp_path, caplog):
    """The update first (Mesos' own words: no URI, so every option the step downloads
    from), then the option that gave the URI, from the fetcher's line in the sandbox's
    `stderr` read over the agent's `/files/read`."""
    caplog.set_level(logging.INFO, logger="calico_dcos.scheduler")
    options = cni_standins(tmp_path / "cni") | {"cni_calico_uri": "file:///nonexistent/calico"}
    with (
        running_cluster(
            agents=1, public_agents=0, executor="process", workdir=tmp_path / "dc"
        ) as cluster,
        scheduler_on(cluster, tmp_path, **options) as service,
    ):

        def cni_message() -> str:
            phases = service.scheduler.plan_view()["phases"]
            steps = phases[0]["steps"] if phases else []
            return next((s["message"] for s in steps if s["name"] == "cni"), "")

        wait_until(lambda: "cni.calico_uri: Failed" in cni_message(), 60, "the stderr's words")
        message = cni_message()

    # The trial's case: only cni.calico_uri was broken, and only it is named, with the
    # fetcher's line, then the agent's own words.
    assert "cannot download cni.calico_uri: Failed to fetch 'file:///nonexistent/calico'" in message
    assert " (Failed to launch container: Failed to fetch all URIs for container '" in message
    assert "service.artifacts_url" not in message and "calico_ipam_uri" not in message
    # The update came first, in Mesos' words: every option the step downloads from, logged
    # at WARNING (a failed step: the trial found it at INFO); then the option, once read.
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    update = next(i for i, (_, m) in enumerate(lines) if "calico-cni__" in m and "TASK_FAILED" in m)
    level, words = lines[update]
    assert level == logging.WARNING, lines
    assert (
        " TASK_FAILED: cannot download one of service.artifacts_url, cni.calico_uri, "
        "cni.calico_ipam_uri: Failed to launch container: Failed to fetch all URIs for "
        "container '"
    ) in words
    assert words.endswith("': exited with status 1") and "nonexistent" not in words
    named = [
        i
        for i, (level, m) in enumerate(lines)
        if level == logging.WARNING and "cni failed: cannot download cni.calico_uri: " in m
    ]
    assert named and named[0] > update, lines
    others = [(level, m) for level, m in lines if "calico-cni__" in m and "TASK_FAILED" not in m]
    assert all(level == logging.INFO for level, _ in others), others  # its launch, at INFO
