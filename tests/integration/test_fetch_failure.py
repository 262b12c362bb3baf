"""A download that fails names the option that gave its URI (issue 20): on /v1/plan, where
`calico-dcos status`, the page and `local` read it. Real fetches by the devcluster's process
executor, from a file:// URI that does not exist."""

from __future__ import annotations

import logging

from calico_dcos.options import load_options
from calico_dcos.steps import fetch_hint
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


def test_a_cni_plugin_that_cannot_be_downloaded_is_named_by_its_option(tmp_path, caplog):
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

        wait_until(lambda: "cni.calico_uri" in cni_message(), 60, "the failed download")
        message = cni_message()

    # The trial's case: only cni.calico_uri was broken, and only it is named.
    assert "cannot download cni.calico_uri: Failed to launch container: Failed to fetch " in message
    assert "/nonexistent/calico" in message
    assert "service.artifacts_url" not in message and "calico_ipam_uri" not in message
    # A failed step is logged at WARNING (the trial found it at INFO), its launch at INFO.
    failed = [r for r in caplog.records if "calico-cni__" in r.getMessage()]
    words = " TASK_FAILED: cannot download cni.calico_uri"
    assert any(r.levelno == logging.WARNING and words in r.getMessage() for r in failed), [
        (r.levelname, r.getMessage()) for r in failed
    ]
    assert all(r.levelno == logging.INFO for r in failed if "TASK_FAILED" not in r.getMessage())
