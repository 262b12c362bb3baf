"""The core's side of issue 21, without a server: lost KILLs sent again with backoff, launch
deadlines, a chain that cannot fit, attributes from offers, agents gone while away."""

from calico_dcos.core import events as ev
from calico_dcos.core.offers import chain_shortfall
from tests.helpers.plan_sim import Sim, offer


def converged(**kw) -> Sim:
    sim = Sim(agents=1, public=0, **kw)
    sim.subscribe()
    sim.converge()
    return sim


def test_a_kill_not_confirmed_is_sent_again_with_backoff_until_the_task_ends():
    sim = converged()
    node = sim.live_task("S0", "node")
    sim.apply(sim.core.restart("S0", "node", sim.now))  # replace the running calico-node
    assert sim.kills == [node]

    for seconds in (2.5, 5.0, 10.0):  # kill_retry 2.5 s, doubling
        sim.tick(seconds - 0.1)
        sent = len(sim.kills)
        sim.tick(0.1)
        assert len(sim.kills) == sent + 1
    step = sim.core.plan_view(sim.now)["phases"][0]["steps"][-1]
    assert step["message"] == (
        "KILL sent 4 times, Mesos has not confirmed an end yet; no word of its task for 17 s: "
        "its agent may be cut off from the master (Mesos marks an agent unreachable after "
        "1 min 15 s without its pings, by default)"
    )

    sim.update(node, "TASK_KILLED")
    sim.converge()
    assert sim.live_task("S0", "node") != node


def test_a_restarted_scheduler_sends_the_kill_again_once_reconciled():
    before = converged()
    node = before.live_task("S0", "node")
    before.apply(before.core.restart("S0", "node", before.now))  # then its KILL is lost

    after = Sim(agents=1, public=0, records=before.records, framework_id="fw-1")
    after.tasks = before.tasks
    after.subscribe()  # reconciliation answered: still RUNNING

    assert after.kills == [node]


def test_a_launch_past_its_deadline_is_killed_and_its_end_is_a_failure():
    sim = Sim(agents=1, public=0, timings={"launch_timeout_seconds": 30.0})
    sim.subscribe()
    sim.offer()
    proxy = sim.live_task("S0", "etcd-proxy")

    sim.tick(31)

    assert sim.kills == [proxy]
    assert ev.Note("agent-S0: etcd-proxy still TASK_STAGING after 30 s: killed") in sim.decisions
    sim.update(proxy, "TASK_KILLED")
    st = sim.core.agents["S0"].steps["etcd-proxy"]
    assert (st.failures, st.message) == (1, "still TASK_STAGING after 30 s")
    assert sim.core.plan_view(sim.now)["phases"][0]["steps"][0]["status"] == "DELAYED"


def test_the_chain_peak_counts_the_daemons_that_stay_running():
    chain = [({"cpus": 0.1}, True), ({"cpus": 0.1}, False), ({"cpus": 0.2}, True)]
    assert chain_shortfall({"cpus": 0.3}, chain) == {}
    short = chain_shortfall({"cpus": 0.25}, chain)
    assert list(short) == ["cpus"] and abs(short["cpus"][1] - 0.05) < 1e-9


def test_no_restarting_step_starts_where_the_whole_chain_cannot_fit():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    small = lambda: offer(f"o{sim.now}", "S0", "agent-S0", cpus=0.25)  # noqa: E731
    sim.apply(sim.core.on_offers([small()], sim.now))  # etcd-proxy (0.1) fits
    sim.update(sim.live_task("S0", "etcd-proxy"), "TASK_RUNNING")

    sim.apply(sim.core.on_offers([small()], sim.now))  # 0.15 left: docker would fit

    assert sim.steps_launched("S0") == ["etcd-proxy"]
    docker = sim.core.plan_view(sim.now)["phases"][0]["steps"][1]
    assert docker["message"] == (
        "agent-S0 can give Calico 0.35 cpus, the whole chain needs 0.4 (0.05 short): "
        "nothing restarted until it fits"
    )


def test_attributes_gained_under_the_same_id_are_read_from_the_next_offer():
    sim = Sim(agents=1, public=0, agents_constraints="rack:LIKE:r[12]")
    sim.subscribe()
    sim.offer()
    assert not sim.launches

    racked = sim.offer_for("S0") | {
        "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r2"}}]
    }
    sim.apply(sim.core.on_offers([racked], sim.now))

    assert sim.steps_launched("S0") == ["etcd-proxy"]
    assert sim.records["S0"]["attributes"] == {"rack": "r2"}


def test_agents_the_master_no_longer_knows_are_gone_and_their_records_deleted_later():
    sim = Sim(agents=2, public=0, timings={"gone_retention_seconds": 100.0})
    sim.subscribe()
    sim.converge()

    sim.apply(sim.core.on_agents_known(["S0"], sim.now))
    message = sim.core.summary(sim.now)["message"]
    assert message.startswith("1 of 1 agents done; 1 agent gone, not counted: agent-S1 gone ")
    assert sim.core.plan_view(sim.now)["gone"][0]["message"].endswith("Mesos removed it")

    sim.tick(99)
    assert not sim.of(ev.DeleteAgent)
    sim.tick(1)
    assert sim.of(ev.DeleteAgent) == [ev.DeleteAgent("S1")]
    assert "S1" not in sim.core.agents
    assert sim.core.summary(sim.now)["message"] == "1 of 1 agents done"
    assert "gone" not in sim.core.plan_view(sim.now)


def test_an_agent_gone_under_a_name_the_plan_shows_again_is_told_by_its_id():
    """The trial: a restarted embedded cluster's agents came back with the same names under
    new agent IDs, and `plan show` listed "agent-1 WAITING" beside "agent-1: gone from the
    cluster … Mesos removed it". The gone one now shows the end of its agent ID."""
    from calico_dcos.commands.operator import messages

    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()
    back = "77aa5f0e-1b2c-4d3e-8f90-a1b2c3d4e5f6-S0"  # as Mesos names agents: <master>-S<n>
    sim.agents, sim.hostnames = {back: False}, {back: "agent-S0"}
    sim.apply(sim.core.on_agents_known([back], sim.now))
    sim.offer(back)

    plan = sim.core.plan_view(sim.now)
    assert [phase["name"] for phase in plan["phases"]] == ["agent-S0"]
    [gone] = plan["gone"]
    assert (gone["name"], gone["label"]) == ("agent-S0", "agent-S0 (agent S0)")
    assert "agent-S0 (agent S0): gone from the cluster since " in "\n".join(messages(plan))
    summary = sim.core.summary(sim.now)["message"]
    assert "1 agent gone, not counted: agent-S0 (agent S0) gone from the cluster" in summary


def test_an_unreachable_agents_problem_line_tells_it_by_its_id_when_its_name_repeats():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    sim.converge()
    sim.update(sim.live_task("S0", "node"), "TASK_UNREACHABLE")
    back = "77aa5f0e-1b2c-4d3e-8f90-a1b2c3d4e5f6-S0"
    sim.agents, sim.hostnames = {back: False}, {back: "agent-S0"}
    sim.apply(sim.core.on_agents_known([back], sim.now))
    sim.offer(back)
    problems = sim.core.summary(sim.now)["problems"]
    assert any(p.startswith("agent-S0 (agent S0): unreachable") for p in problems), problems


def test_a_gone_agents_name_alone_when_no_one_else_has_it():
    sim = Sim(agents=2, public=0)
    sim.subscribe()
    sim.converge()
    sim.apply(sim.core.on_agents_known(["S0"], sim.now))
    [gone] = sim.core.plan_view(sim.now)["gone"]
    assert gone["label"] == gone["name"] == "agent-S1"


def test_the_end_of_a_mesos_agent_id_tells_two_clusters_agents_apart():
    from calico_dcos.core.views import gone_label, short_agent_id

    assert short_agent_id("cc16046d-d346-424b-9d99-333bb8be82cf-S0") == "…be82cf-S0"
    assert short_agent_id("S0") == "S0"
    assert gone_label("agent-1", "cc16046d-d346-424b-9d99-333bb8be82cf-S0", True) == (
        "agent-1 (agent …be82cf-S0)"
    )
