"""A failure shows its reason where the operator looks, and a failure the host causes is not
retried with fresh restarts for ever (issue 13, case 3).

Real scheduler and devcluster over sockets, the served installer zipapp running against each
agent's host root, with the project's systemctl/docker stand-ins for systemd and Docker.
"""

import json
import logging

import requests

from tests.integration.harness import (
    cni_standins,
    running_cluster,
    scheduler_on,
    steps_launched,
    wait_until,
)


def docker_restarts(host_root) -> int:
    log = host_root / ".devcluster" / "calls.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return sum(
        1 for e in entries if e["tool"] == "systemctl" and e["argv"][:2] == ["restart", "docker"]
    )


def test_a_host_caused_failure_stops_after_the_cap_and_says_why_while_others_go_on(tmp_path):
    with running_cluster(agents=2, public_agents=0, executor="process") as cluster:
        broken, healthy = cluster.agents
        daemon_json = broken.host_root / "etc" / "docker" / "daemon.json"
        daemon_json.parent.mkdir(parents=True, exist_ok=True)
        daemon_json.write_text("[1, 2]\n")  # valid JSON, but not the object dockerd needs
        with scheduler_on(
            cluster, tmp_path, rollout_max_host_failures="2",
            **cni_standins(tmp_path / "cni"),
        ) as service:  # fmt: skip
            plan = service.scheduler.plan

            def gave_up():
                st = plan.agents.get(broken.agent_id)
                return st is not None and st.steps.get("docker") and st.steps["docker"].gave_up

            wait_until(gave_up, 60, "the docker step to give up")
            wait_until(lambda: plan.agents[healthy.agent_id].agent_id in plan._done, 60,
                       "the healthy agent to finish")  # fmt: skip
            url = f"http://127.0.0.1:{service.api.port}"
            plan_doc = requests.get(f"{url}/v1/plan", timeout=5)
            summary = service.scheduler.summary()
            timeline = cluster.timeline()
            restarts, left = docker_restarts(broken.host_root), daemon_json.read_text()

    assert steps_launched(timeline, broken.agent_id) == ["docker", "docker"]
    assert restarts == 0  # refused before any restart
    assert left == "[1, 2]\n"  # left as it was
    assert plan_doc.status_code == 417
    (error,) = plan_doc.json()["errors"]
    assert "is not a JSON object" in error
    assert "stopped after 2 failures caused by the host" in error
    assert "calico-dcos plan restart" in error
    assert any("is not a JSON object" in p for p in summary["problems"])


def test_a_command_that_fails_without_a_report_shows_the_end_of_its_stderr(tmp_path, caplog):
    """`service.agent_python` names an interpreter the agent lacks: the shell says so on the
    task's stderr and exits 127, and no installer runs to report it. The scheduler reads the
    end of that stderr from the agent's `/files/read` (the devcluster agent's own listener,
    at the address its offers' `url` names) and the words reach the plan, the agent records
    and the log; the command executor's own log line on that stderr is left out."""
    missing = str(tmp_path / "no-such-dir" / "python3")
    with running_cluster(agents=1, public_agents=0, executor="process") as cluster:
        (agent,) = cluster.agents
        with (
            caplog.at_level(logging.INFO, logger="calico_dcos"),
            scheduler_on(
                cluster, tmp_path, service_agent_python=missing, rollout_max_host_failures="1"
            ) as service,
        ):
            plan = service.scheduler.plan

            def docker_reason() -> str:
                record = plan.agents.get(agent.agent_id)
                step = record.steps.get("docker") if record else None
                return step.reason if step else ""

            wait_until(docker_reason, 30, "the docker step's stderr to be read")
            url = f"http://127.0.0.1:{service.api.port}"
            plan_doc = requests.get(f"{url}/v1/plan", timeout=5).json()
            agents_doc = requests.get(f"{url}/v1/agents", timeout=5).json()
            reads = [e for e in cluster.timeline() if e["event"] == "files_read"]

    not_found = f"{missing}: not found"
    assert not_found in docker_reason()
    assert "executor.cpp" not in docker_reason()  # the executor's own glog line
    assert agent.port != 0 and reads and all(e["agent_id"] == agent.agent_id for e in reads)
    (error,) = plan_doc["errors"]
    assert not_found in error and "(Command exited with status 127)" in error
    assert not_found in json.dumps(agents_doc)
    logged = [r.getMessage() for r in caplog.records]
    assert any(not_found in line and "docker failed" in line for line in logged)
