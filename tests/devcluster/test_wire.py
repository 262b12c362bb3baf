"""The call parser's shortcuts give what the full walk gives (calico_dcos/devcluster/wire.py).

Pure functions, no cluster: `call_json` answers a plain ACKNOWLEDGE without building the
protobuf message, `to_json` writes the dictionary without `MessageToDict`; both must equal the
reference for every shape, and anything unusual must take the full walk.
"""

from __future__ import annotations

import json
import re

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


def launch(**task: object) -> dict:
    """An ACCEPT with one LAUNCH of a task made of `task`'s fields over a minimal TaskInfo."""
    info = {
        "name": "calico-node", "task_id": {"value": "calico-node__S1__1"},
        "agent_id": {"value": "S1"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1},
                       "role": "*", "allocation_info": {"role": "*"}}],
        "command": {"shell": True, "value": "exec ./calico-node",
                    "uris": [{"value": "https://example.invalid/x.tgz", "cache": True}]},
        **task,
    }  # fmt: skip
    return {
        "type": "ACCEPT",
        "framework_id": {"value": "fw-1"},
        "accept": {
            "offer_ids": [{"value": "O1"}, {"value": "O2"}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [info]}}],
            "filters": {"refuse_seconds": 5},
        },
    }


def exact(value: dict) -> str:
    """The call as text, key order included (what a client of /master/state would read)."""
    return json.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        launch(),
        launch(kill_policy={"grace_period": {"nanoseconds": 3_000_000_000}}),  # int64: text
        launch(health_check={"type": "COMMAND", "command": {"value": "true"},
                             "interval_seconds": 1, "grace_period_seconds": 0.5}),  # fmt: skip
        launch(labels={"labels": {"key": "single", "value": "one"}}),  # one, for a repeated
        launch(unknown_key=[1, 2], executor=None),  # ignored, and null leaves a field unset
        {"agent_id": {"value": "S1"}, **launch()},  # keys in another order than the fields'
        launch(resources=[]),  # an empty repeated field is not set
        {"type": "DECLINE", "framework_id": {"value": "fw-1"},
         "decline": {"offer_ids": [{"value": "O1"}], "filters": {"refuse_seconds": 3600.0}}},
        {"type": "REVIVE", "framework_id": {"value": "fw-1"}, "revive": {"roles": "*"}},
    ],
)  # fmt: skip
def test_the_direct_path_gives_the_full_parse_key_order_and_all(value):
    direct = wire.direct_json(value)
    assert direct is not None
    assert exact(direct) == exact(wire.to_json(wire.parse_json(value)))


@pytest.mark.parametrize(
    "value",
    [
        launch(data="aGVsbG8="),  # bytes: stout's base64
        launch(kill_policy={"grace_period": {"nanoseconds": "3000000000"}}),  # text for a number
        launch(kill_policy={"grace_period": {"nanoseconds": 2**63}}),  # out of int64's range
        launch(kill_policy={"grace_period": {"nanoseconds": 3.0}}),  # a double for an int
        launch(name="caf\u00e9"),  # non-ASCII text
        launch(labels={"labels": [None]}),  # null in a list
        launch(command={"shell": "true", "value": "x"}),  # text for a boolean
        launch(resources=[{"name": "cpus", "type": "NO_SUCH_TYPE"}]),  # unknown enum name
        launch(task_id=None),  # a required field missing: stout's error from the full walk
        launch(name=["a", "b"]),  # a list for a single field: stout's error
        {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"user": "root", "name": "x",
                                                               "failover_timeout": True}}},
    ],
)  # fmt: skip
def test_anything_unusual_takes_the_full_walk(value):
    assert wire.direct_json(value) is None
    try:
        expected = wire.to_json(wire.parse_json(value))
    except wire.CallError as exc:
        with pytest.raises(wire.CallError, match=re.escape(str(exc))):
            wire.call_json(value)
    else:
        assert wire.call_json(value) == expected
