"""The plan-only simulation (`calico-dcos bench --simulate`) allocates as Mesos does for a
framework with two roles (`*` and `slave_public`, as the scheduler subscribes): filters are
the role's own (apache/mesos src/master/allocator/mesos/hierarchical.cpp, `isFiltered`
looks in `offerFilters[role][slave]`; `recoverResources` files a refusal under the refused
offer's role), so an agent declined under one role comes back under the other at the next
round, and a public agent's resources, reserved to `slave_public`, only ever under that."""

from calico_dcos.core import events as ev
from calico_dcos.simulate import SimSettings, Simulation

AGENT = "5f1c0000-sim-S0"


def simulation(**settings) -> tuple[Simulation, list[dict]]:
    """One agent's simulated master, and the offers it makes: the plan does not answer them
    (the test answers for it)."""
    sim = Simulation(SimSettings(**{"agents": 1, **settings}))
    made: list[dict] = []
    sim.core.on_offers = lambda offers, now: made.extend(offers) or []
    return sim, made


def offered(sim: Simulation) -> list[tuple[str, str]]:
    """(offer ID, role) of the agent's outstanding offers."""
    return [(oid, o[3]) for oid, o in sim.offered.items() if o[0] == AGENT]


def decline(sim: Simulation, offer_id: str, seconds: float) -> None:
    sim.apply([ev.Decline((offer_id,), seconds)])


def test_a_private_agent_declined_under_one_role_is_offered_under_the_other_next_round():
    sim, _ = simulation()
    sim.allocate(periodic=False)
    [(first, role)] = offered(sim)
    assert role == "*"  # equal shares and counts: the name decides (`compareDRF`)

    decline(sim, first, 5.0)
    sim.now += 1.0
    sim.allocate(periodic=False)

    [(second, other)] = offered(sim)
    assert other == "slave_public"  # the `*` filter does not hide it from slave_public
    decline(sim, second, 5.0)
    sim.now += 1.0
    sim.allocate(periodic=False)
    assert offered(sim) == []  # both roles filter it now

    sim.apply([ev.Revive(("work",))])  # clears the filters of every role
    sim.allocate(periodic=False)
    assert [role for _, role in offered(sim)] == ["*"]


def test_a_public_agents_resources_are_offered_under_slave_public_only():
    sim, made = simulation(public_agents=1)
    sim.allocate(periodic=False)
    [(first, role)] = offered(sim)
    assert role == "slave_public"
    assert {r["role"] for r in made[0]["resources"]} == {"slave_public"}  # reserved, not `*`

    decline(sim, first, 5.0)
    sim.now += 1.0
    sim.allocate(periodic=False)

    assert offered(sim) == []  # no other role may have it


def test_a_whole_install_gets_offers_under_both_roles_and_converges():
    result = Simulation(SimSettings(agents=50, public_agents=10)).run()

    assert result.converged
    assert result.offers_by_role["*"] > 0 and result.offers_by_role["slave_public"] > 0
    assert sum(result.offers_by_role.values()) == result.offers
