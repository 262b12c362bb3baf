"""The scheduler's own HTTP API, over a real socket, while it runs against the devcluster."""

import os

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
        token = {"Authorization": f"Bearer {service.scheduler.report_key.token(agent_id)}"}
        report_url = f"{base}/v1/agents/{agent_id}/report"
        bad = requests.post(report_url, data="{", headers=token, timeout=5)
        report = {"agent_id": agent_id, "step": "docker", "calico_present": True, "found": ["x"]}
        good = requests.post(report_url, json=report, headers=token, timeout=5)
        summary = service.scheduler.summary()
        service.scheduler.fail("test: pretend the driver died")
        unhealthy = requests.get(f"{base}/v1/health", timeout=5)

    assert health.status_code == 200 and health.json()["healthy"] is True
    assert health.json()["status"] == "healthy"
    assert installer.status_code == 200 and installer.content.startswith(b"#!/usr/bin/env python3")
    assert missing.status_code == 404
    assert bad.status_code == 400
    assert good.status_code == 202
    assert "1 already run Calico by other means" in summary["message"]
    assert unhealthy.status_code == 503 and unhealthy.json()["status"] == "broken"
    assert "test: pretend the driver died" in unhealthy.json()["reasons"]


def test_the_scheduler_authenticates_as_its_principal_with_the_secret_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    auth = {"service_principal": "calico", "service_secret_file": str(secret)}
    with (
        running_cluster(agents=1, public_agents=0, credentials={"calico": "s3cret"}) as cluster,
        scheduler_on(cluster, tmp_path, rollout_max_concurrent_restarts="100%", **auth) as svc,
    ):
        wait_until(converged(svc), 20, "convergence as an authenticated framework")
        info = svc.scheduler.driver.framework

    assert info["principal"] == "calico"
    assert {"type": "MULTI_ROLE"} in info["capabilities"]
    assert info["checkpoint"] is True and info["failover_timeout"] == 60.0


def test_health_says_waiting_while_no_master_answers_and_framework_id_follows_the_store(
    tmp_path,
):
    """Waiting is not broken: Marathon counts 202 as passing, so a scheduler that waits on a
    master is not killed; `/v1/state/frameworkId` answers 404 until there is an ID."""
    from calico_dcos.options import load_options
    from calico_dcos.service import start_service
    from tests.integration.harness import options_env

    env = options_env(tmp_path / "state", "127.0.0.1:1")  # no master listens there
    service = start_service(
        load_options(None, env), host="127.0.0.1", port=0, artifacts_dir=tmp_path / "a"
    )
    try:
        base = f"http://127.0.0.1:{service.api.port}"
        waiting = requests.get(f"{base}/v1/health", timeout=5)
        no_id = requests.get(f"{base}/v1/state/frameworkId", timeout=5)
    finally:
        service.stop()
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path / "run") as service,
    ):
        base = f"http://127.0.0.1:{service.api.port}"
        wait_until(lambda: service.scheduler.framework_id(), 20, "a framework ID")
        framework_id = requests.get(f"{base}/v1/state/frameworkId", timeout=5)
        stored = service.scheduler.framework_id()

    assert waiting.status_code == 202
    assert waiting.json() == {
        "status": "waiting",
        "healthy": False,
        "reasons": ["not subscribed to a Mesos master"],
    }
    assert no_id.status_code == 404
    assert framework_id.status_code == 200 and framework_id.json() == [stored]


def test_health_says_waiting_for_the_leader_lock_while_another_scheduler_holds_it(tmp_path):
    """A second scheduler on the same state answers "waiting" (202, which Marathon counts as
    passing) while it waits for the lock, instead of not answering at all."""
    from tests.integration.harness import start_scheduler, start_waiting_scheduler

    with running_cluster(agents=1, public_agents=0) as cluster:
        first = start_scheduler(cluster, tmp_path)
        second = []
        port, start = start_waiting_scheduler(cluster, tmp_path, second)
        try:
            base = f"http://127.0.0.1:{port}"
            waiting = wait_until(lambda: _answer(f"{base}/v1/health"), 20, "the second API")
            first.stop()
            start.join(30)
            healthy = wait_until(
                lambda: (r := _answer(f"{base}/v1/health")) and r.status_code == 200 and r,
                20,
                "the second scheduler to take over",
            )
        finally:
            start.join(30)
            for service in second:
                service.stop()

    assert waiting.status_code == 202 and waiting.json()["status"] == "waiting"
    # The first scheduler is this process: the second names it as the lock's holder.
    assert waiting.json()["reasons"] == [
        f"waiting to be the leader of {tmp_path / 'state'}: another scheduler holds its lock "
        f"(pid {os.getpid()} on this host); this one takes over when it stops"
    ]
    assert healthy.json()["status"] == "healthy"


def _answer(url: str):
    try:
        return requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None
