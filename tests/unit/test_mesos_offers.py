"""Offer helpers the scheduler's core uses (calico_dcos.mesos): what makes an agent public,
and task resources that copy each offered resource's reservation and allocation_info."""

from __future__ import annotations

from calico_dcos.mesos import offer_is_public, task_resources


def scalar(name: str, value: float, **extra) -> dict:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, **extra}


def offer(role: str, resources: list[dict], attributes: list[dict] | None = None) -> dict:
    return {
        "allocation_info": {"role": role},
        "resources": [{**r, "allocation_info": {"role": role}} for r in resources],
        "attributes": attributes or [],
    }


PUBLIC_IP = {"name": "public_ip", "type": "TEXT", "text": {"value": "true"}}


def test_a_private_agent_offered_under_slave_public_is_not_public():
    private = offer("slave_public", [scalar("cpus", 4, role="*"), scalar("mem", 4096)])
    assert not offer_is_public(private)


def test_public_by_attribute_or_by_reservation_in_either_format():
    assert offer_is_public(offer("slave_public", [scalar("cpus", 4)], [PUBLIC_IP]))
    assert offer_is_public(offer("slave_public", [scalar("cpus", 4, role="slave_public")]))
    refined = scalar("cpus", 4, reservations=[{"type": "STATIC", "role": "slave_public"}])
    assert offer_is_public(offer("slave_public", [refined]))


def test_task_resources_copy_the_offered_reservation_and_the_allocation():
    private = offer("slave_public", [scalar("cpus", 4, role="*"), scalar("mem", 4096, role="*")])
    taken = task_resources(private, {"cpus": 0.5, "mem": 256})
    assert taken == [
        scalar("cpus", 0.5, role="*", allocation_info={"role": "slave_public"}),
        scalar("mem", 256, role="*", allocation_info={"role": "slave_public"}),
    ]
    refined = scalar("cpus", 4, reservations=[{"type": "STATIC", "role": "slave_public"}])
    taken = task_resources(offer("slave_public", [refined]), {"cpus": 1})
    assert taken[0]["reservations"] == [{"type": "STATIC", "role": "slave_public"}]
    assert "role" not in taken[0]


def test_an_amount_split_over_reserved_and_unreserved_resources():
    mixed = offer("slave_public", [scalar("cpus", 0.3, role="slave_public"), scalar("cpus", 1)])
    taken = task_resources(mixed, {"cpus": 0.5})
    assert [(r.get("role"), r["scalar"]["value"]) for r in taken] == [("slave_public", 0.3),
                                                                       (None, 0.2)]  # fmt: skip
    assert task_resources(mixed, {"cpus": 2}) is None


def test_fit_to_offer_rewrites_what_the_step_asked_for():
    from calico_dcos.mesos import fit_to_offer

    private = offer("slave_public", [scalar("cpus", 4, role="*"), scalar("mem", 4096, role="*")])
    asked = {
        "name": "calico-cni",
        "resources": [
            scalar("cpus", 0.1, role="slave_public", allocation_info={"role": "slave_public"}),
            scalar("mem", 64, role="slave_public", allocation_info={"role": "slave_public"}),
        ],
    }
    fitted = fit_to_offer(asked, private)
    assert [(r["name"], r["role"], r["scalar"]["value"]) for r in fitted["resources"]] == [
        ("cpus", "*", 0.1),
        ("mem", "*", 64),
    ]
    assert fit_to_offer({**asked, "resources": [scalar("cpus", 99)]}, private)["resources"] == [
        scalar("cpus", 99)
    ]
