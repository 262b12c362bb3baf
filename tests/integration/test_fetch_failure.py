"""A download that fails names the option that gave its URI (issue 20): on /v1/plan, where
`calico-dcos status`, the page and `local` read it. Real fetches by the devcluster's process
executor, from a file:// URI that does not exist."""

from __future__ import annotations

from calico_dcos.steps import fetch_hint
from tests.integration.harness import cni_standins, running_cluster, scheduler_on, wait_until


def test_fetch_hint_names_the_options_of_what_the_step_fetches():
    mesos = "Failed to fetch all URIs for container 'c1': exited with status 1"
    assert fetch_hint("etcd-proxy", mesos) == f"cannot download etcd.binary_uri: {mesos}"
    assert fetch_hint("cni", mesos).startswith(
        "cannot download service.artifacts_url, cni.calico_uri, cni.calico_ipam_uri: Failed"
    )
    assert fetch_hint("cni", "Command exited with status 1") == "Command exited with status 1"
    assert fetch_hint("node", mesos) == mesos  # an image, not a download of ours


def test_a_cni_plugin_that_cannot_be_downloaded_is_named_by_its_option(tmp_path):
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

    assert "cannot download service.artifacts_url, cni.calico_uri" in message
    assert "/nonexistent/calico" in message
