"""A task that fails without the installer saying why gets its reason from the end of its
`stderr` (issue 13, case 3): the decision core asks for it (`ReadStderr`) and takes the
answer (`on_task_output`) only for the step's current failed task, never over the
installer's own words. The plan simulator; no I/O."""

from calico_dcos.core import events as ev
from calico_dcos.core.failures import output_words
from tests.helpers.plan_sim import Sim, converged_records
from tests.unit.test_plan_failures import crash, next_docker

EXITED_1 = "Command exited with status 1"
IN_USE = "etcd: listen tcp 127.0.1.1:2379: bind: address already in use"


def reads(decisions: list) -> list[ev.ReadStderr]:
    return [d for d in decisions if isinstance(d, ev.ReadStderr)]


def failed_proxy(sim: Sim) -> tuple[str, list]:
    """S0's etcd proxy starts and exits 1 with no report; its task ID and the decisions."""
    crash(sim)
    task = sim.core.agents["S0"].steps["etcd-proxy"].task_id
    return task, [d for d in sim.decisions if isinstance(d, ev.ReadStderr)]


def test_the_words_lead_and_mesos_words_follow():
    assert output_words(IN_USE, EXITED_1) == f"{IN_USE} ({EXITED_1})"
    words = output_words("sh: 1: python3: not found", "Command exited with status 127")
    assert words.startswith("sh: 1: python3: not found; a command of the step is not on")
    assert words.endswith("(Command exited with status 127)")
    assert output_words("", EXITED_1) == EXITED_1


def test_a_failed_task_without_a_report_asks_for_its_stderr_and_shows_it():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    task, asked = failed_proxy(sim)
    assert asked == [ev.ReadStderr(task, "S0", EXITED_1)]

    out = sim.apply(sim.core.on_task_output(task, IN_USE, EXITED_1, sim.now))

    proxy = sim.core.agents["S0"].steps["etcd-proxy"]
    assert proxy.reason == IN_USE
    assert proxy.message == f"{IN_USE} ({EXITED_1})"
    saved = [d for d in out if isinstance(d, ev.SaveAgent)]
    assert saved and saved[-1].record["steps"]["etcd-proxy"]["reason"] == IN_USE
    assert [n.message for n in out if isinstance(n, ev.Note)] == [
        f"agent-S0: etcd-proxy failed: {IN_USE} ({EXITED_1})"
    ]
    step = next(
        s for s in sim.core.plan_view(sim.now)["phases"][0]["steps"] if s["name"] == "etcd-proxy"
    )
    assert IN_USE in step["message"]


def test_the_installers_report_is_not_overwritten_nor_asked_for():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    report = {"step": "docker", "task_id": task, "failed": True, "host_caused": False,
              "exit_code": 1, "reason": "the installer's own words"}  # fmt: skip
    sim.apply(sim.core.on_report("S0", report, sim.now))
    out = sim.update(task, "TASK_FAILED", message=EXITED_1)
    assert reads(out) == []

    sim.apply(sim.core.on_task_output(task, "Traceback: something", EXITED_1, sim.now))

    docker = sim.core.agents["S0"].steps["docker"]
    assert docker.reason == "the installer's own words"
    assert "Traceback" not in docker.message


def test_words_for_an_older_task_change_nothing():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    old, _ = failed_proxy(sim)
    sim.tick(600.0)
    crash(sim)  # relaunched: a new task, failed as well
    current = sim.core.agents["S0"].steps["etcd-proxy"]
    assert current.task_id != old

    out = sim.apply(sim.core.on_task_output(old, IN_USE, EXITED_1, sim.now))

    assert out == [] and current.reason == "" and IN_USE not in current.message


def test_a_task_that_is_running_again_or_ended_otherwise_asks_for_nothing():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    assert reads(sim.update(task, "TASK_KILLED", message="Command terminated with signal")) == []
    assert sim.apply(sim.core.on_task_output(task, IN_USE, EXITED_1, sim.now)) == []
    assert sim.core.agents["S0"].steps["docker"].reason == ""
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    assert reads(sim.update(task, "TASK_FINISHED", message="Command exited with status 0")) == []


def test_a_task_that_never_ran_asks_for_nothing():
    """A launch the agent failed for another reason than the fetch, or one Mesos refused: no
    command ran, and Mesos' message already says why."""
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    failed = sim.update(task, "TASK_FAILED", message="Failed to launch container: Secret "
                        "generation failed: …", source="SOURCE_AGENT",
                        reason="REASON_CONTAINER_LAUNCH_FAILED")  # fmt: skip
    assert reads(failed) == []
    sim.tick(600.0)
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    assert reads(sim.update(task, "TASK_ERROR", message="invalid", source="SOURCE_MASTER")) == []


FETCH_FAILED = (
    "Failed to launch container: Failed to fetch all URIs for container "
    "'6a1f3c2e-0000-4000-8000-000000000001': exited with status 1"
)


def test_a_failed_fetch_asks_for_the_stderr_where_the_fetcher_named_the_uri():
    """Mesos' agent says only that the fetcher exited 1 (src/slave/containerizer/fetcher.cpp,
    `FetcherProcess::run`); the URI is in the sandbox's `stderr`. The step keeps the
    update's words until the read answers, then shows what it found."""
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    hinted = f"cannot download service.artifacts_url: {FETCH_FAILED}"
    out = sim.update(task, "TASK_FAILED", message=hinted, source="SOURCE_AGENT",
                     reason="REASON_CONTAINER_LAUNCH_FAILED")  # fmt: skip
    assert reads(out) == [ev.ReadStderr(task, "S0", hinted)]
    docker = sim.core.agents["S0"].steps["docker"]
    assert docker.message == hinted and docker.reason == ""

    line = "cannot download service.artifacts_url: Failed to fetch 'http://s/x.pyz': 404"
    sim.apply(sim.core.on_task_output(task, line, FETCH_FAILED, sim.now))

    assert docker.reason == line
    assert docker.message == f"{line} ({FETCH_FAILED})"


def test_a_step_that_gave_up_keeps_saying_so_with_the_words():
    sim = Sim(agents=1, public=0, rollout_max_host_failures="1")
    sim.subscribe()
    next_docker(sim)
    task = sim.live_task("S0", "docker")
    sim.update(task, "TASK_FAILED", message="Command exited with status 127")
    assert sim.core.agents["S0"].steps["docker"].gave_up

    sim.apply(sim.core.on_task_output(task, "sh: 1: python3: not found", "Command exited "
                                      "with status 127", sim.now))  # fmt: skip

    message = sim.core.agents["S0"].steps["docker"].message
    assert message.startswith("stopped after 1 failure caused by the host: sh: 1: python3: ")
    assert "calico-dcos plan restart" in message


def test_the_uninstalls_revert_asks_and_takes_the_words_too():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    task = sim.of(ev.Launch)[0].task_info["task_id"]["value"]
    assert reads(sim.update(task, "TASK_FAILED", "S0", message=EXITED_1)) == [
        ev.ReadStderr(task, "S0", EXITED_1)
    ]

    sim.apply(sim.core.on_task_output(task, "revert: permission denied", EXITED_1, sim.now))

    assert sim.core.progress.reverts["S0"].message == f"revert: permission denied ({EXITED_1})"
