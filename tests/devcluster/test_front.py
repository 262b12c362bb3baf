"""The master port's front (calico_dcos/devcluster/front.py): plain scheduler calls answered
without aiohttp, the same bytes as aiohttp's answers, and any other request handed to
aiohttp on the same connection. Raw sockets, so that what is compared is what a client
reads."""

from __future__ import annotations

import json
import socket

from calico_dcos.devcluster import DevCluster
from tests.devcluster.test_scheduler_http import Stream, subscribed  # noqa: F401 (fixture)

PATH = "/api/v1/scheduler"


def request(body: bytes, headers: dict[str, str], chunked: bool = False) -> bytes:
    """A scheduler call's bytes; `chunked`: the body in chunked coding, which the front
    leaves to aiohttp."""
    head = [f"POST {PATH} HTTP/1.1", "Host: 127.0.0.1"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    if chunked:
        head.append("Transfer-Encoding: chunked")
        payload = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    else:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


class Connection:
    """One kept-alive connection to the master, read response by response."""

    def __init__(self, cluster: DevCluster) -> None:
        self.sock = socket.create_connection((cluster.master.host, cluster.master.port), 10)
        self.data = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> bytes:
        """The next response, whole, without its `Date` header (it names the second)."""
        while b"\r\n\r\n" not in self.data:
            self._read()
        head, _, rest = self.data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        length = next(
            int(v) for n, _, v in (x.partition(": ") for x in lines) if n == "Content-Length"
        )
        while len(rest) < length:
            self._read()
            head, _, rest = self.data.partition(b"\r\n\r\n")
        self.data = rest[length:]
        kept = [line for line in lines if not line.startswith("Date: ")]
        return ("\r\n".join(kept) + "\r\n\r\n").encode() + rest[:length]

    def closed(self) -> bool:
        """The master closes the connection (waits for it, up to the socket's timeout)."""
        return self.sock.recv(1) == b""

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed; so far {self.data!r}"
        self.data += chunk

    def close(self) -> None:
        self.sock.close()


def answers(cluster: DevCluster, body: bytes, headers: dict[str, str]) -> tuple[bytes, bytes]:
    """The front's answer to a call, and aiohttp's to the same call (each on a new
    connection)."""
    out = []
    for chunked in (False, True):
        connection = Connection(cluster)
        connection.send(request(body, headers, chunked))
        out.append(connection.response())
        connection.close()
    return out[0], out[1]


JSON = {"Content-Type": "application/json"}


def test_refusals_are_the_same_bytes_from_the_front_as_from_aiohttp(cluster):
    cases = [
        (b"{not json", JSON),
        (json.dumps({"type": "REVIVE"}).encode(), JSON),  # no framework_id
        (json.dumps({"type": "REVIVE", "framework_id": {"value": "nope"}}).encode(), JSON),
        (b"{}", {"Content-Type": "text/plain"}),
    ]
    for body, headers in cases:
        front, aiohttp = answers(cluster, body, headers)
        assert front == aiohttp
        assert front.startswith(b"HTTP/1.1 4"), front


def test_accepted_calls_are_the_same_bytes_and_act_the_same(cluster, subscribed):  # noqa: F811
    stream, framework_id, stream_id = subscribed
    body = json.dumps({"type": "SUPPRESS", "framework_id": {"value": framework_id}}).encode()
    front, aiohttp = answers(cluster, body, {**JSON, "Mesos-Stream-Id": stream_id})
    assert front == aiohttp
    assert front.startswith(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n"), front
    calls = cluster.call(
        lambda: [e for e in cluster.master.timeline_entries if e.get("type") == "SUPPRESS"]
    )
    assert len(calls) == 2


def test_a_connection_is_handed_to_aiohttp_at_its_first_other_request(cluster, subscribed):  # noqa: F811
    """Calls, then `GET /version`, then calls again, two of them in one write (pipelined),
    the last one split over several writes: every request is answered, in order."""
    stream, framework_id, stream_id = subscribed
    headers = {**JSON, "Mesos-Stream-Id": stream_id}
    revive = request(
        json.dumps({"type": "REVIVE", "framework_id": {"value": framework_id}}).encode(), headers
    )
    connection = Connection(cluster)
    connection.send(revive + revive)
    assert connection.response().startswith(b"HTTP/1.1 202 ")
    assert connection.response().startswith(b"HTTP/1.1 202 ")
    connection.send(b"GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    version = connection.response()
    assert version.startswith(b"HTTP/1.1 200 OK\r\n") and b'"version"' in version
    connection.send(revive + revive[:20])
    for start in range(20, len(revive), 40):
        connection.send(revive[start : start + 40])
    assert connection.response().startswith(b"HTTP/1.1 202 ")
    assert connection.response().startswith(b"HTTP/1.1 202 ")
    connection.close()


def test_a_malformed_request_gets_aiohttps_400(cluster):
    connection = Connection(cluster)
    connection.send(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n".encode())
    answer = connection.response()
    assert answer.startswith(b"HTTP/1.0 400 Bad Request\r\n"), answer
    assert b"Invalid character in Content-Length" in answer
    connection.close()
    # Lines ended by a bare line feed: no blank CRLF line ever comes, so the front must not
    # wait for one.
    connection = Connection(cluster)
    connection.send(f"POST {PATH} HTTP/1.1\nHost: x\nContent-Length: 0\n\n".encode())
    assert b" 400 Bad Request\r\n" in connection.response()
    connection.close()


def test_kept_alive_connections_close_with_a_master_port_that_goes_away(cluster, subscribed):  # noqa: F811
    """`failover_master("gone")`: the old master died, so do its connections (the front's
    too: a client must not keep sending calls to a dead master)."""
    stream, framework_id, stream_id = subscribed
    body = json.dumps({"type": "REVIVE", "framework_id": {"value": framework_id}}).encode()
    connection = Connection(cluster)
    connection.send(request(body, {**JSON, "Mesos-Stream-Id": stream_id}))
    assert connection.response().startswith(b"HTTP/1.1 202 ")
    old_port = cluster.master.port
    cluster.failover_master("gone")
    assert connection.closed()
    with socket.socket() as probe:
        assert probe.connect_ex((cluster.master.host, old_port)) != 0
    connection.close()
