"""The scheduler's own sender (`calico_dcos.sender`) against the devcluster over real
sockets: calls carry the subscription's stream ID from a real pymesos driver, a refused call
raises `CallRefused` with the master's reason, and a task's acknowledgements keep their
order on one lane while the other lanes carry on."""

from __future__ import annotations

import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pycurl
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
    Round,
    Sender,
    connections,
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


def test_a_tasks_calls_stay_in_order_on_their_lane_and_refusals_are_counted():
    sender = Sender(lanes=3)
    seen: list[tuple[str, int]] = []

    def record(key: str, n: int):
        return Call(key, lambda session: seen.append((key, n)))

    def refuse(session) -> None:
        raise CallRefused("ACCEPT", 400, "Offer 7 is no longer valid")

    sender.put([record("task-a", n) for n in range(50)] + [Call(CONTROL, refuse)])
    sender.put([record("task-b", n) for n in range(50)])
    sender.close(10)

    for key in ("task-a", "task-b"):
        assert [n for k, n in seen if k == key] == list(range(50))
    assert sender.sent == 100 and sender.refused == 1


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
            kept = session._curl.getinfo(pycurl.ACTIVESOCKET)
            wait_until(
                lambda: select.select([kept], [], [], 0)[0],
                what="the master's close to reach the client",
            )
            assert session.post(master, False, "/api/v1/scheduler", b"{}", [])[0] == 202
    finally:
        server.shutdown()
        server.server_close()


def test_calls_go_straight_to_the_master_whatever_the_proxy_variables_say(monkeypatch):
    """libcurl reads http_proxy and ALL_PROXY; the master is called directly, as before."""
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
    """libcurl would resend it on a fresh connection (curl lib/transfer.c,
    `Curl_retry_request`): the master may have acted on it, so it is a `CallLost`."""

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


class Subscribed:
    """What `sender.Master` reads from pymesos' driver, for a stand-in master."""

    def __init__(self, master: str) -> None:
        self.master = master
        self.stream_id = "0ff1ce00-0000-4000-8000-000000000000"
        self._basic_credential = None


class _RecordingMaster(BaseHTTPRequestHandler):
    """Stands in for a master taking many acknowledgements of one task in a row (a real
    one sends a task's next update only once the last is acknowledged): records each
    call's key and `n` in the order read, over all connections."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, int]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((call["key"], call["n"]))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_round_sends_its_calls_together_and_says_how_each_went(cluster, framework):
    """Acknowledgements' lane: several calls at once, each on its own connection of one
    libcurl multi handle; the master takes the good ones and refuses the bad one alone."""
    master = Master(lambda: framework.driver)
    revive = {"type": "REVIVE", "framework_id": {"value": framework.framework_id}}
    bad = {"type": "KILL", "framework_id": {"value": framework.framework_id}}  # no `kill`
    session = Round(width=3)
    try:
        for owner, body in (("a", revive), ("b", bad), ("c", revive)):
            session.owner = owner
            master.post(session, body)
        outcomes = dict(session.run())
        session.owner = "d"
        master.post(session, revive)  # the same connections, kept alive, for the next round
        assert session.run() == [("d", None)]
    finally:
        session.clear()

    assert outcomes["a"] is None and outcomes["c"] is None
    assert isinstance(outcomes["b"], CallRefused) and outcomes["b"].status == 400
    wait_until(lambda: len(calls_of(cluster, "REVIVE")) == 3, what="the three REVIVEs")


def test_a_tasks_acknowledgements_keep_their_order_across_rounds():
    """Two calls of one key never share a round: the second waits for the first's answer
    (a real master never has two of a task's updates unacknowledged at once, but the order
    holds whatever comes)."""
    server, address = _serve(_RecordingMaster)
    master = Master(lambda: Subscribed(address))
    sender = Sender(lanes=2)

    def ack(key: str, n: int) -> Call:
        return Call(key, lambda session: master.post(session, {"type": "ACK", "key": key, "n": n}))

    _RecordingMaster.seen = []
    try:
        sender.put([ack(f"task-{k}", n) for n in range(20) for k in "abc"])
        sender.close(10)
    finally:
        server.shutdown()
        server.server_close()

    for key in ("task-a", "task-b", "task-c"):
        assert [n for k, n in _RecordingMaster.seen if k == key] == list(range(20))
    assert sender.sent == 60 and sender.lost == 0
