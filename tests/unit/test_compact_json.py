"""Held JSON bytes take their own size, not orjson's write buffer (issue 17, peak RSS)."""

from __future__ import annotations

import tracemalloc

import orjson

from calico_dcos import compact_json
from calico_dcos.core.engine import offer_from_json, offer_json
from calico_dcos.store import encode_document

OFFER = {
    "id": {"value": "4c5d1f2e-offer-O17"},
    "agent_id": {"value": "4c5d1f2e-S3"},
    "hostname": "agent-3",
    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}}],
}


def held_bytes_per_item(make) -> float:
    """Memory that 200 results of `make()` hold, per result (tracemalloc, bytes)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = [make() for _ in range(200)]
        return (tracemalloc.get_traced_memory()[0] - before) / len(held)
    finally:
        tracemalloc.stop()


def test_same_bytes_as_orjson():
    assert compact_json.dumps(OFFER) == orjson.dumps(OFFER)
    sorted_keys = compact_json.dumps({"b": 1, "a": 2}, option=orjson.OPT_SORT_KEYS)
    assert sorted_keys == b'{"a":2,"b":1}'


def test_held_results_take_about_their_length():
    size = len(orjson.dumps(OFFER))
    assert size < 300
    # orjson's own result holds its whole write buffer (4 KiB with orjson 3.13)
    for make in (
        lambda: compact_json.dumps(OFFER),
        lambda: offer_json(OFFER),
        lambda: encode_document(OFFER),
    ):
        assert held_bytes_per_item(make) < size + 128


def test_held_offer_reads_back():
    assert offer_from_json(offer_json(OFFER)) == OFFER
