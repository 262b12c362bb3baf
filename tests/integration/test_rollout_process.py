"""The full chain as real processes: the served installer zipapp, the host stand-ins, restarts.

Three agents, one of them public; the steps really run (fetch from the scheduler's API, the
installer against each agent's host root, container stand-ins for libnetwork and node).
"""

import json
import os
import signal

import psutil

from calico_dcos.devcluster.hostroot import has_dcos_calico
from tests.integration.harness import (
    cni_standins,
    converged,
    running_cluster,
    scheduler_on,
    steps_launched,
    wait_until,
)

CHAIN_WITHOUT_PROXY = ["docker", "cni", "libnetwork", "node"]


def calls(host_root) -> list[list[str]]:
    """What the host stand-ins were asked, as command lines."""
    log = host_root / ".devcluster" / "calls.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [[entry["tool"], *entry["argv"]] for entry in entries]


def processes_in(sandbox_dir) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cwd"]):
        cwd = proc.info.get("cwd") or ""
        if cwd.startswith(str(sandbox_dir)):
            found.append(proc)
    return found


def node_sandbox(cluster, agent_id: str, task_id: str):
    return cluster.workdir / "agents" / agent_id / "sandboxes" / task_id


def test_full_chain_restarts_the_right_agent_unit_and_relaunches_a_killed_node(tmp_path):
    with (
        running_cluster(agents=2, public_agents=1, executor="process") as cluster,
        scheduler_on(
            cluster,
            tmp_path,
            rollout_max_concurrent_restarts="100%",
            cni_restart_agent="true",  # the agent's unit restarted, as Mesos < 1.2 needs
            **cni_standins(tmp_path / "cni"),
        ) as service,
    ):
        wait_until(converged(service), 60, "convergence")
        agents = cluster.agents
        public = next(a for a in agents if a.public)
        private = next(a for a in agents if not a.public)
        public_calls, private_calls = calls(public.host_root), calls(private.host_root)

        node = service.scheduler.plan.agents[private.agent_id].steps["node"].task_id
        victims = wait_until(
            lambda: processes_in(node_sandbox(cluster, private.agent_id, node)), 10, "node"
        )
        for proc in victims:
            os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: not service.scheduler.plan.complete, 10, "the node's death")
        wait_until(converged(service), 40, "the node relaunched")
        timeline = cluster.timeline()

    for agent in agents:
        expected = CHAIN_WITHOUT_PROXY + (["node"] if agent is private else [])
        assert steps_launched(timeline, agent.agent_id) == expected
    assert ["systemctl", "restart", "dcos-mesos-slave-public"] in public_calls
    assert ["systemctl", "restart", "dcos-mesos-slave"] in private_calls
    assert ["systemctl", "restart", "dcos-mesos-slave"] not in public_calls


def test_an_agent_that_already_runs_calico_is_reported_and_gets_no_calico_steps(tmp_path):
    with running_cluster(
        agents=1, public_agents=0, dcos_calico_agents=1, executor="process"
    ) as cluster:
        dcos_calico = next(a for a in cluster.agents if has_dcos_calico(a.host_root))
        only_oneshots = {"node_enable": "false", "libnetwork_enable": "false"}
        standins = cni_standins(tmp_path / "cni")
        with scheduler_on(cluster, tmp_path, **only_oneshots, **standins) as s:
            wait_until(converged(s), 30, "convergence")
            plan = s.scheduler.plan_view()
            timeline = cluster.timeline()
            daemon_json = dcos_calico.host_root / "etc" / "docker" / "daemon.json"

    assert steps_launched(timeline, dcos_calico.agent_id) == ["docker"]
    assert not daemon_json.exists() or "cluster-store" not in daemon_json.read_text()
    phase = next(ph for ph in plan["phases"] if ph["id"] == dcos_calico.agent_id)
    assert phase["status"] == "COMPLETE"
    assert all("already present" in step["message"] for step in phase["steps"])
