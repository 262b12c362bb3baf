"""An operator acknowledges the installer's warning on a done step (`plan force-complete` of a
step done with a warning): the step stays COMPLETE with the warning's words marked
acknowledged and when, the plan is no longer Degraded for it, the mark is in the agent's
record (a restarted scheduler reads it back), and the step's next launch clears both. The
decision core with the plan simulator; `plan show`'s words and exit status from its
documents."""

import copy

from calico_dcos.commands.operator import messages, plan_exit_status, plan_header
from calico_dcos.core import events as ev
from calico_dcos.core.deploy import Deploy
from calico_dcos.operator_api import paged_plan
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim, subscribed

FOREIGN = (
    "daemon.json has cluster-store etcd://192.0.2.5:2379, not etcd://10.0.0.1:2379, and this "
    "installer did not write it: leaving it as it is"
)
AT = 1_795_984_812.0  # 2026-11-29 20:40:12 UTC: the plan's clock is wall time
ACKNOWLEDGED = (
    f"done with a warning, acknowledged by an operator at 2026-11-29 20:40:12 UTC: {FOREIGN}"
)


def notes(decisions: list) -> list[str]:
    return [d.message for d in decisions if isinstance(d, ev.Note)]


def saves(decisions: list) -> list:
    return [d for d in decisions if isinstance(d, ev.SaveAgent)]


def docker_step(plan: dict) -> dict:
    [phase] = plan["phases"]
    return next(s for s in phase["steps"] if s["name"] == "docker")


def warn(sim: Sim, words: str = FOREIGN) -> None:
    """The installer's warning for S0's current docker task, as its report says it."""
    task = sim.core.agents["S0"].steps["docker"].task_id
    report = {"step": "docker", "task_id": task, "warning": words}
    sim.apply(sim.core.on_report("S0", report, sim.now))


def docker_done_with_a_warning() -> Sim:
    """One agent, its docker step FINISHED, and the installer's warning for that task."""
    sim = subscribed(1, **ONLY_PROXY_AND_DOCKER)
    sim.converge()
    warn(sim)
    sim.now = AT
    return sim


def shown(sim: Sim) -> tuple[dict, dict]:
    """(summary, /v1/plan's document) as the API makes them."""
    summary = sim.core.summary(sim.now)
    return summary, paged_plan(sim.core.plan_view(sim.now), 0, 500, summary)


def test_force_complete_of_a_step_done_with_a_warning_acknowledges_it():
    sim = docker_done_with_a_warning()
    before, _ = shown(sim)

    said = sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    summary, plan = shown(sim)
    step = docker_step(plan)
    assert before["degraded"] and before["problems"] == [
        f"agent-S0: docker done with a warning: {FOREIGN}; `calico-dcos plan force-complete "
        "--phase agent-S0 --step docker` acknowledges it"
    ]
    assert notes(said) == [
        "agent-S0: docker was done already, with a warning; acknowledged by an operator at "
        "2026-11-29 20:40:12 UTC: no longer counted a problem (Degraded), the step stays done "
        f"with the host as it is (`calico-dcos plan restart` runs it again): {FOREIGN}"
    ]
    assert [d for d in said if not isinstance(d, (ev.Note, ev.SaveAgent))] == []  # no kill
    assert step == {
        "id": sim.core.agents["S0"].steps["docker"].task_id,
        "name": "docker",
        "status": "COMPLETE",
        "message": ACKNOWLEDGED,
        "warning": True,
        "warning_acknowledged": "2026-11-29T20:40:12Z",
    }  # not "forced": its task did run
    assert not summary["degraded"] and summary["problems"] == []
    assert summary["acknowledged_warnings"] == plan["acknowledged_warnings"] == 1
    assert summary["message"] == (
        "1 of 1 agents done; 1 step's warning acknowledged by an operator (done, not as the "
        "options want: `calico-dcos plan restart` runs it again)"
    )
    assert sim.records["S0"]["steps"]["docker"]["warning"] == FOREIGN
    assert sim.records["S0"]["steps"]["docker"]["warning_acknowledged_at"] == AT


def test_the_acknowledgement_is_read_back_from_the_records_by_a_restarted_scheduler():
    sim = docker_done_with_a_warning()
    sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    restarted = Deploy(sim.config(sim.options), copy.deepcopy(sim.records), "fw-1")

    assert docker_step(restarted.plan_view(sim.now)) == docker_step(sim.core.plan_view(sim.now))
    again = restarted.summary(sim.now)
    assert not again["degraded"] and again["acknowledged_warnings"] == 1


def test_acknowledging_again_changes_nothing_and_says_when_it_was():
    sim = docker_done_with_a_warning()
    sim.apply(sim.core.force_complete("S0", "docker", sim.now))
    records = copy.deepcopy(sim.records)
    sim.now += 3600

    said = sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    assert notes(said) == [
        "agent-S0: docker's warning was acknowledged already, at 2026-11-29 20:40:12 UTC: "
        "nothing changed; `calico-dcos plan restart` runs it again"
    ]
    assert saves(said) == [] and sim.records == records


def test_a_restart_launches_the_step_again_and_clears_warning_and_acknowledgement():
    sim = docker_done_with_a_warning()
    sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    sim.apply(sim.core.restart("S0", "docker", sim.now))
    sim.converge()
    cleared = sim.records["S0"]["steps"]["docker"]
    warn(sim)  # the host is as it was: the new task warns again

    summary, plan = shown(sim)
    assert cleared["warning"] == "" and "warning_acknowledged_at" not in cleared
    assert summary["degraded"] and summary["acknowledged_warnings"] == 0
    assert docker_step(plan)["message"] == f"done with a warning: {FOREIGN}"
    assert "warning_acknowledged" not in docker_step(plan)


def test_options_that_change_the_step_clear_the_acknowledgement_too():
    sim = docker_done_with_a_warning()
    sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    sim.change_options(docker_cluster_store="etcd://10.0.0.9:2379")
    sim.converge()

    step = sim.core.agents["S0"].steps["docker"]
    assert (step.warning, step.warning_acknowledged_at) == ("", 0.0)
    assert sim.steps_launched("S0").count("docker") == 2


def test_other_words_for_the_same_task_are_not_acknowledged():
    sim = docker_done_with_a_warning()
    sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    warn(sim, "Docker 24.0 has no cluster store: docker.cluster_store is not in effect")

    summary, _ = shown(sim)
    assert summary["degraded"] and summary["acknowledged_warnings"] == 0


def test_a_done_step_without_a_warning_still_changes_nothing():
    sim = subscribed(1, **ONLY_PROXY_AND_DOCKER)
    sim.converge()
    records = copy.deepcopy(sim.records)

    said = sim.apply(sim.core.force_complete("S0", "docker", sim.now))

    assert notes(said) == [
        "agent-S0: docker was done already (its task finished): nothing changed; "
        "`calico-dcos plan restart` runs it again"
    ]
    assert sim.records == records
    assert "warning" not in docker_step(sim.core.plan_view(sim.now))


def test_records_carry_the_mark_only_when_set():
    """Every agent's record is written at each status update: an unset mark is not in it."""
    sim = docker_done_with_a_warning()
    assert "warning_acknowledged_at" not in sim.records["S0"]["steps"]["docker"]
    assert "warning_acknowledged_at" not in sim.records["S0"]["steps"]["etcd-proxy"]


def test_plan_show_says_the_warning_and_its_acknowledgement():
    sim = docker_done_with_a_warning()
    _, warned = shown(sim)
    sim.apply(sim.core.force_complete("S0", "docker", sim.now))
    _, acknowledged = shown(sim)

    assert messages(warned) == [
        f"agent-S0 docker: done with a warning: {FOREIGN}; `calico-dcos plan force-complete "
        "--phase agent-S0 --step docker` acknowledges it"
    ]
    assert messages(acknowledged) == [f"agent-S0 docker: {ACKNOWLEDGED}"]
    assert plan_header(warned)[0] == "deploy (parallel): COMPLETE   Degraded: yes"
    assert plan_header(acknowledged)[0] == (
        "deploy (parallel): COMPLETE   Degraded: no   Acknowledged: 1 warning"
    )
    assert (plan_exit_status(warned), plan_exit_status(acknowledged)) == (5, 0)
