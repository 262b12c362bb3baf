"""A stalled agent over sockets (issue: held offers withheld a stalled agent from other
frameworks): the devcluster holds one agent's calico-docker task in STAGING (its fault
`hold-next-task`, as an agent that never starts a task) while a second framework, a plain
pymesos scheduler (`tests.helpers.devcluster.Framework`), declines every offer for 1 s.
The plan holds the stalled agent's offer one hold period, then releases it and declines
the agent's offers until the stuck task's launch deadline: the second framework gets the
agent within about one hold period, and the plan is offered it no more. The step says how
long it has waited, the plan is Degraded, and `plan restart` kills the task and launches it
again within the restart budget."""

import logging
import threading
import time

import requests

from tests.helpers.devcluster import Framework, framework_info
from tests.integration.harness import (
    converged,
    events,
    most_restarting_at_once,
    running_cluster,
    scheduler_on,
    steps_launched,
    wait_until,
)

HOLD = 1.0  # offer_hold_seconds
STALLED = 1.0  # stalled_seconds


def test_a_stalled_agent_goes_to_other_frameworks_says_so_and_restarts_on_command(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="calico_dcos.scheduler")
    lock = threading.Lock()
    seen: list[tuple[float, str]] = []  # the second framework's offers: (when, agent ID)

    def decline(fw: Framework, offers: list[dict]) -> None:
        with lock:
            seen.extend((time.monotonic(), o["agent_id"]["value"]) for o in offers)
        fw.driver.declineOffer([o["id"] for o in offers], {"refuse_seconds": 1.0})

    timings = {"offer_hold_seconds": HOLD, "stalled_seconds": STALLED}
    timings["launch_timeout_seconds"] = 120.0  # the stall outlives the test
    with running_cluster(agents=2, public_agents=0) as cluster:
        cluster.hold_next_task("calico-docker")
        other = Framework(cluster, framework_info(name="other", roles=["*"]), decline)
        with other, scheduler_on(cluster, tmp_path, timings=timings) as service:
            plan = service.scheduler.plan
            url = f"http://127.0.0.1:{service.api.port}"

            def stalled_agent() -> str | None:
                held = events(cluster.timeline(), "launch_held")
                return held[0]["agent_id"] if held else None

            agent_id = wait_until(stalled_agent, 20, "calico-docker held in STAGING")
            hostname = plan.agents[agent_id].hostname
            wait_until(lambda: agent_id in plan._unheld, 10, "its held offer released")
            released = time.monotonic()
            revives = service.scheduler.counters["REVIVE"]

            def offered_to_other() -> list[float]:
                with lock:
                    return [t for t, a in seen if a == agent_id and t > released]

            wait_until(lambda: len(offered_to_other()) >= 3, 10, "the agent offered to others")
            first = offered_to_other()[0]
            timeline = cluster.timeline()
            ours = [
                e
                for e in events(timeline, "offer")
                if e["agent_id"] == agent_id and e["t"] > released + HOLD
            ]
            mine = {e["offer_id"] for e in events(timeline, "decline")} - {
                o["id"]["value"] for o in other.offers
            }
            assert service.scheduler.counters["REVIVE"] == revives  # nothing lifted its filter
            # after its two roles' offers were declined, the plan was not offered it again
            assert [e for e in ours if e["offer_id"] in mine] == []
            assert first - released < 2 * HOLD + 1.0  # the other framework got it at once

            step = next(
                s
                for p in requests.get(f"{url}/v1/plan", timeout=5).json()["phases"]
                if p["name"] == hostname
                for s in p["steps"]
                if s["name"] == "docker"
            )
            summary = requests.get(f"{url}/v1/status", timeout=5).json()["summary"]
            record = requests.get(f"{url}/v1/agents/{agent_id}", timeout=5).json()
            metrics = requests.get(f"{url}/metrics", timeout=5).text

            answer = requests.post(
                f"{url}/v1/plan/restart", params={"phase": hostname, "step": "docker"}, timeout=5
            ).json()
            wait_until(converged(service), 30, "convergence after the restart")
            timeline = cluster.timeline()

    assert step["status"] == "STARTING"
    assert "still TASK_STAGING on its agent: the agent has not started it" in step["message"]
    assert step["message"].startswith("launched ")
    assert summary["degraded"] and any("still TASK_STAGING" in p for p in summary["problems"])
    assert "still TASK_STAGING" in record["steps"]["docker"]["message"]
    assert "calico_dcos_offers_held " in metrics
    assert (
        "had not started: killed, and launched again within the restart budget"
        in (answer["message"])
    )
    held = events(timeline, "launch_held")[0]["task_id"]
    assert held in [e["task_id"] for e in events(timeline, "kill")]
    assert steps_launched(timeline, agent_id).count("docker") == 2
    # cni restarts nothing on this Mesos (1.11): Docker restarts are the budget's
    assert most_restarting_at_once(timeline, ("calico-docker",)) == 1
    released_lines = [r for r in caplog.records if "released its offer" in r.getMessage()]
    assert any(hostname in r.getMessage() for r in released_lines)
    assert sum("still TASK_STAGING" in r.getMessage() for r in caplog.records) == 1


def test_a_stalled_step_force_completed_shows_forced_and_degraded_says_so_everywhere(tmp_path):
    """`/v1/plan` says Degraded as `/v1/status` does while a launch is stalled; the operator
    force-completes the step (its task, never started, is killed): the step shows FORCED on
    `/v1/plan` and in `calico-dcos plan show`, not plain done, also after the scheduler
    restarts from its stored records; the plan's top level, `plan show`'s header and `status`
    count it. A force-complete of a step that ran (cni) changes nothing and says so."""
    from click.testing import CliRunner

    from calico_dcos.cli import main

    timings = {"stalled_seconds": STALLED, "launch_timeout_seconds": 120.0}
    with running_cluster(agents=1, public_agents=0) as cluster:
        cluster.hold_next_task("calico-docker")
        with scheduler_on(cluster, tmp_path, timings=timings) as service:
            url = f"http://127.0.0.1:{service.api.port}"

            def plan_and_status() -> tuple[dict, dict]:
                plan = requests.get(f"{url}/v1/plan", timeout=5).json()
                return plan, requests.get(f"{url}/v1/status", timeout=5).json()

            wait_until(lambda: plan_and_status()[0]["degraded"], 20, "Degraded on /v1/plan")
            stalled_plan, stalled_status = plan_and_status()
            hostname = stalled_plan["phases"][0]["name"]
            requests.post(
                f"{url}/v1/plan/force-complete",
                params={"phase": hostname, "step": "docker"},
                timeout=5,
            ).raise_for_status()
            wait_until(converged(service), 30, "convergence after the force-complete")
            done_plan, _ = plan_and_status()
            shown = CliRunner().invoke(main, ["plan", "show", "--url", url])
            status_shown = CliRunner().invoke(main, ["status", "--url", url])
            again_answer = CliRunner().invoke(
                main, ["plan", "force-complete", "--url", url, "--phase", hostname, "--step", "cni"]
            )
            after_again, _ = plan_and_status()
        with scheduler_on(cluster, tmp_path, timings=timings) as again:
            wait_until(converged(again), 30, "convergence of the restarted scheduler")
            url = f"http://127.0.0.1:{again.api.port}"
            restarted = requests.get(f"{url}/v1/plan", timeout=5).json()
        timeline = cluster.timeline()
        agent_id = cluster.agents[0].agent_id

    assert stalled_status["summary"]["degraded"] and stalled_status["plan"]["degraded"]
    docker = [s for s in done_plan["phases"][0]["steps"] if s["name"] == "docker"]
    assert docker == [
        {**docker[0], "status": "COMPLETE", "message": "force-completed", "forced": True}
    ]
    assert not done_plan["degraded"]
    assert [s.get("forced", False) for s in restarted["phases"][0]["steps"]] == [
        s.get("forced", False) for s in done_plan["phases"][0]["steps"]
    ]
    forced_words = (
        "1 of 1 agents done; 1 step force-completed (its task may never have run: "
        "`calico-dcos plan restart` runs it)"
    )
    assert done_plan["forced_steps"] == 1 and done_plan["message"] == forced_words
    assert restarted["forced_steps"] == 1
    assert status_shown.output.splitlines()[0] == f"calico: {forced_words}"
    assert again_answer.output.strip() == (
        f"Received cmd: force-complete phase={hostname} step=cni: {hostname}: cni was done "
        "already (its task finished): nothing changed; `calico-dcos plan restart` runs it again"
    )
    assert after_again == done_plan  # no FORCED mark, no count: its task did run
    lines = shown.output.splitlines()
    assert lines[:2] == [
        "deploy (parallel): COMPLETE   Degraded: no   Forced: 1 step",
        forced_words,
    ]
    row = next(line for line in lines if line.startswith(hostname))
    assert row.split()[1:] == ["FORCED", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE"]
    held = events(timeline, "launch_held")[0]["task_id"]
    assert held in [e["task_id"] for e in events(timeline, "kill")]  # killed before it started
    assert steps_launched(timeline, agent_id).count("docker") == 1
