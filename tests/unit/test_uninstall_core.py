"""The uninstall core without any server: kill, revert within the budget, tear down, wipe."""

from calico_dcos.core import events as ev
from calico_dcos.core import uninstall as un
from tests.helpers.plan_sim import Sim, converged_records


def live_daemons(records: dict) -> set[str]:
    return {
        doc["task_id"]
        for rec in records.values()
        for doc in rec["steps"].values()
        if doc["state"] == "TASK_RUNNING"
    }


def test_every_live_task_is_killed_after_an_implicit_reconciliation():
    sim = Sim.uninstalling()
    decisions = sim.subscribe()

    assert decisions[0] == ev.Reconcile(())
    assert {d.task_id for d in sim.of(ev.Kill)} == live_daemons(sim.records)


def test_teardown_then_wipe_only_once_every_task_has_ended():
    sim = Sim.uninstalling()
    sim.subscribe()
    kills = sim.of(ev.Kill)
    for kill in kills[1:]:
        sim.update(kill.task_id, "TASK_KILLED", kill.agent_id)

    again = sim.tick(3.0)
    assert ev.Kill(kills[0].task_id, kills[0].agent_id) in again
    assert ev.Reconcile(((kills[0].task_id, kills[0].agent_id),)) in again
    assert not sim.of(ev.Teardown)

    final = sim.update(kills[0].task_id, "TASK_KILLED", kills[0].agent_id)
    ends = [d for d in final if isinstance(d, ev.Teardown | ev.WipeState)]
    assert ends == [ev.Teardown(), ev.WipeState()]
    assert sim.core.complete


def test_a_task_of_the_framework_not_in_the_records_is_killed_too():
    sim = Sim.uninstalling(records={})
    sim.subscribe()

    decisions = sim.update("calico-node__S9__abcdef12__3", "TASK_RUNNING", "S9")

    assert decisions[0] == ev.Kill("calico-node__S9__abcdef12__3", "S9")
    sim.tick(3.0)
    assert not sim.core.complete


def test_without_revert_hosts_no_task_is_launched():
    sim = Sim.uninstalling()
    sim.subscribe()
    sim.kill_everything()

    declined = sim.offer("S0", "S1")

    assert not sim.of(ev.Launch)
    assert declined == [ev.Decline(("o0", "o1"), 3600.0)]


def test_revert_hosts_runs_the_installer_uninstall_within_the_restart_budget():
    sim = Sim.uninstalling(revert_hosts=True)
    sim.subscribe()
    assert sim.offer("S0", "S1", "S2") and not sim.of(ev.Launch)  # tasks still being killed
    sim.kill_everything()

    sim.offer("S0", "S1", "S2")

    [launch] = sim.of(ev.Launch)
    command = launch.task_info["command"]["value"]
    assert "./installer.pyz uninstall --docker --cni --stability-seconds" in command
    assert launch.task_info["command"]["uris"][0]["value"].endswith("/v1/artifacts/installer.pyz")
    assert sim.core.summary(sim.now)["restarting"] == [launch.agent_id]

    sim.update(launch.task_info["task_id"]["value"], "TASK_FINISHED", launch.agent_id)
    sim.offer("S0", "S1", "S2")
    assert len(sim.of(ev.Launch)) == 2


def test_a_public_agent_is_reverted_with_its_own_agent_unit():
    sim = Sim.uninstalling(revert_hosts=True)
    sim.subscribe()
    sim.kill_everything()

    sim.offer("S2")

    assert sim.of(ev.Launch)[0].task_info["command"]["value"].endswith(" --public")


def test_hosts_never_touched_or_running_calico_already_are_not_reverted():
    records = converged_records(3, 0)
    records["S1"]["calico_present"] = {"found": ["dcos-calico-felix"]}
    for step in ("docker", "cni"):
        records["S2"]["steps"][step]["attempts"] = 0
    sim = Sim.uninstalling(revert_hosts=True, records=records)

    assert set(sim.core.progress.reverts) == {"S0"}


def test_a_revert_cut_off_by_its_agent_restart_is_relaunched_without_counting_a_failure():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    first = sim.of(ev.Launch)[0].task_info["task_id"]["value"]

    sim.update(first, "TASK_GONE", "S0", reason="REASON_AGENT_RESTARTED")
    sim.offer("S0")

    second = sim.of(ev.Launch)[1].task_info["task_id"]["value"]
    assert second.endswith("__2") and sim.core.progress.reverts["S0"].failures == 0


def test_a_failing_revert_backs_off_and_reads_degraded_after_three_failures():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    for attempt in range(3):
        sim.offer("S0")
        task_id = sim.of(ev.Launch)[attempt].task_info["task_id"]["value"]
        sim.update(task_id, "TASK_FAILED", "S0", message="docker would not start")
        assert not any(isinstance(d, ev.Launch) for d in sim.offer("S0"))  # backing off
        sim.now += 60

    summary = sim.core.summary(sim.now)
    assert summary["degraded"]
    assert summary["problems"] == ["agent-0: revert-host failed 3 times: docker would not start"]


def test_restart_of_a_failed_revert_relaunches_it_at_once():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    first = sim.of(ev.Launch)[0].task_info["task_id"]["value"]
    sim.update(first, "TASK_FAILED", "S0", message="docker would not start")

    said = sim.apply(sim.core.restart("S0", un.REVERT, sim.now))
    sim.offer("S0")

    assert [d.message for d in said if isinstance(d, ev.Note)] == [
        f"{sim.hostnames['S0']}: {un.REVERT} restarted by an operator: reverted again, within "
        "the restart budget"
    ]

    assert [launch.task_info["task_id"]["value"][-3:] for launch in sim.of(ev.Launch)] == [
        "__1",
        "__2",
    ]


def test_force_complete_counts_a_host_as_reverted_and_the_uninstall_ends():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()

    decisions = sim.apply(sim.core.force_complete("S0", un.REVERT, sim.now))

    (note,) = [d.message for d in decisions if isinstance(d, ev.Note)]
    assert (
        note
        == f"{sim.hostnames['S0']}: {un.REVERT} force-completed by an operator: counted as reverted"
    )

    assert [d for d in decisions if isinstance(d, ev.Teardown | ev.WipeState)] == [
        ev.Teardown(),
        ev.WipeState(),
    ]


def test_a_restarted_uninstall_goes_on_the_way_it_began():
    sim = Sim.uninstalling(revert_hosts=True)
    sim.subscribe()
    sim.kill_everything()
    sim.offer("S0")
    stored = sim.of(ev.SaveMeta)[-1]
    assert stored.key == "uninstall"

    again = Sim.uninstalling(revert_hosts=False, records=sim.records, progress=stored.value)

    assert again.core.revert_hosts
    assert again.core.progress.stage == un.REVERT
    assert (
        again.core.progress.reverts["S0"].task_id
        == sim.of(ev.Launch)[0].task_info["task_id"]["value"]
    )


def test_framework_removed_after_the_teardown_only_wipes():
    sim = Sim.uninstalling(progress={"revert_hosts": False, "stage": un.TEARDOWN, "reverts": {}})

    decisions = sim.core.on_framework_removed()

    assert decisions == [ev.SaveFrameworkId(None), ev.WipeState()]
    assert sim.core.complete


def test_plan_view_shows_the_uninstall_per_agent_then_the_deregistration():
    sim = Sim.uninstalling(revert_hosts=True)
    sim.subscribe()

    view = sim.core.plan_view(sim.now)

    names = [phase["name"] for phase in view["phases"]]
    assert names == ["agent-0", "agent-1", "public-agent-2", "deregister-service"]
    first = view["phases"][0]
    assert [s["name"] for s in first["steps"]] == ["kill-tasks", "revert-host"]
    assert first["steps"][0]["status"] == "STARTING"
    assert first["steps"][0]["message"].startswith("killing calico-")
    assert first["steps"][1]["status"] == "PENDING"
    assert view["status"] == "IN_PROGRESS"
    assert sim.core.summary(sim.now)["message"] == (
        "Uninstalling: 0 of 9 tasks killed; 0 of 3 hosts reverted"
    )


def test_interrupt_holds_the_reverts_until_continued():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    sim.apply(sim.core.interrupt(None, sim.now))

    sim.offer("S0")
    assert not sim.of(ev.Launch)

    sim.apply(sim.core.proceed(None, sim.now))
    sim.offer("S0")
    assert len(sim.of(ev.Launch)) == 1


# -- the drift from the deploy plan, fixed by sharing its engine (issue 10) ---------------


def reverting_one_host() -> Sim:
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(1, 0))
    sim.subscribe()
    sim.kill_everything()
    return sim


def test_a_revert_killed_by_its_agent_restart_without_a_reason_is_a_cut_off_as_in_deploy():
    sim = reverting_one_host()
    sim.offer("S0")
    first = sim.of(ev.Launch)[0].task_info["task_id"]["value"]

    sim.update(first, "TASK_KILLED", "S0")  # no reason: the agent went down under it
    sim.offer("S0")

    st = sim.core.progress.reverts["S0"]
    assert (st.failures, st.cutoffs, st.retry_at) == (0, 1, 0.0)
    assert sim.of(ev.Launch)[1].task_info["task_id"]["value"].endswith("__2")


def test_an_offer_mesos_rounded_to_the_revert_task_size_fits_as_in_deploy():
    sim = reverting_one_host()

    sim.offer("S0", cpus=0.1 - 1e-12, mem=64.0 - 1e-12)  # cni.cpus, cni.mem

    assert len(sim.of(ev.Launch)) == 1


def test_an_offer_too_small_for_the_revert_is_named_on_its_step_and_logged_once():
    sim = reverting_one_host()

    sim.offer("S0", cpus=0.05)
    sim.offer("S0", cpus=0.05)

    expected = "agent-0 offers 0.05 cpus; calico-uninstall needs 0.1"
    assert sim.of(ev.Note) == [ev.Note(expected)]
    revert = sim.core.plan_view(sim.now)["phases"][0]["steps"][1]
    assert (revert["status"], revert["message"]) == ("PREPARED", expected)


def test_plan_view_reads_each_task_once_however_many_agents(monkeypatch):
    """It was quadratic (every agent's phase scanned every task): 200 ms at 1,000 agents."""
    reads = []
    ended = un.Doomed.ended
    monkeypatch.setattr(un.Doomed, "ended", property(lambda d: reads.append(1) or ended.fget(d)))

    def reads_for(agents: int) -> int:
        sim = Sim.uninstalling(revert_hosts=True, records=converged_records(agents, 0))
        sim.subscribe()
        reads.clear()
        sim.core.plan_view(sim.now)
        return len(reads)

    assert reads_for(200) == 2 * reads_for(100)
