"""Failures say why, and a failure the host causes stops after `rollout.max_host_failures`
(issue 13, case 3): the decision core, with the plan simulator."""

from calico_dcos.core.failures import exit_status, failure_words, host_caused
from tests.helpers.plan_sim import Sim

NOT_FOUND = "Command exited with status 127"


def next_docker(sim: Sim) -> None:
    """Offer, advance and wait until S0 launches the docker step once more."""
    before = sim.steps_launched("S0").count("docker")
    for _ in range(20):
        if sim.steps_launched("S0").count("docker") > before:
            return
        sim.offer("S0")
        sim.advance()
        sim.tick(10.0)
    raise AssertionError(f"docker not launched again: {sim.core.summary(sim.now)}")


def failing_docker(sim: Sim, message: str = NOT_FOUND, **extra) -> str:
    """Run the chain to the next docker launch on S0 and fail it; its task ID."""
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    sim.update(task, "TASK_FAILED", message=message, **extra)
    return task


def test_mesos_words_give_the_exit_status_and_the_shells_meaning():
    assert exit_status("Command exited with status 3") == 3
    assert exit_status("Command terminated with signal Killed") is None
    assert host_caused(False, {"message": NOT_FOUND})
    assert not host_caused(False, {"message": "Command exited with status 1"})
    assert failure_words("", {"message": NOT_FOUND}).startswith(
        "a command of the step is not on the agent: check service.agent_python"
    )
    assert failure_words("dockerd refused it", {"message": "Command exited with status 3"}) == (
        "dockerd refused it (Command exited with status 3)"
    )


def test_a_step_the_host_fails_stops_after_the_cap_and_frees_its_slot():
    sim = Sim(agents=2, public=0, rollout_max_host_failures="2")
    sim.subscribe()
    failing_docker(sim)
    assert sim.core.agents["S0"].steps["docker"].retry_at > sim.now  # first: backoff

    failing_docker(sim)

    docker = sim.core.agents["S0"].steps["docker"]
    assert docker.gave_up and docker.retry_at == 0.0
    assert "stopped after 2 failures caused by the host" in docker.message
    assert "S0" not in sim.core.restarting  # the installer rolled the host back
    launches = len(sim.steps_launched("S0"))
    sim.tick(1000.0)
    sim.offer()
    assert len(sim.steps_launched("S0")) == launches  # waits for the operator
    status, message = sim.core.step_status(sim.core.agents["S0"], sim.core._spec("docker"), sim.now)
    assert status == "ERROR" and "calico-dcos plan restart" in message
    assert sim.core.plan_view(sim.now)["status"] == "ERROR"
    assert sim.core.summary(sim.now)["degraded"]


def test_the_operators_restart_tries_again_from_the_first_failure():
    sim = Sim(agents=1, public=0, rollout_max_host_failures="1")
    sim.subscribe()
    failing_docker(sim)
    assert sim.core.agents["S0"].steps["docker"].gave_up

    sim.apply(sim.core.restart("S0", "docker", sim.now))
    next_docker(sim)

    docker = sim.core.agents["S0"].steps["docker"]
    assert not docker.gave_up and docker.host_failures == 0
    assert sim.steps_launched("S0").count("docker") == 2


def test_new_options_for_the_step_try_again():
    sim = Sim(agents=1, public=0, rollout_max_host_failures="1",
              service_agent_python="/missing/python3")  # fmt: skip
    sim.subscribe()
    failing_docker(sim)

    sim.change_options(service_agent_python="/opt/mesosphere/bin/python3")
    next_docker(sim)

    assert sim.steps_launched("S0").count("docker") == 2


def test_failures_of_other_causes_are_retried_with_backoff_for_ever():
    sim = Sim(agents=1, public=0, rollout_max_host_failures="1")
    sim.subscribe()
    failing_docker(sim, message="Command exited with status 1")
    docker = sim.core.agents["S0"].steps["docker"]
    assert not docker.gave_up and docker.retry_at > sim.now


def test_the_installers_report_gives_the_words_and_the_cause():
    sim = Sim(agents=1, public=0, rollout_max_host_failures="1")
    sim.subscribe()
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    reason = "Docker's cluster store is set by a dockerd flag to etcd://192.0.2.5:2379"
    report = {"step": "docker", "task_id": task, "failed": True, "host_caused": True,
              "exit_code": 3, "reason": reason}  # fmt: skip
    sim.apply(sim.core.on_report("S0", report, sim.now))
    sim.update(task, "TASK_FAILED", message="Command exited with status 3")

    docker = sim.core.agents["S0"].steps["docker"]
    assert docker.gave_up
    assert reason + " (Command exited with status 3)" in docker.message


def test_a_report_for_another_attempt_changes_nothing():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    next_docker(sim)
    report = {"step": "docker", "task_id": "calico-docker__S0__old__1", "failed": True,
              "host_caused": True, "exit_code": 3, "reason": "stale"}  # fmt: skip
    sim.apply(sim.core.on_report("S0", report, sim.now))
    assert sim.core.agents["S0"].steps["docker"].reason == ""


def crash(sim: Sim, after_seconds: float = 0.0) -> None:
    """S0's etcd proxy is relaunched, starts, runs `after_seconds` and exits 1."""
    for _ in range(60):
        task = sim.core.agents.get("S0") and sim.core.agents["S0"].steps.get("etcd-proxy")
        if task and task.live:
            break
        sim.offer("S0")
        sim.tick(5.0)
    task_id = sim.live_task("S0", "etcd-proxy")
    sim.update(task_id, "TASK_RUNNING")
    sim.now += after_seconds
    sim.update(task_id, "TASK_FAILED", message="Command exited with status 1")


def test_a_daemon_that_crashes_as_it_starts_backs_off_further_each_time():
    """The trial's case: etcd-proxy could not bind its port, started and exited again and again
    with 'failed 1 times … retry in 1s' for ever."""
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="1")
    sim.subscribe()
    delays = []
    for _ in range(4):
        crash(sim)
        proxy = sim.core.agents["S0"].steps["etcd-proxy"]
        delays.append(proxy.retry_at - sim.now)
    assert proxy.failures == 4
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert sim.core.summary(sim.now)["degraded"]


def test_a_daemon_that_stayed_up_starts_its_count_over():
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="1")
    sim.subscribe()
    crash(sim)
    crash(sim)
    crash(sim, after_seconds=120.0)  # up for two minutes, then a crash: a first failure
    assert sim.core.agents["S0"].steps["etcd-proxy"].failures == 1


def test_a_late_reconciliation_answer_never_undoes_a_finished_step():
    """The master forgets a task once its terminal update is acknowledged, so a reconciliation
    answered after that says TASK_GONE of a task that FINISHED (seen in the group-commit crash
    test): the step stays done and is not run a second time."""
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    next_docker(sim)
    docker = sim.live_task("S0", "docker")
    sim.update(docker, "TASK_FINISHED")
    sim.update(docker, "TASK_GONE", reason="REASON_RECONCILIATION",
               message="Reconciliation: Task is unknown to the agent")  # fmt: skip
    for _ in range(3):
        sim.offer("S0")
        sim.tick(10.0)
    assert sim.steps_launched("S0").count("docker") == 1
    assert sim.core.agents["S0"].steps["docker"].state == "TASK_FINISHED"
