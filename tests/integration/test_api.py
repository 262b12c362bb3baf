"""The scheduler's own HTTP API, over a real socket, while it runs against the devcluster."""

import requests

from tests.integration.harness import converged, running_cluster, scheduler_on, wait_until


def test_health_artifacts_and_reports(tmp_path):
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path, rollout_max_concurrent_restarts="100%") as service,
    ):
        base = f"http://127.0.0.1:{service.api.port}"
        wait_until(converged(service), 20, "convergence")
        agent_id = cluster.agents[0].agent_id

        health = requests.get(f"{base}/v1/health", timeout=5)
        installer = requests.get(f"{base}/v1/artifacts/installer.pyz", timeout=5)
        missing = requests.get(f"{base}/v1/artifacts/nothing.pyz", timeout=5)
        bad = requests.post(f"{base}/v1/agents/{agent_id}/report", data="{", timeout=5)
        report = {"agent_id": agent_id, "step": "docker", "calico_present": True, "found": ["x"]}
        good = requests.post(f"{base}/v1/agents/{agent_id}/report", json=report, timeout=5)
        summary = service.scheduler.summary()
        service.scheduler.fail("test: pretend the driver died")
        unhealthy = requests.get(f"{base}/v1/health", timeout=5)

    assert health.status_code == 200 and health.json()["healthy"] is True
    assert installer.status_code == 200 and installer.content.startswith(b"#!/usr/bin/env python3")
    assert missing.status_code == 404
    assert bad.status_code == 400
    assert good.status_code == 202
    assert "1 already run Calico by other means" in summary["message"]
    assert unhealthy.status_code == 503
    assert "test: pretend the driver died" in unhealthy.json()["reasons"]
