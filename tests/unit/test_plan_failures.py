"""Failures say why, and a failure the host causes stops after `rollout.max_host_failures`
(issue 13, case 3): the decision core, with the plan simulator."""

from calico_dcos.core import events as ev
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


BIND = "listen tcp 127.0.0.1:2379: bind: address already in use"


def crash_saying(sim: Sim, words: str) -> None:
    """S0's etcd proxy is relaunched, starts and exits 1; its stderr's end says `words`."""
    crash(sim)
    task = sim.live_task("S0", "etcd-proxy")
    sim.apply(sim.core.on_task_output(task, words, "Command exited with status 1", sim.now))


def proxy_comes_up(sim: Sim) -> None:
    """The port was freed: the next launch of S0's proxy starts and stays up."""
    for _ in range(60):
        if sim.core.agents["S0"].steps["etcd-proxy"].live:
            break
        sim.offer("S0")
        sim.tick(5.0)
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING")


def test_a_daemon_that_came_back_is_no_problem_and_its_count_starts_over_on_time():
    """The trial's case: etcd-proxy failed 6 times (a taken port), then the port was freed
    and it came up. The service must not stay Degraded with 'failed 6 times: ' for ever."""
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="1")
    sim.subscribe()
    for _ in range(6):
        crash_saying(sim, BIND)
    summary = sim.core.summary(sim.now)
    assert summary["degraded"]
    assert summary["problems"] == [
        f"agent-S0: etcd-proxy failed 6 times: {BIND} (Command exited with status 1)"
    ]

    proxy_comes_up(sim)

    # done and running now: not Degraded, even before the count starts over
    assert sim.core.summary(sim.now)["problems"] == []
    assert not sim.core.summary(sim.now)["degraded"]
    proxy = sim.core.agents["S0"].steps["etcd-proxy"]
    assert proxy.failures == 6
    # no event but the tick: the count starts over once it has been up `stable_seconds`
    saved = len(sim.of(ev.SaveAgent))
    sim.tick(sim.core.config.stable_seconds - 1.0)
    assert proxy.failures == 6
    sim.tick(1.0)
    assert proxy.failures == 0 and proxy.last_failure == ""
    assert sim.records["S0"]["steps"]["etcd-proxy"]["failures"] == 0
    assert len(sim.of(ev.SaveAgent)) == saved + 1


def test_the_count_starts_over_on_time_after_a_scheduler_restart_too():
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="1")
    sim.subscribe()
    for _ in range(3):
        crash_saying(sim, BIND)
    proxy_comes_up(sim)
    restarted = Sim(agents=1, public=0, records=sim.records, framework_id="fw-1",
                    rollout_retry_backoff_seconds="1")  # fmt: skip
    restarted.now, restarted.tasks = sim.now, sim.tasks
    restarted.subscribe()
    restarted.tick(sim.core.config.stable_seconds)
    assert restarted.core.agents["S0"].steps["etcd-proxy"].failures == 0


def test_a_problem_line_never_ends_with_an_empty_reason():
    """A step that failed 3 times and is trying again (its task relaunched, its message
    reset) still says why it failed, and what it does now."""
    sim = Sim(agents=1, public=0, rollout_retry_backoff_seconds="1")
    sim.subscribe()
    for _ in range(3):
        crash_saying(sim, BIND)
    for _ in range(60):
        if sim.core.agents["S0"].steps["etcd-proxy"].live:
            break
        sim.offer("S0")
        sim.tick(5.0)
    (line,) = sim.core.summary(sim.now)["problems"]
    assert line == (
        f"agent-S0: etcd-proxy failed 3 times: {BIND} (Command exited with status 1); "
        "starting again"
    )
    for problem in sim.core.summary(sim.now)["problems"]:
        assert not problem.rstrip().endswith(":")


def test_nothing_progresses_when_every_agent_waits_for_the_operator():
    """The trial's case: every agent's docker step stopped after host-caused failures.
    Progressing is 'no' (nothing moves without the operator) and the message says what it
    waits for; the step's words name both ways out."""
    sim = Sim(agents=2, public=0, rollout_max_host_failures="1")
    sim.subscribe()

    def docker(aid: str):
        agent = sim.core.agents.get(aid)
        return agent.steps.get("docker") if agent is not None else None

    for _ in range(30):
        if all(docker(a) is not None and docker(a).gave_up for a in ("S0", "S1")):
            break
        sim.offer()
        for aid in ("S0", "S1"):
            if docker(aid) is not None and docker(aid).live:
                sim.update(docker(aid).task_id, "TASK_FAILED", message=NOT_FOUND)
        sim.advance()
        sim.tick(10.0)
    summary = sim.core.summary(sim.now)
    assert (summary["available"], summary["progressing"], summary["degraded"]) == (
        False, False, True)  # fmt: skip
    assert "2 agents wait for the operator" in summary["message"]
    assert "calico-dcos plan restart" in summary["message"]
    assert "change the options" in summary["message"]
    message = sim.core.agents["S0"].steps["docker"].message
    assert "calico-dcos plan restart" in message and "change it" in message

    sim.apply(sim.core.restart("S0", "docker", sim.now))
    assert sim.core.summary(sim.now)["progressing"]  # the operator acted: it moves again


def test_an_interrupted_rollout_does_not_progress_and_says_so():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.apply(sim.core.interrupt(None, sim.now))
    sim.offer()
    summary = sim.core.summary(sim.now)
    assert not summary["progressing"] and summary["interrupted"]
    assert "interrupted by an operator" in summary["message"]


FOREIGN = (
    "daemon.json has cluster-store etcd://192.0.2.5:2379, not etcd://10.0.0.1:2379, and this "
    "installer did not write it: leaving it as it is"
)


def test_a_step_done_with_the_installers_warning_is_not_done_and_fine():
    """The docker step exits 0 but left someone else's cluster store alone: the step is done
    (the chain goes on) but says so, and the service is Degraded until it is dealt with."""
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    sim.update(task, "TASK_FINISHED", message="Command exited with status 0")
    notes = len(sim.of(ev.Note))
    report = {"step": "docker", "task_id": task, "warning": FOREIGN}  # after its end, too
    sim.apply(sim.core.on_report("S0", report, sim.now))
    sim.apply(sim.core.on_report("S0", report, sim.now))  # the same again: logged once

    spec = sim.core._spec("docker")
    status, message = sim.core.step_status(sim.core.agents["S0"], spec, sim.now)
    assert (status, message) == ("COMPLETE", f"done with a warning: {FOREIGN}")
    summary = sim.core.summary(sim.now)
    assert summary["degraded"]
    assert summary["problems"] == [
        f"agent-S0: docker done with a warning: {FOREIGN}; `calico-dcos plan force-complete "
        "--phase agent-S0 --step docker` acknowledges it"
    ]
    assert [n.message for n in sim.of(ev.Note)[notes:]] == [f"agent-S0: docker: {FOREIGN}"]
    assert sim.records["S0"]["steps"]["docker"]["warning"] == FOREIGN
    phase = sim.core.plan_view(sim.now)["phases"][0]
    assert phase["steps"][1]["message"] == f"done with a warning: {FOREIGN}"

    stale = {"step": "docker", "task_id": "calico-docker__S0__old__1", "warning": "stale"}
    sim.apply(sim.core.on_report("S0", stale, sim.now))
    assert sim.core.agents["S0"].steps["docker"].warning == FOREIGN

    sim.apply(sim.core.restart("S0", "docker", sim.now))  # the operator removed the key
    next_docker(sim)
    assert sim.core.agents["S0"].steps["docker"].warning == ""


def test_words_without_a_reason_say_so_rather_than_end_empty():
    from calico_dcos.core.failures import gave_up_words
    from calico_dcos.core.records import StepState
    from calico_dcos.core.views import failing, task_words

    assert "the host: no reason was given; waits for the operator" in gave_up_words(1, "")
    st = StepState(failures=3, state="TASK_FAILED", retry_at=10.0)
    assert task_words(st, 0.0) == ("DELAYED", "failed 3 times: no reason was given; retry in 10s")
    assert failing("a", "docker", st) == "a: docker failed 3 times: its task ended TASK_FAILED"
