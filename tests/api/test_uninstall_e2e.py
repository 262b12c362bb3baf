"""`calico-dcos uninstall --revert-hosts` end to end: a converged rollout on the devcluster,
then the real scheduler in uninstall mode kills, reverts within the budget, tears down, wipes.

The uninstall runs as `calico-dcos uninstall` runs it: `start_service` with the uninstall as
the scheduler's core.
"""

import requests

from calico_dcos.options import load_options
from calico_dcos.plans import uninstalling
from calico_dcos.service import start_service
from calico_dcos.store import open_store
from tests.integration.harness import (
    TIMINGS,
    converged,
    options_env,
    running_cluster,
    scheduler_on,
    wait_until,
)

# The revert task is a one-shot; the synthetic executor keeps unknown tasks RUNNING.
DURATIONS = {"calico-uninstall": 0.3}


def test_uninstall_kills_reverts_one_agent_at_a_time_tears_down_and_wipes(tmp_path):
    with running_cluster(agents=2, public_agents=1, synthetic_durations=DURATIONS) as cluster:
        with scheduler_on(cluster, tmp_path) as deployed:
            wait_until(converged(deployed), 20, "convergence")
            framework_id = deployed.scheduler.plan.framework_id
        daemons = {
            e["task_id"] for e in cluster.timeline()
            if e["event"] == "launch" and e["task_name"] in ("calico-libnetwork", "calico-node")
        }  # fmt: skip

        options = load_options(None, options_env(tmp_path / "state", cluster.master_url))
        service = start_service(
            options,
            core=uninstalling(revert_hosts=True),
            host="127.0.0.1",
            port=0,
            artifacts_dir=tmp_path / "artifacts",
            timings=TIMINGS,
            tick_seconds=0.1,
        )
        try:
            url = f"http://127.0.0.1:{service.api.port}"
            plan = requests.get(f"{url}/v1/plan", timeout=5).json()
            wait_until(service.scheduler.uninstalled.is_set, 30, "the uninstall")
            done = requests.get(f"{url}/v1/plan", timeout=5)
            health = requests.get(f"{url}/v1/health", timeout=5)
        finally:
            service.stop()
        timeline, agent_ids = cluster.timeline(), sorted(a.agent_id for a in cluster.agents)

    assert plan["phases"][-1]["name"] == "deregister-service"
    assert done.status_code == 200 and done.json()["status"] == "COMPLETE"
    assert health.status_code == 200
    killed = {e["task_id"] for e in _events(timeline, "status") if e["state"] == "TASK_KILLED"}
    assert daemons <= killed
    reverts = [e for e in _events(timeline, "launch") if e["task_name"] == "calico-uninstall"]
    assert sorted(e["agent_id"] for e in reverts) == agent_ids
    assert _most_at_once(timeline, "calico-uninstall") == 1
    last_kill = max(i for i, e in enumerate(timeline) if e.get("task_id") in daemons)
    first_revert = min(i for i, e in enumerate(timeline) if e in reverts)
    assert last_kill < first_revert
    removed = [e for e in timeline if e["event"] == "framework_removed"]
    assert [e["framework_id"] for e in removed] == [framework_id]
    store = open_store(str(tmp_path / "state"))
    assert store.get_framework_id() is None and store.load_agents() == {}


def _events(timeline: list[dict], kind: str) -> list[dict]:
    return [e for e in timeline if e["event"] == kind]


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


def test_uninstall_with_revert_hosts_ends_when_an_agent_is_gone_and_names_it(tmp_path):
    """Issue 13 case 4: the agent is removed from Mesos while no scheduler runs."""
    with running_cluster(agents=2, public_agents=0, synthetic_durations=DURATIONS) as cluster:
        with scheduler_on(cluster, tmp_path) as deployed:
            wait_until(converged(deployed), 20, "convergence")
        gone, kept = cluster.agents
        cluster.remove_agent(gone.agent_id)

        options = load_options(None, options_env(tmp_path / "state", cluster.master_url))
        service = start_service(
            options, core=uninstalling(revert_hosts=True), host="127.0.0.1", port=0,
            artifacts_dir=tmp_path / "artifacts", timings=TIMINGS, tick_seconds=0.1,
        )  # fmt: skip
        try:
            wait_until(service.scheduler.uninstalled.is_set, 30, "the uninstall")
            message = service.scheduler.summary()["message"]
        finally:
            service.stop()
        timeline = cluster.timeline()

    reverts = [e for e in _events(timeline, "launch") if e["task_name"] == "calico-uninstall"]
    assert [e["agent_id"] for e in reverts] == [kept.agent_id]
    assert message.endswith(f"; gone, not reverted: {gone.hostname}")
