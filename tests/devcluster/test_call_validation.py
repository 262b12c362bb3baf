"""Calls checked as the real master checks them, through a client that is not pymesos
(plain `requests` reading RecordIO, tests/helpers/raw_client.py).

- A body that does not convert to a `Call` (stout's JSON->protobuf rules: types, required
  fields, base64, enums) is a 400 for the whole call, and the offers stay outstanding
  (apache/mesos src/master/http.cpp, `Master::Http::scheduler`).
- An invalid task is a TASK_ERROR / REASON_TASK_INVALID with the master's message
  (src/master/validation.cpp, src/common/validation.cpp).
- LAUNCH_GROUP runs; other operations are refused as the master refuses them.
"""

from __future__ import annotations

import copy

import pytest

from tests.helpers.devcluster import framework_info
from tests.helpers.raw_client import RawScheduler


@pytest.fixture
def raw(cluster):
    with RawScheduler(cluster.base_url) as client:
        yield client


def private_offer(cluster, raw: RawScheduler) -> dict:
    agent_id = cluster.agents[0].agent_id
    raw.wait_for(lambda e: e["type"] == "OFFERS" and any(
        o["agent_id"]["value"] == agent_id for o in e["offers"]["offers"]))  # fmt: skip
    return next(o for o in raw.offers() if o["agent_id"]["value"] == agent_id)


def task(offer: dict, task_id: str, **extra) -> dict:
    """A small command task on `offer`, resources copying the offered reservation."""
    own = {k: v for k, v in offer["resources"][0].items() if k in ("role", "reservations")}
    return {
        "name": "calico-cni",
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}, **own},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}, **own},
        ],
        "command": {"value": "true"},
        **extra,
    }


def launch(offer: dict, *tasks: dict, **operation) -> dict:
    return {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}, **operation}],
    }


MALFORMED = {
    "wrong JSON type": (
        lambda t: t["resources"][0]["scalar"].update(value="lots"),
        "Failed to parse 'lots' as a JSON number for field 'value'",
    ),
    "object for a string": (
        lambda t: t.update(name={"x": 1}),
        "Not expecting a JSON object for field 'name'",
    ),
    "missing required field": (
        lambda t: t.pop("name"),
        "Missing required fields: accept.operations[0].launch.task_infos[0].name",
    ),
    "unknown enum in a required field": (
        lambda t: t["resources"][0].update(type="SCALARS"),
        "Failed to find enum for 'SCALARS'",
    ),
    "container without type": (
        lambda t: t.update(container={"docker": {"image": "x"}}),
        "Missing required fields: accept.operations[0].launch.task_infos[0].container.type",
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_accept_is_a_400_and_the_offer_stays_outstanding(cluster, raw, name):
    spoil, message = MALFORMED[name]
    offer = private_offer(cluster, raw)
    bad = task(offer, "bad-1")
    spoil(bad)
    response = raw.call("ACCEPT", launch(offer, bad))
    assert response.status_code == 400
    assert response.text == f"Failed to convert JSON into Call protobuf: {message}"
    assert raw.call("ACCEPT", launch(offer, task(offer, "good-1"))).status_code == 202
    raw.wait_for_update("good-1", "TASK_STARTING")


def test_kill_and_acknowledge_with_wrong_types_are_400_not_500(cluster, raw):
    response = raw.call("KILL", {"task_id": "abc"})
    assert response.status_code == 400
    assert response.text.endswith("Not expecting a JSON string for field 'task_id'")
    response = raw.call("KILL", {"task_id": {"value": 7}})
    assert response.status_code == 400
    ack = {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "not base64!"}
    response = raw.call("ACKNOWLEDGE", ack)
    assert response.status_code == 400
    assert response.text == (
        "Failed to convert JSON into Call protobuf:"
        " Failed to base64 decode bytes field 'uuid': Invalid character '!'"
    )


def test_unknown_call_type_is_expecting_type(cluster, raw):
    response = raw.call("SNOOZE")
    assert (response.status_code, response.text) == (
        400,
        "Failed to validate scheduler::Call: Expecting 'type' to be present",
    )


def test_a_bad_uuid_is_refused_before_the_framework_is_looked_up(cluster):
    """validation.cpp checks ACKNOWLEDGE's uuid in `call::validate`, before http.cpp looks
    the framework up: an unknown framework with a bad uuid gets the uuid error."""
    import requests

    call = {
        "type": "ACKNOWLEDGE", "framework_id": {"value": "nobody"},
        "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "AAAA"},
    }  # fmt: skip
    response = requests.post(f"{cluster.base_url}/api/v1/scheduler", json=call, timeout=10)
    assert (response.status_code, response.text) == (
        400,
        "Failed to validate scheduler::Call: Not a valid UUID",
    )


INVALID_TASKS = {
    "environment variable without a value": (
        {"command": {"value": "true", "environment": {"variables": [{"name": "X"}]}}},
        "Task's `CommandInfo` is invalid: Environment variable 'X' of type 'VALUE' must have"
        " a value set",
    ),
    "health check without type": (
        {"health_check": {"command": {"value": "true"}}},
        "Task uses invalid health check: HealthCheck must specify 'type'",
    ),
    "health check with a bad path": (
        {"health_check": {"type": "HTTP", "http": {"port": 80, "path": "ping"}}},
        "Task uses invalid health check: The path 'ping' of HTTP health check must start with '/'",
    ),
    "docker parameter name": (
        {
            "container": {
                "type": "DOCKER",
                "docker": {"image": "x", "parameters": [{"key": "name", "value": "y"}]},
            }
        },  # fmt: skip
        "Task's `ContainerInfo` is invalid: Parameter in DockerInfo must not be 'name'",
    ),
    "DOCKER container without docker": (
        {"container": {"type": "DOCKER"}},
        "Task's `ContainerInfo` is invalid: DockerInfo 'docker' is not set for DOCKER typed"
        " ContainerInfo",
    ),
}


@pytest.mark.parametrize("name", sorted(INVALID_TASKS))
def test_invalid_task_gets_the_master_s_task_error(cluster, raw, name):
    extra, message = INVALID_TASKS[name]
    offer = private_offer(cluster, raw)
    bad = {**task(offer, "bad-1"), **copy.deepcopy(extra)}
    assert raw.call("ACCEPT", launch(offer, bad)).status_code == 202
    error = raw.wait_for_update("bad-1", "TASK_ERROR")
    assert (error["reason"], error["source"], error["message"]) == (
        "REASON_TASK_INVALID",
        "SOURCE_MASTER",
        message,
    )
    assert "uuid" not in error


def test_overlapping_port_ranges_and_text_resources_are_invalid(cluster, raw):
    offer = private_offer(cluster, raw)
    spans = [{"begin": 31000, "end": 31005}, {"begin": 31003, "end": 31004}]
    ports = {"name": "ports", "type": "RANGES", "ranges": {"range": spans}}
    text = {"name": "label", "type": "TEXT", "text": {"value": "x"}}
    overlapping = task(offer, "ports-1")
    overlapping["resources"].append(ports)
    texty = task(offer, "text-1")
    texty["resources"].append(text)
    assert raw.call("ACCEPT", launch(offer, overlapping, texty)).status_code == 202
    first = raw.wait_for_update("ports-1", "TASK_ERROR")["message"]
    second = raw.wait_for_update("text-1", "TASK_ERROR")["message"]
    assert first.startswith("Task uses invalid resources: Invalid resources: Resource 'ports")
    assert first.endswith("is invalid: Invalid ranges resource: overlapping ranges")
    assert second.endswith("is invalid: Unsupported resource type")


def test_an_operation_id_on_launch_is_a_task_error(cluster, raw):
    offer = private_offer(cluster, raw)
    body = launch(offer, task(offer, "id-1"), id={"value": "op-1"})
    assert raw.call("ACCEPT", body).status_code == 202
    error = raw.wait_for_update("id-1", "TASK_ERROR")
    assert error["message"] == "The `id` field cannot be set on LAUNCH operations"


def test_a_task_id_of_an_unreachable_task_cannot_be_reused(cluster):
    info = framework_info(capabilities=[{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}])
    with RawScheduler(cluster.base_url, info) as raw:
        offer = private_offer(cluster, raw)
        assert raw.call("ACCEPT", launch(offer, task(offer, "u-1", name="daemon"))).ok
        raw.acknowledge(raw.wait_for_update("u-1", "TASK_STARTING"))
        cluster.remove_agent(offer["agent_id"]["value"])
        raw.wait_for_update("u-1", "TASK_UNREACHABLE")
        still_there = {"value": cluster.agents[0].agent_id}
        other = next(o for o in raw.offers() if o["agent_id"] == still_there)
        assert raw.call("ACCEPT", launch(other, task(other, "u-1"))).ok
        error = raw.wait_for_update("u-1", "TASK_ERROR")
    assert error["message"] == "Task reuses the ID of an unreachable task: u-1"


def test_launch_group_runs_its_tasks(cluster, raw):
    offer = private_offer(cluster, raw)
    executor = {
        "executor_id": {"value": "group-executor"}, "type": "DEFAULT",
        "resources": task(offer, "x")["resources"],
    }  # fmt: skip
    members = [{**task(offer, "g-1"), "name": "daemon"}, {**task(offer, "g-2"), "name": "daemon"}]
    group = {"executor": executor, "task_group": {"tasks": members}}
    for member in group["task_group"]["tasks"]:
        del member["command"]
        member["command"] = {"value": "sleep 1000"}
    body = {"offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH_GROUP", "launch_group": group}]}  # fmt: skip
    assert raw.call("ACCEPT", body).status_code == 202
    raw.wait_for_update("g-1", "TASK_STARTING")
    raw.wait_for_update("g-2", "TASK_STARTING")


def test_launch_group_without_executor_type_is_a_group_error(cluster, raw):
    offer = private_offer(cluster, raw)
    group = {"executor": {"executor_id": {"value": "e"}},
             "task_group": {"tasks": [task(offer, "g-1")]}}  # fmt: skip
    body = {"offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH_GROUP", "launch_group": group}]}  # fmt: skip
    assert raw.call("ACCEPT", body).status_code == 202
    error = raw.wait_for_update("g-1", "TASK_ERROR")
    assert (error["reason"], error["message"]) == (
        "REASON_TASK_GROUP_INVALID",
        "'ExecutorInfo.type' must be set",
    )


def test_reserve_with_an_id_gets_operation_error_not_silence(cluster, raw):
    offer = private_offer(cluster, raw)
    reserve = {"type": "RESERVE", "id": {"value": "r-1"},
               "reserve": {"resources": [offer["resources"][0]]}}  # fmt: skip
    body = {"offer_ids": [offer["id"]], "operations": [reserve]}
    assert raw.call("ACCEPT", body).status_code == 202
    event = raw.wait_for(lambda e: e["type"] == "UPDATE_OPERATION_STATUS")
    status = event["update_operation_status"]["status"]
    assert status["state"] == "OPERATION_ERROR"
    assert status["operation_id"] == {"value": "r-1"}
    assert "RESOURCE_PROVIDER capability" in status["message"]


def test_protobuf_calls_and_a_protobuf_stream(cluster):
    """http.cpp takes `application/x-protobuf` bodies, and streams protobuf events to a
    client whose Accept allows only protobuf."""
    import requests

    from calico_dcos.devcluster import wire
    from tests.helpers.raw_client import read_records_bytes

    call = wire.message_class("mesos.v1.scheduler.Call")()
    call.type = call.SUBSCRIBE
    call.subscribe.framework_info.user = "nobody"
    call.subscribe.framework_info.name = "protobuf-client"
    response = requests.post(
        f"{cluster.base_url}/api/v1/scheduler", data=call.SerializeToString(), stream=True,
        headers={"Content-Type": "application/x-protobuf", "Accept": "application/x-protobuf"},
        timeout=10,
    )  # fmt: skip
    assert response.headers["Content-Type"] == "application/x-protobuf"
    event = wire.message_class("mesos.v1.scheduler.Event")()
    event.ParseFromString(next(read_records_bytes(response)))
    response.close()
    assert event.type == event.SUBSCRIBED
    assert event.subscribed.framework_id.value.startswith(cluster.master.id)
    bad = requests.post(
        f"{cluster.base_url}/api/v1/scheduler", data=b"\xff\xff",
        headers={"Content-Type": "application/x-protobuf"}, timeout=10,
    )  # fmt: skip
    assert (bad.status_code, bad.text) == (400, "Failed to parse body into Call protobuf")
