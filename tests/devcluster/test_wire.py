"""The call parser's shortcuts give what the full walk gives (calico_dcos/devcluster/wire.py).

Pure functions, no cluster: `call_json` answers a plain ACKNOWLEDGE without building the
protobuf message, `to_json` writes the dictionary without `MessageToDict`; both must equal the
reference for every shape, and anything unusual must take the full walk.
"""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from calico_dcos.devcluster import wire

UUID = "ptl7yf9hRHGmGt5NZTU9QA=="


def acknowledge(uuid: object = UUID, **extra: object) -> dict:
    return {
        "type": "ACKNOWLEDGE",
        "framework_id": {"value": "fw-1"},
        "acknowledge": {
            "agent_id": {"value": "S1"},
            "task_id": {"value": "calico-node__S1__1"},
            "uuid": uuid,
            **extra,
        },
    }


@pytest.mark.parametrize(
    "value",
    [
        acknowledge(),
        acknowledge(" ptl7yf9hRHGmGt5NZTU9QA=="),  # stout skips whitespace
        acknowledge("ptl7yf9hRHGmGt5NZTU9QA"),  # no padding
        acknowledge("ptl7yf9hRHGmGt5NZTU9QB=="),  # trailing bits that re-encode differently
        acknowledge(unknown_key=1),  # ignored by stout, so not the plain shape
        {**acknowledge(), "framework_id": {"value": "fw-\u00e9"}},
    ],
)
def test_call_json_is_the_full_parse(value):
    expected = wire.to_json(wire.parse_json(value))
    assert wire.call_json(value) == expected
    assert expected == json_format.MessageToDict(
        wire.parse_json(value), preserving_proto_field_name=True
    )


def test_a_plain_acknowledge_skips_the_protobuf_message():
    assert wire._plain_acknowledge(acknowledge()) is not None
    assert wire._plain_acknowledge(acknowledge(" " + UUID)) is None
    assert wire._plain_acknowledge(acknowledge("ptl7yf9hRHGmGt5NZTU9QB==")) is None


def test_errors_keep_stout_s_words():
    with pytest.raises(wire.CallError, match="Missing required fields: acknowledge.uuid"):
        wire.call_json({**acknowledge(), "acknowledge": {"agent_id": {"value": "S1"},
                                                         "task_id": {"value": "t"}}})  # fmt: skip
    with pytest.raises(wire.CallError, match="Invalid character"):
        wire.call_json(acknowledge("not*base64"))


def test_to_json_matches_message_to_dict_for_numbers_enums_and_bytes():
    value = {
        "type": "ACCEPT",
        "framework_id": {"value": "fw-1"},
        "accept": {
            "offer_ids": [{"value": "O1"}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                "name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "S1"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
                "data": "aGVsbG8=",
                "kill_policy": {"grace_period": {"nanoseconds": 3000000000}},
                "labels": {"labels": [{"key": "k", "value": "v"}]},
            }]}}],
            "filters": {"refuse_seconds": "Infinity"},
        },
    }  # fmt: skip
    message = wire.parse_json(value)
    assert wire.to_json(message) == json_format.MessageToDict(
        message, preserving_proto_field_name=True
    )
