"""Issue 13 §3, the installer's side, through the whole chain: an agent whose dockerd already
has a cluster store from a flag (no daemon.json) is not edited, Docker is not restarted, and
the step ends at its first attempt, where it used to make dockerd refuse to start and be
retried for ever with two Docker restarts each time.

The agent's docker unit and its flag are modelled by the host stand-ins (no systemd can run
here); the real engine's answer to the same flag is in
tests/installer/test_installer_docker_engine.py.

The trial's case (a changed option was not applied, and the step said done): the flagged
agent's step is done WITH the installer's warning, on /v1/plan, /v1/agents, /v1/status and in
the log; then the cluster store option changes, and the docker step runs again on both agents:
the daemon.json the installer wrote is its own and is replaced, the flag is still left alone.
"""

import json
import logging
import subprocess
import sys
from pathlib import Path

import requests

from calico_dcos.options import load_options
from tests.integration.harness import (
    cni_standins,
    converged,
    launch_counts,
    options_env,
    running_cluster,
    scheduler_on,
    start_scheduler,
    wait_until,
)
from tests.integration.test_rollout_process import calls

FLAG_STORE = "etcd://192.0.2.5:2379"


def test_a_cluster_store_from_a_dockerd_flag_is_left_alone_at_the_first_attempt(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    only_oneshots = {"node_enable": "false", "libnetwork_enable": "false"}
    with running_cluster(agents=1, public_agents=0, executor="process") as cluster:
        (plain,) = cluster.agents
        flagged = cluster.add_agent(docker_flags=["--cluster-store", FLAG_STORE])
        standins = cni_standins(tmp_path / "cni")
        with scheduler_on(cluster, tmp_path, **only_oneshots, **standins) as service:
            wait_until(converged(service), 60, "convergence")
            timeline = cluster.timeline()
            host_calls = calls(flagged.host_root)
            daemon_json = (flagged.host_root / "etc" / "docker" / "daemon.json").exists()
            url = f"http://127.0.0.1:{service.api.port}"
            wait_until(lambda: "done with a warning" in step_message(url, flagged), 10,
                       "the installer's warning on /v1/plan")  # fmt: skip
            flagged_docker = step_of(service, flagged.agent_id, "docker")
            status = requests.get(f"{url}/v1/status", timeout=5).json()
            agents = requests.get(f"{url}/v1/agents", timeout=5).json()
            ours = plain.host_root / "etc" / "docker" / "daemon.json"
            first = json.loads(ours.read_text())["cluster-store"]

            new_store = "etcd://192.0.2.9:2379"
            env = options_env(tmp_path / "state", cluster.master_url,
                              docker_cluster_store=new_store, **only_oneshots,
                              **standins)  # fmt: skip
            service.scheduler.change_options(load_options(None, env))
            wait_until(lambda: json.loads(ours.read_text())["cluster-store"] == new_store, 60,
                       "the plain agent's daemon.json to get the new store")  # fmt: skip
            wait_until(converged(service), 60, "convergence after the change")
            again = cluster.timeline()[len(timeline) :]
            after = step_message(url, flagged)

    assert launch_counts(timeline)[(flagged.agent_id, "calico-docker")] == 1
    assert ["docker", "info", "--format", "{{json .}}"] in host_calls
    assert ["systemctl", "restart", "docker"] not in host_calls
    assert not daemon_json
    assert FLAG_STORE in flagged_docker and "set by a dockerd flag" in flagged_docker
    assert status["summary"]["degraded"]
    assert any(FLAG_STORE in p and "warning" in p for p in status["summary"]["problems"])
    assert FLAG_STORE in json.dumps(agents)
    assert any(FLAG_STORE in r.getMessage() for r in caplog.records)
    assert first != new_store  # the installer's own value was replaced, not left alone
    relaunched = {e["agent_id"] for e in again if e["event"] == "launch"}
    assert relaunched == {plain.agent_id, flagged.agent_id}
    assert "192.0.2.9:2379" in after and FLAG_STORE in after  # still left alone, still says


def step_of(service, agent_id: str, step: str) -> str:
    """The step's message on the scheduler's own plan view."""
    for phase in service.scheduler.plan_view()["phases"]:
        if phase["id"] == agent_id:
            return next(s["message"] for s in phase["steps"] if s["name"] == step)
    return ""


def step_message(url: str, agent) -> str:
    """The docker step's message for `agent` on /v1/plan."""
    for phase in requests.get(f"{url}/v1/plan", timeout=5).json()["phases"]:
        if phase["id"] == agent.agent_id:
            return next(s["message"] for s in phase["steps"] if s["name"] == "docker")
    return ""


CLI = [str(Path(sys.executable).with_name("calico-dcos"))]


def plan_command(url: str, *args: str) -> subprocess.CompletedProcess:
    """`calico-dcos plan …` as an operator runs it, against the scheduler's API."""
    return subprocess.run(
        [*CLI, "plan", *args, "--url", url], capture_output=True, text=True, timeout=30
    )


def docker_step(url: str, agent) -> dict:
    """The agent's docker step on /v1/plan."""
    for phase in requests.get(f"{url}/v1/plan", timeout=5).json()["phases"]:
        if phase["id"] == agent.agent_id:
            return next(s for s in phase["steps"] if s["name"] == "docker")
    return {}


def test_an_operator_acknowledges_the_warning_and_a_restarted_scheduler_keeps_it(tmp_path):
    """The flagged agent's docker step is done with the installer's warning: `plan show` exits
    5 (Degraded). `plan force-complete` of it acknowledges the warning: /v1/plan and
    /v1/agents say so and when, the plan is no longer Degraded (`plan show` exits 0, saying
    the words and the acknowledgement). A new scheduler on the same state (a restart, or a
    failover to another instance) still shows it acknowledged; `plan restart` runs the step
    again, whose task warns again, not acknowledged: Degraded once more."""
    only_oneshots = {"node_enable": "false", "libnetwork_enable": "false"}
    options = {**only_oneshots, **cni_standins(tmp_path / "cni")}
    with running_cluster(agents=0, public_agents=0, executor="process") as cluster:
        flagged = cluster.add_agent(docker_flags=["--cluster-store", FLAG_STORE])
        phase = ["--phase", flagged.hostname, "--step", "docker"]
        with scheduler_on(cluster, tmp_path, **options) as service:
            url = f"http://127.0.0.1:{service.api.port}"
            wait_until(lambda: docker_step(url, flagged).get("warning"), 60, "the warning")
            warned = plan_command(url, "show")
            answer = plan_command(url, "force-complete", *phase)
            acknowledged = docker_step(url, flagged)
            plan = requests.get(f"{url}/v1/plan", timeout=5).json()
            record = requests.get(f"{url}/v1/agents/{flagged.agent_id}", timeout=5).json()
            shown = plan_command(url, "show")
        service = start_scheduler(cluster, tmp_path, **options)  # the same state
        try:
            url = f"http://127.0.0.1:{service.api.port}"
            wait_until(converged(service), 60, "the new scheduler reconciled")
            after_restart = docker_step(url, flagged)
            restarted_plan = requests.get(f"{url}/v1/plan", timeout=5).json()
            task = after_restart["id"]
            plan_command(url, "restart", *phase).check_returncode()
            wait_until(
                lambda: (s := docker_step(url, flagged))["id"] != task and s.get("warning"),
                60,
                "the step run again, with the installer's warning again",
            )
            again = docker_step(url, flagged)
            warned_again = plan_command(url, "show")
        finally:
            service.stop()

    assert warned.returncode == 5 and "Degraded: yes" in warned.stdout
    assert "docker: done with a warning: " in warned.stdout and FLAG_STORE in warned.stdout
    assert answer.returncode == 0 and "acknowledged by an operator at " in answer.stdout
    assert acknowledged["status"] == "COMPLETE" and "forced" not in acknowledged
    assert acknowledged["message"].startswith(
        "done with a warning, acknowledged by an operator at "
    )
    assert FLAG_STORE in acknowledged["message"]
    assert acknowledged["warning_acknowledged"].endswith("Z")
    assert plan["degraded"] is False and plan["acknowledged_warnings"] == 1
    docker_record = record["steps"]["docker"]
    assert FLAG_STORE in docker_record["warning"] and docker_record["warning_acknowledged_at"] > 0
    assert shown.returncode == 0 and "Acknowledged: 1 warning" in shown.stdout
    assert acknowledged["message"] in shown.stdout
    assert after_restart == acknowledged and restarted_plan["degraded"] is False
    assert "warning_acknowledged" not in again and FLAG_STORE in again["message"]
    assert warned_again.returncode == 5
