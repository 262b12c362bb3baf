"""A step an operator force-completed (`plan force-complete`) is marked so in every view of
the plan (`"forced": true` on its step, FORCED in the tables, "forced" in the live display),
not shown as plain done: its task may never have run. From the records alone, so that it
survives a restart of the scheduler; not once the step has run again under new options."""

import copy
import io

from rich.console import Console

from calico_dcos.commands.operator import plan_header, plan_table, summary_lines
from calico_dcos.core import events as ev
from calico_dcos.core import uninstall as un
from calico_dcos.core.deploy import Deploy
from calico_dcos.display import PlanView, plan_changes
from calico_dcos.operator_api import paged_plan
from tests.helpers.plan_sim import ONLY_PROXY_AND_DOCKER, Sim, converged_records, subscribed


def step_of(plan: dict, step: str) -> dict:
    [phase] = [p for p in plan["phases"] if p["id"] == "S0"]
    return next(s for s in phase["steps"] if s["name"] == step)


def proxy_forced_before_it_started() -> Sim:
    """S0's etcd-proxy launched, force-completed while STAGING (so killed), and killed."""
    sim = subscribed(1, **ONLY_PROXY_AND_DOCKER)
    sim.offer()
    staging = sim.live_task("S0", "etcd-proxy")
    sim.apply(sim.core.force_complete("S0", "etcd-proxy", sim.now))
    sim.update(staging, "TASK_KILLED", message="Task killed by the operator")
    return sim


def test_a_step_forced_before_its_task_started_is_marked_forced_also_after_a_restart():
    sim = proxy_forced_before_it_started()
    sim.converge()

    shown = step_of(sim.core.plan_view(sim.now), "etcd-proxy")
    restarted = Deploy(sim.config(sim.options), sim.records, "fw-1")  # from the store's records
    after_restart = step_of(restarted.plan_view(sim.now), "etcd-proxy")

    assert shown["status"] == "COMPLETE" and shown["forced"] is True
    assert shown["message"] == "force-completed"
    assert after_restart == shown
    assert "forced" not in step_of(sim.core.plan_view(sim.now), "docker")  # done by its task


def test_a_step_that_ran_again_under_new_options_is_no_longer_forced():
    sim = proxy_forced_before_it_started()
    sim.converge()

    sim.change_options(etcd_mem="100")  # the proxy's fingerprint changes: it runs again
    sim.converge()

    step = step_of(sim.core.plan_view(sim.now), "etcd-proxy")
    assert step["status"] == "COMPLETE" and "forced" not in step
    assert step["message"] != "force-completed"


def test_the_tables_and_the_live_display_say_forced_not_done():
    sim = proxy_forced_before_it_started()
    sim.converge()
    plan = sim.core.plan_view(sim.now)
    summary = sim.core.summary(sim.now)

    header, row = plan_table(plan)
    console = Console(file=io.StringIO(), width=200, color_system=None, force_terminal=False)
    console.print(PlanView(plan, summary, [], elapsed=1.0))
    narrow = Console(file=io.StringIO(), width=39, color_system=None, force_terminal=False)
    narrow.print(PlanView(plan, summary, [], elapsed=1.0))

    assert header.split() == ["AGENT", "ETCD-PROXY", "DOCKER", "STATUS"]
    assert row.split() == ["agent-S0", "FORCED", "COMPLETE", "COMPLETE"]
    wide_row = next(line for line in console.file.getvalue().splitlines() if "agent-S0" in line)
    assert wide_row.split()[:3] == ["agent-S0", "forced", "done"]
    assert "agent-S0 2/2 done (forced: etcd-proxy)" in " ".join(narrow.file.getvalue().split())
    lines = plan_changes(plan, {})
    assert any(line.split()[1:3] == ["etcd-proxy", "forced"] for line in lines), lines


def test_a_revert_an_operator_force_completed_is_marked_forced_and_a_gone_one_not():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(2, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.apply(sim.core.force_complete("S0", un.REVERT, sim.now))
    sim.apply(sim.core.on_agent_lost("S1", sim.now))

    plan = sim.core.plan_view(sim.now)
    forced = step_of(plan, un.REVERT)
    [gone] = [
        s for p in plan["phases"] if p["id"] == "S1" for s in p["steps"] if s["name"] == un.REVERT
    ]

    assert forced["status"] == "COMPLETE" and forced["forced"] is True
    assert "forced" not in gone


def notes(decisions: list) -> list[str]:
    return [d.message for d in decisions if isinstance(d, ev.Note)]


def test_force_completing_a_step_that_finished_already_changes_nothing_and_says_so():
    """Before, it answered "force-completed by an operator: done" and marked the step FORCED,
    whose legend says its task may never have run: false for a step whose task finished."""
    sim = subscribed(1, **ONLY_PROXY_AND_DOCKER)
    sim.converge()
    before = copy.deepcopy(sim.records)

    said = sim.apply(sim.core.force_complete("S0", "docker", sim.now))
    again = sim.apply(sim.core.force_complete("S0", "etcd-proxy", sim.now))

    assert notes(said) == [
        "agent-S0: docker was done already (its task finished): nothing changed; "
        "`calico-dcos plan restart` runs it again"
    ]
    assert notes(again) == [
        "agent-S0: etcd-proxy was done already (its task is running): nothing changed; "
        "`calico-dcos plan restart` runs it again"
    ]
    assert not [d for d in said + again if isinstance(d, ev.SaveAgent)]
    assert sim.records == before
    plan = sim.core.plan_view(sim.now)
    assert "forced" not in step_of(plan, "docker") and "forced" not in step_of(plan, "etcd-proxy")
    assert step_of(plan, "docker")["message"] != "force-completed"


def test_force_completing_a_forced_step_again_changes_nothing():
    sim = proxy_forced_before_it_started()
    before = copy.deepcopy(sim.records)

    said = sim.apply(sim.core.force_complete("S0", "etcd-proxy", sim.now))

    assert notes(said) == [
        "agent-S0: etcd-proxy was force-completed already: nothing changed; "
        "`calico-dcos plan restart` runs it again"
    ]
    assert not [d for d in said if isinstance(d, ev.SaveAgent)]
    assert sim.records == before


def test_force_completing_a_revert_that_finished_already_changes_nothing():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(2, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    [launch] = [d for d in sim.of(ev.Launch) if d.agent_id == "S0"]
    sim.update(launch.task_info["task_id"]["value"], "TASK_FINISHED", "S0")
    host = sim.hostnames["S0"]
    progress = copy.deepcopy(sim.core.progress.reverts["S0"])

    said = sim.apply(sim.core.force_complete("S0", un.REVERT, sim.now))

    assert notes(said) == [f"{host}: {un.REVERT} was done already (host reverted): nothing changed"]
    assert sim.core.progress.reverts["S0"] == progress
    assert not [d for d in said if not isinstance(d, ev.Note)]
    assert "forced" not in step_of(sim.core.plan_view(sim.now), un.REVERT)

    sim.apply(sim.core.force_complete("S1", un.REVERT, sim.now))
    said = sim.apply(sim.core.force_complete("S1", un.REVERT, sim.now))
    assert notes(said) == [
        f"{sim.hostnames['S1']}: {un.REVERT} was force-completed already: nothing changed"
    ]


def test_the_summary_counts_the_forced_steps_and_says_how_to_run_them():
    """A FORCED step was easy to miss: the summary said "1 of 1 agents done", Available."""
    sim = proxy_forced_before_it_started()
    sim.converge()

    summary = sim.core.summary(sim.now)
    page = paged_plan(sim.core.plan_view(sim.now), 0, 500, summary)

    assert summary["forced_steps"] == 1
    assert summary["message"] == (
        "1 of 1 agents done; 1 step force-completed (its task may never have run: "
        "`calico-dcos plan restart` runs it)"
    )
    assert page["forced_steps"] == 1 and page["message"] == summary["message"]
    assert page["degraded"] is False

    sim.change_options(etcd_mem="100")  # it runs again: no longer forced
    sim.converge()
    summary = sim.core.summary(sim.now)
    assert summary["forced_steps"] == 0 and summary["message"] == "1 of 1 agents done"


def test_status_and_plan_show_say_how_many_steps_are_forced():
    sim = proxy_forced_before_it_started()
    sim.converge()
    summary = sim.core.summary(sim.now)
    plan = paged_plan(sim.core.plan_view(sim.now), 0, 500, summary)

    lines = summary_lines({"service": "calico", "summary": summary, "plan": plan})
    header = plan_header(plan)

    assert lines[0] == f"calico: {summary['message']}"
    assert header[0] == "deploy (parallel): COMPLETE   Degraded: no   Forced: 1 step"
    assert header[1] == summary["message"]


def test_the_uninstall_summary_counts_reverts_an_operator_force_completed():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(2, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.apply(sim.core.force_complete("S0", un.REVERT, sim.now))
    sim.apply(sim.core.on_agent_lost("S1", sim.now))

    summary = sim.core.summary(sim.now)

    assert summary["forced_steps"] == 1
    assert "; 1 step force-completed (its task may never have run" in summary["message"]
