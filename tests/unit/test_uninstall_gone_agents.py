"""An uninstall with --revert-hosts ends when an agent has gone, naming the hosts it could not
revert (issue 13, case 4): the uninstall core with the plan simulator."""

from calico_dcos.core import events as ev
from tests.helpers.plan_sim import Sim, converged_records


def revert_everything_offered(sim: Sim, agents: tuple[str, ...], rounds: int = 20) -> None:
    """Kill what is live, then offer `agents` and finish every revert launched."""
    sim.kill_everything()
    for _ in range(rounds):
        if sim.core.complete:
            return
        sim.offer(*agents)
        for launch in sim.of(ev.Launch):
            task_id = launch.task_info["task_id"]["value"]
            if sim.tasks[task_id]["state"] == "TASK_STAGING":
                sim.update(task_id, "TASK_FINISHED", launch.agent_id)
        sim.tick(3.0)


def test_an_agent_stored_as_lost_is_not_waited_for_and_is_named():
    records = converged_records(3, 0)
    records["S1"]["lost"] = True
    sim = Sim.uninstalling(revert_hosts=True, records=records)
    sim.subscribe()

    revert_everything_offered(sim, ("S0", "S2"))

    assert sim.core.complete
    assert {launch.agent_id for launch in sim.of(ev.Launch)} == {"S0", "S2"}
    summary = sim.core.summary(sim.now)
    assert summary["message"].endswith("; gone, not reverted: agent-1")


def test_an_agent_the_master_no_longer_knows_is_gone_and_the_uninstall_ends():
    sim = Sim.uninstalling(revert_hosts=True)
    sim.subscribe()
    sim.apply(sim.core.on_agents_known(["S0", "S2"], sim.now))

    revert_everything_offered(sim, ("S0", "S2"))

    assert sim.core.complete
    assert sim.core.summary(sim.now)["message"].endswith("; gone, not reverted: agent-1")
    step = sim.core.plan_view(sim.now)["phases"][1]["steps"][-1]
    assert step["message"] == "the agent left the cluster: not reverted"
