"""Raw HTTP against the master: the status codes and wire format of the real master (§1.2)."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Iterator

import pytest

from calico_dcos.devcluster import DevCluster
from tests.helpers.devcluster import running_cluster, wait_until

JSON = {"Content-Type": "application/json"}
INFO = {"user": "nobody", "name": "raw", "failover_timeout": 3600}


def post(cluster: DevCluster, body: object, headers: dict | None = None, method: str = "POST"):
    conn = http.client.HTTPConnection(cluster.master.host, cluster.master.port, timeout=10)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request(method, "/api/v1/scheduler", data, JSON if headers is None else headers)
    response = conn.getresponse()
    return response, response.read().decode()


class Stream:
    """A SUBSCRIBE connection read record by record, as an independent v1 client would."""

    def __init__(self, cluster: DevCluster, info: dict | None = None, headers=None) -> None:
        self.conn = http.client.HTTPConnection(cluster.master.host, cluster.master.port, timeout=10)
        info = info or INFO
        call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if "id" in info:
            call["framework_id"] = info["id"]
        hdrs = {**JSON, "Accept": "application/json", **(headers or {})}
        self.conn.request("POST", "/api/v1/scheduler", json.dumps(call).encode(), hdrs)
        self.response = self.conn.getresponse()

    def next_event(self) -> dict:
        line = self.response.readline()
        assert line.rstrip(b"\n").isdigit(), line
        record = self.response.read(int(line))
        return json.loads(record)

    def events_until(self, kind: str) -> Iterator[dict]:
        while True:
            event = self.next_event()
            yield event
            if event["type"] == kind:
                return

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def subscribed(cluster) -> Iterator[tuple[Stream, str, str]]:
    stream = Stream(cluster)
    framework_id = stream.next_event()["subscribed"]["framework_id"]["value"]
    yield stream, framework_id, stream.response.getheader("Mesos-Stream-Id")
    stream.close()


def call(framework_id: str, kind: str, body: dict | None = None) -> dict:
    out = {"type": kind, "framework_id": {"value": framework_id}}
    if body is not None:
        out[kind.lower()] = body
    return out


def test_subscribe_streams_chunked_recordio_subscribed_then_heartbeat_then_offers(cluster):
    stream = Stream(cluster)
    assert stream.response.status == 200
    assert stream.response.getheader("Transfer-Encoding") == "chunked"
    assert stream.response.getheader("Content-Type") == "application/json"
    assert stream.response.getheader("Content-Length") is None
    uuid.UUID(stream.response.getheader("Mesos-Stream-Id"))
    subscribed = stream.next_event()
    assert subscribed["type"] == "SUBSCRIBED"
    assert subscribed["subscribed"]["heartbeat_interval_seconds"] == 1.0
    assert subscribed["subscribed"]["master_info"]["address"]["port"] == cluster.master.port
    assert stream.next_event() == {"type": "HEARTBEAT"}
    offers = [e for e in stream.events_until("OFFERS") if e["type"] == "OFFERS"][0]
    assert isinstance(offers["offers"]["offers"], list)
    assert all(o["allocation_info"] == {"role": "*"} for o in offers["offers"]["offers"])
    stream.close()


def test_version_is_numeric(cluster):
    conn = http.client.HTTPConnection(cluster.master.host, cluster.master.port, timeout=10)
    conn.request("GET", "/version")
    version = json.loads(conn.getresponse().read())["version"]
    assert all(part.isdigit() for part in version.split("."))


def test_get_is_405(cluster):
    assert post(cluster, b"", {}, method="GET")[0].status == 405


def test_missing_content_type_is_400(cluster):
    assert post(cluster, {"type": "SUBSCRIBE"}, {})[0].status == 400


def test_content_type_with_charset_is_415(cluster):
    headers = {"Content-Type": "application/json; charset=utf-8"}
    assert post(cluster, {"type": "SUBSCRIBE"}, headers)[0].status == 415


def test_unparsable_body_and_missing_required_fields_are_400(cluster):
    assert post(cluster, b"{not json")[0].status == 400
    subscribe = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "no user"}}}
    response, text = post(cluster, subscribe)
    assert response.status == 400 and "user" in text


def test_call_without_framework_id_or_body_is_400(cluster):
    assert post(cluster, {"type": "DECLINE"})[0].status == 400
    assert post(cluster, {"type": "ACCEPT", "framework_id": {"value": "x"}})[0].status == 400


def test_subscribe_framework_id_must_match_framework_info_id(cluster):
    body = {
        "type": "SUBSCRIBE",
        "framework_id": {"value": "a"},
        "subscribe": {"framework_info": {**INFO, "id": {"value": "b"}}},
    }
    assert post(cluster, body)[0].status == 400


def test_subscribe_accepting_only_html_is_406(cluster):
    body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": INFO}}
    assert post(cluster, body, {**JSON, "Accept": "text/html"})[0].status == 406


def test_subscribe_with_a_stream_id_is_400(cluster):
    body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": INFO}}
    assert post(cluster, body, {**JSON, "Mesos-Stream-Id": str(uuid.uuid4())})[0].status == 400


def test_unknown_framework_is_400_not_403(cluster):
    response, text = post(cluster, call("nope", "REVIVE"))
    assert response.status == 400 and "Framework cannot be found" in text


def test_stream_id_missing_or_wrong_is_400_and_right_one_is_202(cluster, subscribed):
    _, framework_id, stream_id = subscribed
    assert post(cluster, call(framework_id, "REVIVE"))[0].status == 400
    wrong = {**JSON, "Mesos-Stream-Id": str(uuid.uuid4())}
    assert post(cluster, call(framework_id, "REVIVE"), wrong)[0].status == 400
    right = {**JSON, "Mesos-Stream-Id": stream_id}
    response, text = post(cluster, call(framework_id, "REVIVE"), right)
    assert (response.status, text) == (202, "")


def test_framework_without_a_live_stream_is_403(cluster, subscribed):
    stream, framework_id, stream_id = subscribed
    stream.close()
    wait_until(lambda: not cluster.state()["frameworks"][0]["connected"])
    headers = {**JSON, "Mesos-Stream-Id": stream_id}
    response, text = post(cluster, call(framework_id, "REVIVE"), headers)
    assert response.status == 403 and "not subscribed" in text


def test_acknowledge_with_an_invalid_uuid_is_400(cluster, subscribed):
    _, framework_id, stream_id = subscribed
    headers = {**JSON, "Mesos-Stream-Id": stream_id}
    agent_id = cluster.agents[0].agent_id
    body = {"agent_id": {"value": agent_id}, "task_id": {"value": "t"}}
    bad = base64.b64encode(b"\x00" * 16).decode()
    assert (
        post(cluster, call(framework_id, "ACKNOWLEDGE", {**body, "uuid": bad}), headers)[0].status
        == 400
    )
    good = base64.b64encode(uuid.uuid4().bytes).decode()
    response, _ = post(cluster, call(framework_id, "ACKNOWLEDGE", {**body, "uuid": good}), headers)
    assert response.status == 202


def test_unknown_call_type_is_501(cluster, subscribed):
    _, framework_id, stream_id = subscribed
    headers = {**JSON, "Mesos-Stream-Id": stream_id}
    assert post(cluster, call(framework_id, "UNKNOWN"), headers)[0].status == 501


def test_resubscribe_sends_framework_failed_over_on_the_old_stream(cluster, subscribed):
    stream, framework_id, _ = subscribed
    second = Stream(cluster, {**INFO, "id": {"value": framework_id}})
    assert second.next_event()["subscribed"]["framework_id"]["value"] == framework_id
    errors = [e for e in stream.events_until("ERROR") if e["type"] == "ERROR"]
    assert errors == [{"type": "ERROR", "error": {"message": "Framework failed over"}}]
    assert stream.response.read() == b""
    second.close()


def test_torn_down_framework_gets_removed_error_on_a_200_stream(cluster, subscribed):
    _, framework_id, stream_id = subscribed
    headers = {**JSON, "Mesos-Stream-Id": stream_id}
    assert post(cluster, call(framework_id, "TEARDOWN"), headers)[0].status == 202
    again = Stream(cluster, {**INFO, "id": {"value": framework_id}})
    assert again.response.status == 200
    assert again.next_event() == {
        "type": "ERROR",
        "error": {"message": "Framework has been removed"},
    }


def test_basic_auth_401_unless_credentials_match():
    with running_cluster(credentials={"calico": "s3cret"}) as cluster:
        body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": INFO}}
        response, _ = post(cluster, body)
        assert response.status == 401
        assert response.getheader("WWW-Authenticate") == 'Basic realm="mesos-master-scheduler"'
        wrong = base64.b64encode(b"calico:nope").decode()
        assert post(cluster, body, {**JSON, "Authorization": f"Basic {wrong}"})[0].status == 401
        right = base64.b64encode(b"calico:s3cret").decode()
        stream = Stream(cluster, headers={"Authorization": f"Basic {right}"})
        assert stream.next_event()["type"] == "SUBSCRIBED"
        state = cluster.state()["frameworks"][0]
        assert state["principal"] == "calico"
        stream.close()


def test_old_master_port_redirects_with_a_protocol_relative_location(cluster):
    old_port = cluster.master.port
    new_url = cluster.failover_master()
    conn = http.client.HTTPConnection(cluster.master.host, old_port, timeout=10)
    conn.request("POST", "/api/v1/scheduler", b"{}", JSON)
    response = conn.getresponse()
    assert response.status == 307
    assert response.getheader("Location") == f"//{new_url}/api/v1/scheduler"
