"""Rollout rules on the devcluster's synthetic executor: fast, many agents."""

import pytest

from tests.integration.harness import (
    converged,
    most_restarting_at_once,
    running_cluster,
    scheduler_on,
    steps_launched,
    wait_until,
)

CHAIN = ["etcd-proxy", "docker", "cni", "libnetwork", "node"]


def test_every_agent_runs_the_enabled_steps_in_order(tmp_path):
    with running_cluster(agents=3, public_agents=1) as cluster:
        with scheduler_on(cluster, tmp_path, etcd_run_proxy="true") as service:
            wait_until(converged(service), 20, "convergence")
            timeline, agents = cluster.timeline(), cluster.agents

    for agent in agents:
        assert steps_launched(timeline, agent.agent_id) == CHAIN
