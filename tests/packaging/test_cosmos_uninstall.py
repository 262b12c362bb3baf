"""The package installed and then uninstalled as DC/OS does it, against the devcluster.

`make dist`'s code builds the release into a temporary directory served over HTTP (standing
for the release location, or for a Local Universe), and stamps a copy of `universe/`.
The app is rendered from that copy as Cosmos renders it (`scripts/universe.py`), and run as
Marathon runs it (`marathon.py`: the fetch, the environment, `/bin/sh -c cmd` with the
Python image's PATH, no virtualenv), behind an Admin Router stand-in (`tests/web/adminrouter.py`).
ZooKeeper is real; Mesos is the devcluster (synthetic executors); no systemd or Docker engine
is touched. The uninstall is Cosmos' own sequence (dcos/cosmos `UninstallHandler.scala`,
`runSdkUninstall`, and `ServiceUninstaller.scala`):

1. read `/service/<app>/v1/state/frameworkId` through Admin Router;
2. update the app with `SDK_UNINSTALL=true` (Marathon replaces the task: `upgradeStrategy`
   0/0 kills the old one first);
3. every retry interval (Cosmos: 10 s), until `/service/<app>/v1/plans/deploy` answers 200
   and the framework IDs are the same as before or cannot be read;
4. delete the app.
"""

import functools
import getpass
import http.server
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from calico_dcos.options import load_options
from calico_dcos.store import open_store
from scripts import dist
from scripts import universe as u
from tests.helpers.zookeeper import ZooKeeperServer
from tests.integration.harness import running_cluster, wait_until
from tests.packaging.marathon import MarathonStandIn
from tests.web.adminrouter import SERVICES, admin_router

NAME = "calico-e2e"
# The revert task is a one-shot; the synthetic executor keeps unknown tasks RUNNING.
DURATIONS = {"calico-uninstall": 0.3}


class _Release(http.server.SimpleHTTPRequestHandler):
    """The release location: serves dist/ and records what was fetched."""

    fetched: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.fetched.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """`python -m scripts.dist --out … --universe … --release-url http://127.0.0.1:PORT`."""
    root = tmp_path_factory.mktemp("release")
    out, universe = root / "dist", root / "universe"
    out.mkdir()
    shutil.copytree(u.UNIVERSE, universe)
    handler = functools.partial(_Release, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        pyz = dist.main(["--out", str(out), "--universe", str(universe), "--release-url", url])
        yield SimpleNamespace(pyz=pyz, out=out, universe=universe, url=url)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def zookeeper():
    with ZooKeeperServer() as server:
        yield server


def test_make_dist_names_the_zipapp_by_its_sha256_in_resource_json(release):
    digest = dist.sha256(release.pyz)
    assert release.pyz.name == f"calico-dcos-{dist.version()}-sha256-{digest}.pyz"
    res = u.resource(release.universe)
    assert res["assets"]["uris"]["calico-dcos-pyz"] == f"{release.url}/{release.pyz.name}"
    for image, size in dist.ICON_SIZES.items():
        png = (release.out / Path(res["images"][image]).name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
        assert struct.unpack(">II", png[16:24]) == (size, size)


def test_the_zipapp_runs_on_a_bare_python_without_the_virtualenv(release, tmp_path):
    """The package runs it on python:3.11-slim; here Debian's own /usr/bin/python3 (3.11),
    with nothing of the project installed, stands for that image's interpreter."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHIV_ROOT": str(tmp_path / "shiv")}
    result = subprocess.run(
        ["/usr/bin/python3", "-I", str(release.pyz), "--version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert dist.version() in result.stdout


def test_the_apps_command_refuses_a_zipapp_that_does_not_match_its_name(release, tmp_path):
    tampered = tmp_path / "mirror" / release.pyz.name
    tampered.parent.mkdir()
    tampered.write_bytes(release.pyz.read_bytes() + b"\0")
    app = u.cosmos_render({"service": {"name": NAME}}, universe=release.universe)
    app["fetch"] = [{**app["fetch"][0], "uri": tampered.as_uri()}]
    marathon = MarathonStandIn(app, tmp_path / "sandboxes")
    task = marathon.start()
    code = task.process.wait(60)
    assert code == 1 and "does not match the sha256 in its name" in task.output()


def package_options(cluster, zookeeper) -> dict:
    """What a user would give `dcos package install calico-dcos --options`, for this
    machine: the devcluster's master, the test ZooKeeper, short waits."""
    return {
        "service": {
            "name": NAME,
            "master": cluster.master_url,
            "state": f"zk://{zookeeper.hosts}/dcos-service-{NAME}",
            "user": getpass.getuser(),
            "agent_python": sys.executable,
            "failover_timeout_seconds": 60,
            "uninstall_revert_hosts": True,
        },
        "etcd": {"run_proxy": False},
        "rollout": {"stability_seconds": 0.3, "retry_backoff_seconds": 0.5},
        "node": {"health_check_interval_seconds": 1},
    }


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5)
    except requests.RequestException:
        return None


def _framework_ids(base: str) -> list[str] | None:
    """Cosmos' `getSdkServiceFrameworkIds`: the list, or None when it cannot be read."""
    answer = _get(f"{base}v1/state/frameworkId")
    if answer is None or answer.status_code != 200:
        return None
    return answer.json()


def _uninstall_done(base: str, before: list[str]) -> bool:
    """`ServiceUninstaller.checkSdkUninstallCompleted`: the deploy plan answers 200, and the
    framework IDs are the ones read before, or cannot be read ("ready to be deleted")."""
    plan = _get(f"{base}v1/plans/deploy")
    ids = _framework_ids(base)
    return plan is not None and plan.status_code == 200 and (ids is None or ids == before)


def _most_at_once(timeline: list[dict], task_name: str) -> int:
    running: set[str] = set()
    most = 0
    for e in timeline:
        if e["event"] == "launch" and e["task_name"] == task_name:
            running.add(e["task_id"])
        elif e["event"] == "status" and e.get("state") in ("TASK_FINISHED", "TASK_FAILED"):
            running.discard(e.get("task_id"))
        most = max(most, len(running))
    return most


@pytest.mark.zookeeper
def test_install_then_dcos_package_uninstall(release, zookeeper, tmp_path):
    with (
        running_cluster(agents=2, public_agents=1, synthetic_durations=DURATIONS) as cluster,
        admin_router({}) as router,
    ):
        options = package_options(cluster, zookeeper)
        app = u.cosmos_render(options, universe=release.universe)
        assert app["labels"]["DCOS_COMMONS_UNINSTALL"] == "true"
        marathon = MarathonStandIn(app, tmp_path / "sandboxes")
        base = router.service_url(NAME)
        try:
            installed = marathon.start()
            router.app[SERVICES][NAME] = f"http://127.0.0.1:{installed.port}"
            wait_until(installed.passing, 90, f"the health check\n{installed.output()}")
            deploy = wait_until(
                lambda: (r := _get(f"{base}v1/plans/deploy")) is not None and r.status_code == 200,
                120,
                "the deploy plan to be complete",
            )
            before = _framework_ids(base)
            converged_timeline = cluster.timeline()

            # Cosmos: PUT the app with SDK_UNINSTALL=true; Marathon replaces the task.
            marathon.update_env(SDK_UNINSTALL="true")
            replaced_code = marathon.kill(installed)
            uninstalling = marathon.start()
            router.app[SERVICES][NAME] = f"http://127.0.0.1:{uninstalling.port}"
            wait_until(
                lambda: _uninstall_done(base, before),
                120,
                f"the uninstall plan to be complete\n{uninstalling.output()}",
            )
            healthy_after = uninstalling.passing()
            # Cosmos: DELETE the app; Marathon kills the task.
            removed_code = marathon.kill(uninstalling)
        finally:
            marathon.stop_all()
        timeline, agent_ids = cluster.timeline(), sorted(a.agent_id for a in cluster.agents)

    assert deploy and before and len(before) == 1
    assert replaced_code == 0 and removed_code == 0
    assert healthy_after, "Marathon must leave the finished scheduler alone until Cosmos deletes it"
    assert uninstalling.env["SDK_UNINSTALL"] == "true"
    assert uninstalling.env["MARATHON_APP_ID"] == f"/{NAME}"
    # The install's scheduler left on SIGTERM without tearing the framework down.
    assert not [e for e in converged_timeline if e["event"] == "framework_removed"]
    removed = [e for e in timeline if e["event"] == "framework_removed"]
    assert [e["framework_id"] for e in removed] == before
    daemons = {
        e["task_id"]
        for e in converged_timeline
        if e["event"] == "launch" and e["task_name"] in ("calico-libnetwork", "calico-node")
    }
    killed = {e["task_id"] for e in timeline if e.get("state") == "TASK_KILLED"}
    assert daemons and daemons <= killed
    reverts = [
        e for e in timeline if e["event"] == "launch" and e["task_name"] == "calico-uninstall"
    ]
    assert sorted(e["agent_id"] for e in reverts) == agent_ids
    assert _most_at_once(timeline, "calico-uninstall") == 1  # rollout.max_concurrent_restarts
    store = open_store(options["service"]["state"])
    try:
        assert store.get_framework_id() is None and store.load_agents() == {}
    finally:
        store.close()
    # Both tasks ran the release's zipapp, fetched from the release location.
    assert _Release.fetched.count(f"/{release.pyz.name}") >= 2
    for task in (installed, uninstalling):
        assert load_options(None, {k: v for k, v in task.env.items() if k.startswith("CALICO_")})


def test_the_uninstall_plan_answers_complete_only_once_the_state_is_deleted():
    """Cosmos deletes the app (stopping the scheduler) on the first 200: before the wipe has
    finished, the plan must still be in progress, or state is left behind."""
    from calico_dcos.operator_api import plan_http_status
    from calico_dcos.scheduler import _until_wiped

    steps = [
        {"id": "teardown", "name": "teardown", "status": "COMPLETE", "message": ""},
        {"id": "wipe-state", "name": "wipe-state", "status": "COMPLETE", "message": ""},
    ]
    agent = {"id": "S0", "name": "agent-1", "status": "COMPLETE", "steps": []}
    deregister = {"id": "deregister-service", "name": "deregister-service", "steps": steps}
    view = {"phases": [agent, deregister | {"status": "COMPLETE"}], "status": "COMPLETE"}

    wiping = _until_wiped(view)

    assert plan_http_status(view) == 200 and plan_http_status(wiping) == 202
    assert wiping["phases"][-1]["steps"][1]["status"] == "STARTED"
    assert wiping["phases"][-1]["steps"][0]["status"] == "COMPLETE"
    assert view["phases"][-1]["steps"][1]["status"] == "COMPLETE", "the view is not changed"
