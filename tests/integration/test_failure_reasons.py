"""A failure shows its reason where the operator looks, and a failure the host causes is not
retried with fresh restarts for ever (issue 13, case 3).

Real scheduler and devcluster over sockets, the served installer zipapp running against each
agent's host root, with the project's systemctl/docker stand-ins for systemd and Docker.
"""

import json

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
