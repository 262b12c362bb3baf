"""calico_dcos.driver.EventStream, pymesos' connection with records decoded in place, over a
real loopback socket: the master's side is a listening socket written by hand, as the
Mesos master writes its event stream (HTTP/1.1 200, chunked, RecordIO records:
apache/mesos docs/scheduler-http-api.md), and pymesos' own IO loop is replaced by the same
select-then-read calls (`pymesos/process.py`, `Process._run`)."""

from __future__ import annotations

import json
import random
import select
import socket
import tracemalloc

import pymesos.process
import pytest

from calico_dcos.driver import (
    EVENT_RECV_BYTES,
    LARGE_EVENT_BYTES,
    EventJson,
    EventStream,
    read_events_faster,
)

HEADERS = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Mesos-Stream-Id: 2bd7a6e5-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


class Callback:
    """What pymesos' `Connection` calls back (`Process`): the request to send, the stream
    ID, each event, the close. Each event is kept with the stream's undecoded bytes at the
    moment it was handed over."""

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self.events: list[dict] = []
        self.undecoded_at_handover: list[int] = []
        self.closed = False
        self.conn: EventStream | None = None

    def gen_request(self) -> bytes:
        return b""

    def process_event(self, event: dict) -> None:
        self.events.append(event)
        self.undecoded_at_handover.append(len(self.conn._records))

    def on_close(self) -> None:
        self.closed = True


@pytest.fixture
def stream():
    """(EventStream, the master's end of its socket, the callback)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        callback = Callback()
        conn = EventStream(f"127.0.0.1:{listener.getsockname()[1]}", callback)
        callback.conn = conn
        peer, _ = listener.accept()
    select.select([], [conn.fileno()], [], 5)
    assert conn.handle_connect_event() == ""
    try:
        yield conn, peer, callback
    finally:
        peer.close()
        if not callback.closed:
            conn.close()


def record(event: dict) -> bytes:
    """One RecordIO record: the JSON's length in bytes, a newline, the JSON."""
    body = json.dumps(event).encode()
    return b"%d\n%s" % (len(body), body)


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """`body` as HTTP chunks of the given sizes (the last takes the rest)."""
    out, start = [], 0
    for size in [*sizes, len(body)]:
        piece = body[start : start + size]
        if piece:
            out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        start += len(piece)
    return b"".join(out)


def read_until(conn: EventStream, callback: Callback, count: int) -> None:
    """pymesos' IO loop, until `count` events arrived (or the stream closed)."""
    while len(callback.events) < count and not callback.closed:
        readable, _, _ = select.select([conn.fileno()], [], [], 5)
        assert readable, f"no bytes within 5 s; {len(callback.events)} of {count} events"
        if not conn.read():
            conn.close()


def offers(count: int) -> dict:
    offer = {
        "id": {"value": "O-%d"},
        "agent_id": {"value": "A-%d"},
        "hostname": "agent-ü.example",  # UTF-8 of two bytes
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}}],
    }
    return {"type": "OFFERS", "offers": {"offers": [offer] * count}}


def test_every_event_arrives_intact_across_chunk_and_read_boundaries(stream):
    conn, peer, callback = stream
    big = offers(4000)  # ~700 KB: spans reads of EVENT_RECV_BYTES and many chunks
    sent = [
        {"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "F-1"}}},
        {"type": "HEARTBEAT"},
        big,
        *({"type": "UPDATE", "status": {"task_id": {"value": f"t{i}"}}} for i in range(50)),
        {"type": "UPDATE", "status": {"message": "x" * 70_000}},
        {"type": "HEARTBEAT"},
    ]
    body = b"".join(map(record, sent))
    assert len(record(big)) > 2 * EVENT_RECV_BYTES
    rng = random.Random(17)
    sizes = [1, 2, 3, 11, 4096, 9, 70_001] + [rng.randint(1, 90_000) for _ in range(40)]
    wire = HEADERS + chunked(body, sizes)
    # the first send: the headers and a part of the first records (pymesos' own read
    # takes them), then pieces cut anywhere: in a length's digits, a chunk's size line,
    # a record's JSON, a two-byte UTF-8 character
    cuts = [len(HEADERS) + 40] + sorted(rng.sample(range(len(HEADERS) + 41, len(wire)), 60))
    peer.sendall(wire[: cuts[0]])
    select.select([conn.fileno()], [], [], 5)
    assert conn.read()
    assert conn._response, "pymesos' own read keeps the start of a record"
    for start, end in zip(cuts, [*cuts[1:], len(wire)], strict=True):
        peer.sendall(wire[start:end])
        while select.select([conn.fileno()], [], [], 0)[0]:  # what has come so far
            assert conn.read()
    read_until(conn, callback, len(sent))

    assert callback.events == sent
    assert callback.stream_id == "2bd7a6e5-stream"
    assert not callback.closed
    assert len(conn._records) == 0
    # the big event's own bytes were gone before it was handed over
    assert callback.undecoded_at_handover[2] < len(record(big))


def test_an_event_orjson_refuses_decodes_as_the_standard_library_does(stream):
    """NaN is no JSON, but Python's json (and so pymesos) reads it; the record reaches the
    fallback as a memoryview."""
    conn, peer, callback = stream
    text = b'{"type": "UPDATE", "status": {"value": NaN}}'
    peer.sendall(HEADERS + chunked(b"%d\n%s" % (len(text), text), []))
    read_until(conn, callback, 1)
    assert repr(callback.events) == repr([json.loads(text)])


def test_a_stream_that_is_no_recordio_is_closed(stream, caplog):
    conn, peer, callback = stream
    peer.sendall(HEADERS + chunked(record({"type": "HEARTBEAT"}), []))
    read_until(conn, callback, 1)
    peer.sendall(chunked(b'{"type": "HEARTBEAT"}', []))
    read_until(conn, callback, 2)
    assert callback.closed
    assert callback.events == [{"type": "HEARTBEAT"}]
    assert "not RecordIO" in caplog.text


def test_an_oserror_while_handling_an_event_closes_the_connection_as_pymesos_did(stream, caplog):
    """pymesos' own `read` caught `socket.error` (OSError) around the whole read, the
    handling of each event included, and closed the connection (the driver reconnects and
    subscribes again) rather than ending the driver."""
    conn, peer, callback = stream

    def refuse(event: dict) -> None:
        raise ConnectionResetError("the store went away")

    callback.process_event = refuse
    peer.sendall(HEADERS)  # pymesos' own read takes the headers; the records are ours
    select.select([conn.fileno()], [], [], 5)
    assert conn.read()
    peer.sendall(chunked(record({"type": "HEARTBEAT"}), []))
    select.select([conn.fileno()], [], [], 5)

    assert conn.read() is False
    assert "failed to handle an event: reconnecting" in caplog.text


def test_the_end_of_the_stream_closes_it(stream):
    conn, peer, callback = stream
    peer.sendall(HEADERS + chunked(record({"type": "HEARTBEAT"}), []) + b"0\r\n\r\n")
    read_until(conn, callback, 2)
    assert callback.closed
    assert callback.events == [{"type": "HEARTBEAT"}]


def test_a_large_event_decodes_without_a_working_buffer_many_times_its_size():
    """orjson would allocate 12 bytes per byte of the document before making any object
    (`EventJson.loads`); a large event is decoded with at most its objects and one copy of
    its text beside them, and to the same objects."""
    text = json.dumps(offers(3000)).encode()
    assert len(text) >= LARGE_EVENT_BYTES
    view = memoryview(bytearray(text))
    tracemalloc.start()
    try:
        event = EventJson.loads(view)
        objects, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert event == json.loads(text)
    assert peak - objects <= 1.5 * len(text), (peak - objects, len(text))


def test_strict_modes_tls_connection_reads_as_the_event_stream_and_stays():
    """Strict mode installs its TLS connection before the driver sets its reader
    (`StrictSchedulerDriver.__init__`): the driver keeps it, since it is an EventStream."""
    from calico_dcos import strict

    strict.install()
    read_events_faster()
    assert pymesos.process.Connection is strict.TlsConnection
    assert issubclass(strict.TlsConnection, EventStream)
