"""The scheduler's reader of failed tasks' stderr (calico_dcos/sandbox.py): what it keeps of
the words, and that nothing an agent answers (an HTTP error, garbage, a huge body, silence,
a closed port) gets further than a log line. A real HTTP server on loopback plays the
agent, answering as the test says."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from calico_dcos import sandbox
from calico_dcos.sandbox import AgentFiles, last_words, offer_address, stderr_path
from tests.helpers.wait import wait_until

GLOG = "I1129 12:00:00.123456  4242 executor.cpp:1041] Command exited with status 1 (pid: 7)"


def test_last_words_keep_the_last_meaningful_lines_bounded_and_redacted():
    text = "\n".join(
        [
            "partial line from the middle",
            "starting etcd proxy",
            "",
            "\x1b[31metcd: listen tcp 127.0.1.1:2379: bind: address already in use\x1b[0m",
            "endpoint https://root:s3cret@192.0.2.2:2379 refused",
            "x" * 500,
            GLOG,
            "   ",
        ]
    )
    words = last_words(text, partial_first_line=True)
    first, second, third = words.split(" | ")
    assert first == "etcd: listen tcp 127.0.1.1:2379: bind: address already in use"
    assert second == "endpoint https://root:***@192.0.2.2:2379 refused"
    assert third == "x" * (sandbox.MAX_LINE_CHARS - 1) + "…"
    assert "s3cret" not in words and "executor.cpp" not in words
    assert last_words(GLOG + "\n\n") == ""


def test_the_offer_url_gives_the_agent_address():
    url = {"scheme": "http", "address": {"hostname": "a1", "ip": "10.0.0.7", "port": 5051}}
    assert offer_address({"url": url}) == ("http", "10.0.0.7:5051")
    assert offer_address({"url": {**url, "address": {"hostname": "a1", "port": 5051}}}) == (
        "http",
        "a1:5051",
    )
    for bad in ({}, {"url": "x"}, {"url": {"address": {"ip": "1.2.3.4"}}},
                {"url": {"address": {"ip": "1.2.3.4", "port": 0}}},
                {"url": {"address": {"ip": "a@b", "port": 1}}},
                {"url": {"address": {"ip": "1.2.3.4", "port": True}}}):  # fmt: skip
        assert offer_address(bad) is None
    files = AgentFiles(lambda *w: None, lambda: (None, False))
    try:
        files.remember([{"agent_id": {"value": "S0"}, "url": url}])
        files.remember_slaves([
            {"id": "S0", "pid": "slave(1)@10.0.0.99:5051"},  # known from its offers: kept
            {"id": "S1", "pid": "slave(1)@10.0.0.8:5052"},
            {"id": "S2", "pid": "garbage"}, {"id": "S3"}, "x", {"pid": "slave(1)@1.2.3.4:1"},
            {"id": "S4", "pid": "slave(1)@10.0.0.9:99999"},
        ])  # fmt: skip
        files.remember_slaves({"not": "a list"})
        assert files._agents == {"S0": ("http", "10.0.0.7:5051"), "S1": ("http", "10.0.0.8:5052")}
    finally:
        files.close(5)
    assert stderr_path("fw-1", "calico-docker__S0__abc__1") == (
        "/frameworks/fw-1/executors/calico-docker__S0__abc__1/runs/latest/stderr"
    )


class Agent:
    """What the fake agent answers: `answer(query) -> (status, body bytes)`; requests kept."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answer = lambda query: (404, b"")
        self.hold = threading.Event()  # set: answer at once; clear: never answer
        self.hold.set()


@contextmanager
def fake_agent() -> Iterator[tuple[Agent, int]]:
    agent = Agent()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            agent.requests.append({"path": urlsplit(self.path).path, "query": query,
                                   "auth": self.headers.get("Authorization")})  # fmt: skip
            if not agent.hold.wait(10):
                return
            status, body = agent.answer(query)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield agent, server.server_address[1]
    finally:
        agent.hold.set()
        server.shutdown()
        server.server_close()


def offer(port: int, agent_id: str = "S0") -> dict:
    return {
        "agent_id": {"value": agent_id},
        "url": {"scheme": "http", "address": {"ip": "127.0.0.1", "port": port}},
    }


def file_answers(content: bytes):
    def answer(query):
        offset = int(query.get("offset", -1))
        if offset == -1:
            return 200, json.dumps({"data": "", "offset": len(content)}).encode()
        length = int(query.get("length", len(content)))
        data = content[offset : offset + length].decode()
        return 200, json.dumps({"data": data, "offset": offset}).encode()

    return answer


@contextmanager
def reader(credential=("Basic cHJpbmNpcGFs", False)) -> Iterator[tuple[AgentFiles, list]]:
    delivered: list = []
    files = AgentFiles(lambda *words: delivered.append(words), lambda: credential)
    try:
        yield files, delivered
    finally:
        files.close(5)


def test_the_tail_is_read_with_the_schedulers_authorization_and_delivered():
    content = ("noise\n" * 2000 + "etcd: bind: address already in use\n" + GLOG + "\n").encode()
    with fake_agent() as (agent, port), reader() as (files, delivered):
        agent.answer = file_answers(content)
        files.remember([offer(port)])
        files.request("calico-etcd-proxy__S0__abc__1", "S0", "fw-1", "Command exited with status 1")
        wait_until(lambda: delivered, 10, "the words")

    assert delivered == [("calico-etcd-proxy__S0__abc__1", "noise | noise | etcd: bind: address "
                          "already in use", "Command exited with status 1")]  # fmt: skip
    size, read = agent.requests
    assert size["path"] == "/files/read" and size["query"]["offset"] == "-1"
    assert size["query"]["path"] == "/frameworks/fw-1/executors/calico-etcd-proxy__S0__abc__1/" \
        "runs/latest/stderr"  # fmt: skip
    assert int(read["query"]["offset"]) == len(content) - sandbox.TAIL_BYTES
    assert int(read["query"]["length"]) == sandbox.TAIL_BYTES
    assert size["auth"] == read["auth"] == "Basic cHJpbmNpcGFs"


@pytest.mark.parametrize(
    "answer",
    [
        lambda q: (404, b""),
        lambda q: (401, b"401 Unauthorized."),
        lambda q: (200, b"<html>not json"),
        lambda q: (200, b'["a list"]'),
        lambda q: (200, b'{"data": 3, "offset": 0}'),
        lambda q: (200, b'{"data": "", "offset": -5}'),
        lambda q: (200, b'{"data": "", "offset": true}'),
        lambda q: (200, b'{"data": "' + b"x" * (sandbox.MAX_ANSWER_BYTES + 10) + b'"}'),
    ],
    ids=["404", "401", "html", "list", "data-not-string", "negative", "bool", "huge"],
)
def test_whatever_the_agent_answers_nothing_is_delivered_and_the_reader_goes_on(answer):
    with fake_agent() as (agent, port), reader() as (files, delivered):
        agent.answer = answer
        files.remember([offer(port)])
        files.request("calico-docker__S0__abc__1", "S0", "fw-1", "Command exited with status 1")
        wait_until(lambda: files.failed == 1, 10, "the read to fail")
        agent.answer = file_answers(b"the real words\n")
        files.request("calico-docker__S0__abc__2", "S0", "fw-1", "Command exited with status 1")
        wait_until(lambda: delivered, 10, "the next read")
    assert delivered == [("calico-docker__S0__abc__2", "the real words", "Command exited with "
                          "status 1")]  # fmt: skip


def test_an_agent_that_does_not_answer_or_is_gone_costs_a_timeout_at_most(monkeypatch):
    monkeypatch.setattr(sandbox, "READ_TIMEOUT_SECONDS", 0.3)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = closed.getsockname()[1]  # nothing listens there once closed
    with fake_agent() as (agent, port), reader() as (files, delivered):
        agent.hold.clear()  # accepts, never answers
        files.remember([offer(port, "S0"), offer(gone, "S1")])
        files.request("calico-docker__S0__abc__1", "S0", "fw-1", "")
        files.request("calico-docker__S1__abc__1", "S1", "fw-1", "")
        files.request("calico-docker__S2__abc__1", "S2", "fw-1", "")  # no offer seen from it
        wait_until(lambda: files.failed == 3, 10, "three failed reads")
    assert delivered == []


def test_a_full_queue_drops_requests_instead_of_blocking():
    with fake_agent() as (agent, port):
        agent.hold.clear()
        files = AgentFiles(lambda *w: None, lambda: (None, False), max_queued=2)
        try:
            files.remember([offer(port)])
            for attempt in range(10):
                files.request(f"calico-docker__S0__abc__{attempt}", "S0", "fw-1", "")
            assert files.dropped >= 7
        finally:
            agent.hold.set()
            files.close(5)
