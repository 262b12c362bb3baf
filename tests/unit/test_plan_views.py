"""/v1/plan keeps each agent's phase until the agent changes: what it shows must always be
what a view built afresh shows, through every kind of event."""

from tests.helpers.plan_sim import Sim, converged_records


def same_as_fresh(sim: Sim) -> None:
    kept = sim.core.plan_view(sim.now)
    sim.core._phases.clear()  # noqa: SLF001 (what a view built afresh shows)
    assert kept == sim.core.plan_view(sim.now)


def test_the_deploy_plan_view_is_always_what_a_fresh_one_shows():
    sim = Sim(agents=4, public=1, rollout_max_concurrent_restarts="1")
    sim.subscribe()
    for round_ in range(40):
        sim.offer()
        same_as_fresh(sim)
        if round_ == 5:
            sim.apply(sim.core.interrupt("S1", sim.now))
        if round_ == 8:
            sim.apply(sim.core.proceed("S1", sim.now))
            sim.apply(sim.core.interrupt(None, sim.now))
        if round_ == 10:
            sim.apply(sim.core.proceed(None, sim.now))
        if round_ == 12 and sim.core.agents["S0"].steps.get("node"):
            sim.update(sim.live_task("S0", "node"), "TASK_FAILED", message="crashed")
        sim.advance()
        same_as_fresh(sim)
        sim.tick()
        same_as_fresh(sim)
    sim.change_options(node_image="calico/node:v2.6.99")  # every node replaced
    for _ in range(30):
        sim.offer()
        sim.advance()
        same_as_fresh(sim)
        sim.tick()
    assert sim.core.complete
    same_as_fresh(sim)


def test_the_uninstall_plan_view_is_always_what_a_fresh_one_shows():
    sim = Sim.uninstalling(revert_hosts=True, records=converged_records(4, 1))
    sim.subscribe()
    same_as_fresh(sim)
    sim.kill_everything()
    same_as_fresh(sim)
    for round_ in range(12):
        sim.offer(*sim.agents, cpus=0.05 if round_ == 0 else 4.0)
        same_as_fresh(sim)
        for task_id, task in list(sim.tasks.items()):
            if task["state"] == "TASK_STAGING":
                state = "TASK_FAILED" if round_ == 1 else "TASK_FINISHED"
                sim.update(task_id, state, task["agent"], message="x")
                same_as_fresh(sim)
        sim.tick()
        same_as_fresh(sim)
    assert sim.core.complete
