"""An agent is public by what it is, never by the role its offer was allocated to.

Mesos offers a MULTI_ROLE framework a private agent's unreserved resources under any of its
roles (apache/mesos src/master/allocator/mesos/hierarchical.cpp), so `slave_public` in
`allocation_info` says nothing about the agent: the core must look at the `public_ip:true`
attribute and at reservations, and its tasks must copy each offered resource's reservation.
"""

from __future__ import annotations

from calico_dcos.core import events as ev
from tests.helpers.plan_sim import Sim


def allocated_offer(offer_id: str, agent_id: str, role: str, reserved: str, attributes=()):
    def scalar(name, value):
        return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": reserved,
                "allocation_info": {"role": role}}  # fmt: skip

    return {
        "id": {"value": offer_id},
        "agent_id": {"value": agent_id},
        "hostname": f"agent-{agent_id}",
        "allocation_info": {"role": role},
        "resources": [scalar("cpus", 4.0), scalar("mem", 4096.0)],
        "attributes": list(attributes),
    }


PUBLIC_IP = {"name": "public_ip", "type": "TEXT", "text": {"value": "true"}}


def launches(decisions: list) -> list[ev.Launch]:
    return [d for d in decisions if isinstance(d, ev.Launch)]


def test_a_private_agent_offered_under_slave_public_stays_private_and_copies_the_reservation():
    sim = Sim(agents=1, public=0)
    sim.subscribe()
    offer = allocated_offer("o1", "S0", role="slave_public", reserved="*")
    launched = launches(sim.apply(sim.core.on_offers([offer], sim.now)))
    assert launched, "the offer is used"
    assert sim.records["S0"]["public"] is False
    for resource in launched[0].task_info["resources"]:
        assert resource["role"] == "*"
        assert resource["allocation_info"] == {"role": "slave_public"}


def test_a_public_agent_is_known_by_its_attribute_or_its_reservation():
    for attributes, reserved in (([PUBLIC_IP], "*"), ((), "slave_public")):
        sim = Sim(agents=1, public=0, agents_include_public="true")
        sim.subscribe()
        offer = allocated_offer("o1", "S0", "slave_public", reserved, attributes)
        launched = launches(sim.apply(sim.core.on_offers([offer], sim.now)))
        assert sim.records["S0"]["public"] is True
        assert {r["role"] for r in launched[0].task_info["resources"]} == {reserved}


def test_a_record_wrongly_marked_public_is_mended_by_the_next_offer():
    sim = Sim(agents=1, public=0, records={
        "S0": {"agent_id": "S0", "hostname": "agent-S0", "public": True, "steps": {}}})  # fmt: skip
    sim.subscribe()
    sim.apply(sim.core.on_offers([allocated_offer("o1", "S0", "*", "*")], sim.now))
    assert sim.records["S0"]["public"] is False
