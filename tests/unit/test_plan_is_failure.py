"""Which task ends are failures an operator must see (logged as WARNING by the scheduler),
and which the plan expects (INFO): `Core.is_failure`, asked before the update is taken in.
The decision core, with the plan simulator."""

from calico_dcos.core import events as ev
from tests.helpers.plan_sim import Sim, status


def converged() -> Sim:
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()
    return sim


def test_a_daemon_that_crashes_or_is_killed_by_someone_else_is_a_failure():
    sim = converged()
    node = sim.live_task("S0", "node")

    assert sim.core.is_failure(status(node, "TASK_FAILED", "S0", message="exited 1"))
    assert sim.core.is_failure(status(node, "TASK_KILLED", "S0", message="killed by someone"))
    assert sim.core.is_failure(status(node, "TASK_ERROR", "S0"))
    assert not sim.core.is_failure(status(node, "TASK_RUNNING", "S0"))
    assert not sim.core.is_failure(status("calico-node__S0__0000__9", "TASK_FAILED", "S0"))


def test_a_restarts_kill_is_expected_and_the_task_after_it_fails_again_as_a_failure():
    """The trial's case: `plan restart` kills the running calico-node; its TASK_KILLED is
    the plan's own doing (INFO), while the next task's crash is a failure (WARNING)."""
    sim = converged()
    node = sim.live_task("S0", "node")
    sim.apply(sim.core.restart("S0", "node", sim.now))
    killed = status(node, "TASK_KILLED", "S0", message="Command terminated with signal Killed")

    assert not sim.core.is_failure(killed)
    sim.update(node, "TASK_KILLED")
    assert not sim.core.is_failure(killed)  # a stale repeat, once taken in
    sim.converge()
    again = sim.live_task("S0", "node")
    assert again != node
    assert sim.core.is_failure(status(again, "TASK_FAILED", "S0"))


def test_a_launch_killed_past_its_deadline_is_a_failure_and_a_lost_task_is_not():
    sim = Sim(agents=1, public=0, timings={"launch_timeout_seconds": 30.0})
    sim.subscribe()
    sim.offer()
    proxy = sim.live_task("S0", "etcd-proxy")
    assert not sim.core.is_failure(status(proxy, "TASK_LOST", "S0"))  # relaunched at once

    sim.tick(31)  # killed for its deadline: the plan counts that end as a failure

    assert sim.core.is_failure(status(proxy, "TASK_KILLED", "S0"))


def test_the_uninstalls_kills_are_expected_and_a_failed_revert_is_a_failure():
    sim = Sim.uninstalling(revert_hosts=True)
    sim.subscribe()
    doomed = sim.of(ev.Kill)[0]
    assert not sim.core.is_failure(status(doomed.task_id, "TASK_KILLED", doomed.agent_id))
    sim.kill_everything()

    sim.offer("S0", "S1", "S2")

    [launch] = sim.of(ev.Launch)
    revert = launch.task_info["task_id"]["value"]
    assert sim.core.is_failure(status(revert, "TASK_FAILED", launch.agent_id, message="exit 1"))
    assert not sim.core.is_failure(status(revert, "TASK_FINISHED", launch.agent_id))
