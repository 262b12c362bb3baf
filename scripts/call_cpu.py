"""CPU per call of the scheduler's sender and per event of pymesos' event reading, alone.

    .venv/bin/python scripts/call_cpu.py [--calls 10000] [--events 20]

`calico-dcos bench` gives the scheduler's CPU per agent at scale, but on a shared machine a
figure for one part is easier to compare alone. This measures, over loopback against a
child process answering every POST `202 Accepted` on a kept-alive connection (the headers
the devcluster's aiohttp sends):

- one call as `calico_dcos.sender.Connection.post` makes it (libcurl), and as the standard
  library's `http.client` would (what the sender used before), in the calling thread's CPU
  (user + system, `RUSAGE_THREAD`);
- calls through `Sender` (4 lanes, queues and all), in the process' CPU per call;
- pymesos reading OFFERS events of 1,000 offers (~1 MB each) from a socket and decoding
  them, with pymesos' own settings and after `calico_dcos.driver.read_events_faster`.

The figures vary with the machine's load: compare them within one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import pymesos.process

from calico_dcos import driver, sender

ANSWER = (
    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nContent-Type: application/octet-stream\r\n"
    b"Date: Sun, 29 Nov 2026 15:00:00 GMT\r\nServer: Python/3.11 aiohttp/3.9.5\r\n\r\n"
)
SERVER = f"""
import asyncio
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            size = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
            await reader.readexactly(size)
            writer.write({ANSWER!r})
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""
ACK = {
    "type": "ACKNOWLEDGE",
    "framework_id": {"value": "5f1c-0000"},
    "acknowledge": {
        "agent_id": {"value": "5f1c-S12"},
        "task_id": {"value": "calico-docker-5f1c-S12-1"},
        "uuid": "AAECAwQFBgcICQoLDA0ODw==",
    },
}


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def per_call(fn: Callable[[], object], calls: int) -> float:
    """Microseconds of this thread's CPU per call of `fn`."""
    for _ in range(100):
        fn()
    before = cpu(resource.RUSAGE_THREAD)
    for _ in range(calls):
        fn()
    return (cpu(resource.RUSAGE_THREAD) - before) / calls * 1e6


class Subscribed:
    """What `sender.Master` reads from pymesos' driver."""

    def __init__(self, master: str) -> None:
        self.master = master
        self.stream_id = "0ff1ce00-0000-4000-8000-000000000000"
        self._basic_credential = "Basic dXNlcjpwYXNz"


def calls(port: int, count: int) -> None:
    master = f"127.0.0.1:{port}"
    body = json.dumps(ACK, separators=(",", ":")).encode()
    api = sender.Master(lambda: Subscribed(master))
    with sender.connections() as session:
        us = per_call(lambda: api.post(session, ACK), count)
    print(f"sender (libcurl), one call:           {us:6.0f} µs of CPU")

    conn = http.client.HTTPConnection(master)
    headers = {
        "Mesos-Stream-Id": "0ff1ce00-0000-4000-8000-000000000000",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": "Basic dXNlcjpwYXNz",
    }

    def stdlib() -> None:
        conn.request("POST", sender.PATH, body=body, headers=headers)
        conn.getresponse().read()

    print(f"http.client, one call:                {per_call(stdlib, count):6.0f} µs of CPU")
    conn.close()

    rounds = sender.Round(width=8)
    acks = [ACK] * 8

    def round_of_8() -> None:
        for body in acks:
            api.post(rounds, body)
        rounds.run()

    us = per_call(round_of_8, count // 8) / 8
    print(f"sender.Round, 8 calls at once, per call: {us:6.0f} µs of CPU")
    rounds.clear()

    lanes = sender.Sender()
    queued = [sender.Call(f"task-{n}", lambda s: api.post(s, ACK)) for n in range(count)]
    before = cpu(resource.RUSAGE_SELF)
    lanes.put(queued)
    lanes.close(60)
    us = (cpu(resource.RUSAGE_SELF) - before) / count * 1e6
    print(f"Sender, its lanes, per call:            {us:6.0f} µs of CPU (process)")


def offers_event(offers: int) -> bytes:
    def offer(i: int) -> dict:
        ip = f"10.0.{i // 250}.{i % 250}"
        scalar = [("cpus", 4.0), ("mem", 14861.0), ("disk", 35577.0)]
        resources: list[dict] = [
            {"name": n, "type": "SCALAR", "scalar": {"value": v}, "role": "*"} for n, v in scalar
        ]
        ports = [{"begin": 1025, "end": 2180}, {"begin": 2182, "end": 3887}]
        resources.append({"name": "ports", "type": "RANGES", "ranges": {"range": ports}})
        return {
            "id": {"value": f"5f1c-O{i}"},
            "framework_id": {"value": "5f1c-0000"},
            "agent_id": {"value": f"5f1c-S{i}"},
            "hostname": ip,
            "url": {"scheme": "http", "address": {"ip": ip, "port": 5051}},
            "resources": resources,
            "allocation_info": {"role": "*"},
        }

    event = json.dumps({"type": "OFFERS", "offers": {"offers": [offer(i) for i in range(offers)]}})
    return b"%d\n%s" % (len(event), event.encode())


def events(count: int) -> float:
    """Milliseconds of CPU per OFFERS event for pymesos' `Connection` to read and decode."""
    record = offers_event(1000)
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[str] = []

    class Callback:
        stream_id = None

        def gen_request(self) -> bytes:
            return b""

        def process_event(self, event: dict) -> None:
            got.append(event["type"])

        def on_close(self) -> None:
            pass

    conn = pymesos.process.Connection(f"127.0.0.1:{listener.getsockname()[1]}", Callback())
    peer, _ = listener.accept()

    def feed() -> None:
        peer.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Mesos-Stream-Id: s\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(count):
            peer.sendall(b"%x\r\n%s\r\n" % (len(record), record))

    threading.Thread(target=feed, daemon=True).start()
    before = cpu(resource.RUSAGE_THREAD)
    while len(got) < count:
        select.select([conn.fileno()], [], [], 5)
        conn.read()
    ms = (cpu(resource.RUSAGE_THREAD) - before) / count * 1e3
    peer.close()
    listener.close()
    conn._sock.close()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        calls(int(server.stdout.readline()), args.calls)
    finally:
        server.terminate()
        server.wait(10)
    print(f"pymesos, 1,000-offer event, as it is: {events(args.events):6.1f} ms of CPU")
    driver.read_events_faster()
    print(f"pymesos, after read_events_faster:    {events(args.events):6.1f} ms of CPU")


if __name__ == "__main__":
    main()
