"""An offer too small for a step is explained, over sockets: on `/v1/plan` (which the status
page shows) and once in the log, not once per offer."""

import logging

import requests

from tests.integration.harness import converged, running_cluster, scheduler_on, wait_until


def docker_step(plan: dict, hostname: str) -> dict | None:
    """The docker step (the first, with the etcd proxy off) of the agent's phase."""
    phase = next((p for p in plan["phases"] if p["name"] == hostname), None)
    return phase and next(s for s in phase["steps"] if s["name"] == "docker")


def offers(cluster) -> int:
    return sum(1 for e in cluster.timeline() if e["event"] == "offer")


def test_an_agent_too_small_for_a_step_says_which_resource_is_short(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="calico_dcos.scheduler")
    with (
        running_cluster(agents=1, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path) as service,
    ):
        wait_until(converged(service), 20, "convergence of the agent that fits")
        small = cluster.add_agent(cpus=0.05)
        expected = f"{small.hostname} offers 0.05 cpus; calico-docker needs 0.1"
        url = f"http://127.0.0.1:{service.api.port}/v1/plan"

        def explained() -> dict | None:
            step = docker_step(requests.get(url, timeout=5).json(), small.hostname)
            return step if step and step["message"] == expected else None

        step = wait_until(explained, 10, "the reason on /v1/plan")
        before = offers(cluster)
        wait_until(lambda: offers(cluster) > before + 3, 10, "more offers of the small agent")

    assert step["status"] == "PREPARED"
    assert [r.getMessage() for r in caplog.records if "offers 0.05" in r.getMessage()] == [expected]
