"""The scheduler's own sender (`calico_dcos.sender`) against the devcluster over real
sockets: calls carry the subscription's stream ID from a real pymesos driver, a refused call
raises `CallRefused` with the master's reason, calls go pipelined on one connection and
each gets its own answer, and a task's acknowledgements keep their order on one lane while
the other lanes carry on. Where the devcluster cannot do what is needed (a master closing
a connection mid-pipeline, 50 acknowledgements of one task), a stand-in HTTP/1.1 server
(`http.server`, which reads pipelined requests one after another as any HTTP/1.1 server
must) answers and records what it read."""

from __future__ import annotations

import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from calico_dcos import sender as sender_module
from calico_dcos.devcluster.pki import Pki
from calico_dcos.sender import (
    CONTROL,
    Call,
    CallLost,
    CallRefused,
    Master,
    NotSubscribed,
    Sender,
    connections,
    header_lines,
    request,
)
from tests.helpers.devcluster import wait_until


def calls_of(cluster, kind: str) -> list[dict]:
    return [e for e in cluster.timeline() if e.get("event") == "call" and e["type"] == kind]


class StaleStream:
    """The driver as it is after a re-subscription the sender has not seen: an old stream."""

    def __init__(self, driver) -> None:
        self._driver = driver
        self.stream_id = "0ff1ce00-0000-4000-8000-000000000000"
        self.master = driver.master
        self._basic_credential = None


def test_a_call_carries_the_stream_id_and_reaches_the_master(cluster, framework):
    master = Master(lambda: framework.driver)
    body = {"type": "REVIVE", "framework_id": {"value": framework.framework_id}}

    with connections() as session:
        master.post(session, body)

    wait_until(lambda: calls_of(cluster, "REVIVE"), what="the REVIVE at the master")


def test_a_refused_call_says_what_the_master_said(cluster, framework):
    master = Master(lambda: StaleStream(framework.driver))
    body = {"type": "REVIVE", "framework_id": {"value": framework.framework_id}}

    with connections() as session, pytest.raises(CallRefused) as refused:
        master.post(session, body)

    assert refused.value.status == 400
    assert "didn't match" in refused.value.reason
    assert "REVIVE" in str(refused.value)


def test_without_a_subscription_nothing_is_sent(cluster):
    master = Master(lambda: None)

    with connections() as session, pytest.raises(NotSubscribed):
        master.post(session, {"type": "REVIVE"})


def test_calls_go_pipelined_on_one_connection_and_each_gets_its_own_answer(cluster, framework):
    """Three calls written at once: the master answers each in order (the stale stream's
    call is refused alone, the others are taken) on the one connection."""
    master = Master(lambda: framework.driver)
    revive = {"type": "REVIVE", "framework_id": {"value": framework.framework_id}}
    bad = {"type": "KILL", "framework_id": {"value": framework.framework_id}}  # no `kill`

    with connections() as session:
        outcomes = master.post_many(session, [revive, bad, revive])
        assert session._sock is not None  # kept for the next pipeline

    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], CallRefused) and outcomes[1].status == 400
    assert "KILL" in str(outcomes[1])
    wait_until(lambda: len(calls_of(cluster, "REVIVE")) == 2, what="both REVIVEs at the master")


class Subscribed:
    """What `sender.Master` reads from pymesos' driver, for a stand-in master."""

    def __init__(self, master: str) -> None:
        self.master = master
        self.stream_id = "0ff1ce00-0000-4000-8000-000000000000"
        self._basic_credential = None


class _RecordingMaster(BaseHTTPRequestHandler):
    """Stands in for a master taking 50 acknowledgements of one task in a row (a real one
    sends a task's next update only once the last is acknowledged): records each call's
    `n` in the order read, refuses ACCEPTs as a master refuses a stale offer."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, int]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((call["key"], call["n"]))
        refused = call["type"] == "ACCEPT"
        answer = b"Offer 7 is no longer valid" if refused else b""
        self.send_response(400 if refused else 202)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


def test_a_tasks_calls_stay_in_order_on_their_lane_and_refusals_are_counted():
    server, address = _serve(_RecordingMaster)
    master = Master(lambda: Subscribed(address))
    sender = Sender(lanes=3)

    def call(key: str, n: int, kind: str = "ACKNOWLEDGE") -> Call:
        return Call(key, master, lambda: {"type": kind, "key": key, "n": n})

    try:
        sender.put([call("task-a", n) for n in range(50)] + [call(CONTROL, 0, "ACCEPT")])
        sender.put([call("task-b", n) for n in range(50)])
        sender.close(10)
    finally:
        server.shutdown()
        server.server_close()

    for key in ("task-a", "task-b"):
        assert [n for k, n in _RecordingMaster.seen if k == key] == list(range(50))
    assert sender.sent == 100 and sender.refused == 1
    assert sender.pipelines < 100  # calls went several at a time


class _ClosingMaster(BaseHTTPRequestHandler):
    """Stands in for a master that closes a kept-alive connection while it is idle (an
    idle timeout, a restart): it answers 202 and then closes without saying so. With
    `silent`, it closes the connection after reading a call on it without answering (a
    master that dies mid-call), and counts the calls it read."""

    protocol_version = "HTTP/1.1"
    silent = False
    calls_read = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls_read += 1
        self.close_connection = True
        if self.silent and type(self).calls_read > 1:
            return
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()
        if self.silent:
            self.close_connection = False

    def log_message(self, *args) -> None:
        pass


def _serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def test_a_connection_the_master_closed_is_replaced_before_the_next_call(monkeypatch):
    monkeypatch.setattr(sender_module, "IDLE_CHECK_SECONDS", 0.0)  # idle long enough at once
    server, master = _serve(_ClosingMaster)
    try:
        with connections() as session:
            assert session.post(master, False, "/api/v1/scheduler", b"{}", [])[0] == 202
            kept = session._sock.fileno()
            wait_until(
                lambda: select.select([kept], [], [], 0)[0],
                what="the master's close to reach the client",
            )
            assert session.post(master, False, "/api/v1/scheduler", b"{}", [])[0] == 202
    finally:
        server.shutdown()
        server.server_close()


def test_calls_go_straight_to_the_master_whatever_the_proxy_variables_say(monkeypatch):
    """The master is called directly whatever http_proxy and ALL_PROXY say, as pymesos'
    own calls (http.client) are."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}"
    for variable in ("http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(variable, nowhere)
    server, master = _serve(_ClosingMaster)
    try:
        with connections() as session:
            assert session.post(master, False, "/api/v1/scheduler", b"{}", [])[0] == 202
    finally:
        server.shutdown()
        server.server_close()


def test_a_call_whose_connection_closes_unanswered_is_lost_and_never_sent_again():
    """The master may have acted on it, so it is a `CallLost`, never sent again on a fresh
    connection (as libcurl would have: curl lib/transfer.c, `Curl_retry_request`)."""

    class Silent(_ClosingMaster):
        silent = True
        calls_read = 0

    server, master = _serve(Silent)
    try:
        with connections() as session:
            assert session.post(master, False, "/api/v1/scheduler", b"{}", [])[0] == 202
            with pytest.raises(CallLost, match="not sent again"):
                session.post(master, False, "/api/v1/scheduler", b"{}", [])
        assert Silent.calls_read == 2
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_master_is_a_lost_call():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # nothing listens on it once closed

    with connections() as session, pytest.raises(CallLost):
        session.post(f"127.0.0.1:{port}", False, "/api/v1/scheduler", b"{}", [])


def test_over_tls_the_master_is_verified_against_the_ca_bundle_alone(tmp_path):
    """Strict mode: the master's certificate must chain to `service.ca_bundle` (the
    devcluster's own CA here, `calico_dcos.devcluster.pki`), never to any other CA."""
    pki, other = Pki.create(tmp_path / "pki"), Pki.create(tmp_path / "other")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ClosingMaster)
    server.socket = pki.server_context().wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    master = f"127.0.0.1:{server.server_address[1]}"
    try:
        with connections(str(pki.ca_bundle)) as session:
            assert session.post(master, True, "/api/v1/scheduler", b"{}", [])[0] == 202
        with connections(str(other.ca_bundle)) as session, pytest.raises(CallLost) as lost:
            session.post(master, True, "/api/v1/scheduler", b"{}", [])
        assert "certificate" in str(lost.value)
    finally:
        server.shutdown()
        server.server_close()


class _ClosingMidPipeline(BaseHTTPRequestHandler):
    """Stands in for a master that dies mid-pipeline: answers two calls, then closes the
    connection having read the third, unanswered."""

    protocol_version = "HTTP/1.1"
    calls_read = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls_read += 1
        if type(self).calls_read > 2:
            self.close_connection = True
            return
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_pipeline_cut_short_keeps_the_answers_read_and_loses_the_rest():
    """The calls answered before the connection broke were taken; the others may or may
    not have arrived: each is `CallLost`, none is sent again."""
    server, address = _serve(_ClosingMidPipeline)
    master = Master(lambda: Subscribed(address))
    try:
        with connections() as session:
            outcomes = master.post_many(session, [{"type": "REVIVE"}] * 4)
    finally:
        server.shutdown()
        server.server_close()

    assert outcomes[:2] == [None, None]
    assert all(isinstance(o, CallLost) for o in outcomes[2:])
    assert "not sent again" in str(outcomes[2])
    assert _ClosingMidPipeline.calls_read == 3  # the fourth was never read, nor sent twice


def test_a_request_is_what_the_master_reads():
    """Host, the stream ID, JSON both ways, the credential and the body's length."""
    wire = request("10.0.0.1:5050", "/api/v1/scheduler", header_lines("s-1", "Basic eA=="), b"{}")

    assert wire == (
        b"POST /api/v1/scheduler HTTP/1.1\r\nHost: 10.0.0.1:5050\r\n"
        b"Mesos-Stream-Id: s-1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json\r\nAuthorization: Basic eA==\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
