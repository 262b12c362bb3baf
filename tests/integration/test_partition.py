"""An agent partitioned from the master and healed, with the real scheduler over pymesos
sockets against the devcluster (which marks it unreachable after `agent_ping_timeout`, then
re-registers it as `Master::__reregisterSlave` does: apache/mesos src/master/master.cpp).

The scheduler must show the agent as gone while it is, and learn the truth about its tasks
within seconds of its return: not at the periodic implicit reconciliation (10 minutes by
default, left so here)."""

from __future__ import annotations

import requests

from tests.integration.harness import converged, events, running_cluster, scheduler_on, wait_until

ALL_AT_ONCE = {"rollout_max_concurrent_restarts": "100%"}


def test_a_healed_agent_s_tasks_are_reconciled_at_once_and_the_gone_agent_is_shown(tmp_path):
    with (
        running_cluster(agents=2, public_agents=0, agent_ping_timeout=1.0) as cluster,
        scheduler_on(cluster, tmp_path, **ALL_AT_ONCE) as service,
    ):
        base = f"http://127.0.0.1:{service.api.port}"
        wait_until(converged(service), 30, "convergence")
        agent = cluster.agents[0]
        plan = service.scheduler.plan
        tasks = sorted(st.task_id for st in plan.agents[agent.agent_id].steps.values() if st.live)
        cluster.partition_agent(agent.agent_id)
        wait_until(lambda: plan.agents[agent.agent_id].lost, 10, "the scheduler hears it gone")

        status = requests.get(f"{base}/v1/status", timeout=5).json()
        assert f"{agent.hostname} unreachable since " in status["summary"]["message"]
        (gone,) = status["plan"]["gone"]
        assert (gone["id"], gone["unreachable"]) == (agent.agent_id, True)
        assert agent.agent_id not in [p["id"] for p in status["plan"]["phases"]]
        # unreachable (it may come back, Calico unverified there): Degraded, `plan show` 5
        assert status["summary"]["degraded"] is True
        assert any(p.startswith(f"{agent.hostname}: unreachable since ")
                   for p in status["summary"]["problems"])  # fmt: skip
        assert requests.get(f"{base}/v1/plan", timeout=5).json()["degraded"] is True

        cluster.heal_agent(agent.agent_id)
        wait_until(
            lambda: not plan.agents[agent.agent_id].lost and plan.complete,
            10, "the agent back in the plan, every step done again",
        )  # fmt: skip

        def asked() -> list[list[str]]:
            """Explicit RECONCILEs since the heal: the task IDs each named."""
            timeline = cluster.timeline()
            healed = next(i for i, e in enumerate(timeline) if e["event"] == "agent_healed")
            return [
                sorted(task for task, _ in e["named"])
                for e in events(timeline[healed:], "reconcile")
                if e["tasks"]
            ]

        wait_until(lambda: tasks in asked(), 10, "its live tasks reconciled explicitly")
        timeline = cluster.timeline()
        healed = next(i for i, e in enumerate(timeline) if e["event"] == "agent_healed")
        status = requests.get(f"{base}/v1/status", timeout=5).json()

    assert all(agent_id == agent.agent_id for e in events(timeline[healed:], "reconcile")
               for _, agent_id in e["named"])  # fmt: skip
    assert "gone" not in status["plan"] and "unreachable" not in status["summary"]["message"]
    assert status["summary"]["available"] is True
    assert status["summary"]["degraded"] is False
    back = [e for e in events(timeline, "reregistered_update") if e["agent_id"] == agent.agent_id]
    assert sorted(e["task_id"] for e in back) == tasks
