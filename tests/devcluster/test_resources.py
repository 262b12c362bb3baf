"""Resource arithmetic the master uses to check launches against offers."""

from __future__ import annotations

import pytest

from calico_dcos.devcluster import resources
from calico_dcos.devcluster.resources import Resources


def ports(*ranges: tuple[int, int]) -> dict:
    items = [{"begin": b, "end": e} for b, e in ranges]
    return {"name": "ports", "type": "RANGES", "ranges": {"range": items}}


def test_taking_ports_splits_the_range_and_the_same_port_no_longer_fits():
    pool = Resources(ranges={"ports": [(31000, 32000)]})
    taken = resources.parse([ports((31005, 31005))])["*"]
    assert pool.contains(taken)
    pool.subtract(taken)
    assert pool.ranges["ports"] == [(31000, 31004), (31006, 32000)]
    assert not pool.contains(taken)
    pool.add(taken)
    assert pool.ranges["ports"] == [(31000, 32000)]


def test_resources_group_by_reservation_in_both_formats():
    cpus = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}}
    pools = resources.parse(
        [
            cpus,
            {**cpus, "role": "slave_public"},
            {**cpus, "reservations": [{"type": "STATIC", "role": "slave_public"}]},
        ]
    )
    assert pools["*"].scalars == {"cpus": 0.5}
    assert pools["slave_public"].scalars == {"cpus": 1.0}


def test_negative_scalar_is_invalid():
    with pytest.raises(ValueError):
        resources.parse([{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}])


def test_offered_format_follows_reservation_refinement():
    pool = Resources(scalars={"cpus": 1.0})
    legacy = pool.to_json("slave_public", "slave_public", refinement=False)
    refined = pool.to_json("slave_public", "slave_public", refinement=True)
    assert legacy[0]["role"] == "slave_public" and "reservations" not in legacy[0]
    assert refined[0]["reservations"] == [{"type": "STATIC", "role": "slave_public"}]
    assert refined[0]["allocation_info"] == {"role": "slave_public"}
