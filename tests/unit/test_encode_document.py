"""JSON made with orjson (`store.encode_document`, held offers): the bytes the standard
library wrote where they are the same, and the same values read back where they differ."""

import json

from calico_dcos.core.engine import offer_from_json, offer_json
from calico_dcos.core.records import AgentState, agent_record
from calico_dcos.store import MAX_RECORD_BYTES, encode_document, parse_document


def stdlib(document: dict) -> bytes:
    """What `encode_document` wrote before orjson."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def a_record(hostname: str = "agent-7.example.com", message: str = "installed") -> dict:
    agent = AgentState("5b1f0c1e-77aa-4a9e-9d0b-2f0c8a1d3e4f-S7", hostname, True, {"zone": "b"})
    for n, step in enumerate(("etcd-proxy", "docker", "cni", "calico-node", "libnetwork")):
        st = agent.step(step)
        st.task_id = f"calico-{step}__{agent.agent_id}__0f3a__1"
        st.state, st.fingerprint, st.attempts = "TASK_RUNNING", "0f3a" * 16, 1
        st.updated, st.retry_at, st.message = 1764430000.123456 + n, 0.25 * n, message
    return agent_record(agent)


def test_ascii_records_are_the_bytes_the_standard_library_wrote():
    record = a_record()
    assert encode_document(record) == stdlib(record)
    meta = {"stage": "revert", "revert_hosts": True, "n": 2**63 - 1, "x": -0.0, "y": 1e300}
    assert encode_document(meta) == stdlib(meta)


def test_text_beyond_ascii_is_utf8_the_same_value_and_never_longer():
    record = a_record("agent-é-ß-😀", "échec: 端口 already in use")
    data = encode_document(record)
    assert "😀".encode() in data  # UTF-8, not \ud83d\ude00
    assert parse_document("x", data) == parse_document("x", stdlib(record)) == record
    assert len(data) < len(stdlib(record)) <= MAX_RECORD_BYTES


def test_what_orjson_refuses_is_encoded_as_before():
    for document in ({"message": "lone \ud800"}, {"big": 2**70}, {1: "key not text"}):
        assert encode_document(document) == stdlib(document)


def test_bytes_are_taken_as_they_are():
    assert encode_document(b'{"a":1}') == b'{"a":1}'


def test_held_offers_come_back_as_they_were():
    """`engine.offer_json`: orjson's bytes, or the standard library's text where orjson would
    not give the offer back as it was (a NaN, a lone surrogate, a huge integer, a null)."""
    offer = {
        "id": {"value": "o-1"},
        "agent_id": {"value": "S1"},
        "hostname": "agent-é",
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 3.7}}],
    }
    assert isinstance(offer_json(offer), bytes)
    assert offer_from_json(offer_json(offer)) == offer
    for odd in (float("inf"), "\ud800", 2**70, None):
        changed = {**offer, "odd": odd}
        assert isinstance(offer_json(changed), str)
        assert offer_from_json(offer_json(changed)) == changed
    nan = offer_from_json(offer_json({**offer, "odd": float("nan")}))["odd"]
    assert nan != nan
