"""A Mesos v1 scheduler client that is not pymesos: plain `requests` reading the RecordIO
stream, as any other HTTP client of the real master would (apache/mesos
`docs/scheduler-http-api.md`: `<length>\\n<JSON>` records on a chunked response).

    with RawScheduler(cluster.base_url) as raw:
        offer = raw.wait_for(lambda e: e["type"] == "OFFERS")["offers"]["offers"][0]
        response = raw.call("DECLINE", {"offer_ids": [offer["id"]]})

Events are read on a thread into a list; `wait_for` waits on them (never a fixed sleep).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import requests

from tests.helpers.devcluster import framework_info, wait_until


def read_records(response: requests.Response):
    """Yield each RecordIO record of a streamed response as parsed JSON."""
    for record in read_records_bytes(response):
        yield json.loads(record)


def read_records_bytes(response: requests.Response):
    """Yield each RecordIO record of a streamed response as bytes."""
    raw = response.raw
    while True:
        line = b""
        while not line.endswith(b"\n"):
            char = raw.read(1)
            if not char:
                return
            line += char
        size = int(line)
        data = b""
        while len(data) < size:
            chunk = raw.read(size - len(data))
            if not chunk:
                return
            data += chunk
        yield data


class SubscriptionRefused(Exception):
    """The master answered SUBSCRIBE with an ERROR event (its text)."""


class RawScheduler:
    def __init__(self, base_url: str, info: dict | None = None) -> None:
        self.base_url = base_url
        self.info = info or framework_info(name="raw-client")
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.response: requests.Response | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RawScheduler:
        return self.subscribe()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self) -> RawScheduler:
        call: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": self.info}}
        if "id" in self.info:
            call["framework_id"] = self.info["id"]
        self.response = requests.post(
            f"{self.base_url}/api/v1/scheduler", json=call, stream=True, timeout=30,
            headers={"Accept": "application/json"},
        )  # fmt: skip
        self.response.raise_for_status()
        self.stream_id = self.response.headers["Mesos-Stream-Id"]
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        first = self.wait_for(lambda e: e["type"] in ("SUBSCRIBED", "ERROR"))
        if first["type"] == "ERROR":
            raise SubscriptionRefused(first["error"]["message"])
        self.framework_id = first["subscribed"]["framework_id"]["value"]
        return self

    def _read(self) -> None:
        try:
            for event in read_records(self.response):
                with self.lock:
                    self.events.append(event)
        except (requests.RequestException, OSError, ValueError, AttributeError):
            # AttributeError: urllib3 drops its file object when the response is closed.
            return

    def close(self) -> None:
        if self.response is not None:
            self.response.close()

    def reconcile(self, *tasks: tuple[str, str | None]) -> requests.Response:
        """Explicit reconciliation of (task ID, agent ID or None) pairs, agent IDs included
        (which pymesos' `reconcileTasks` drops)."""
        items = []
        for task_id, agent_id in tasks:
            item: dict[str, Any] = {"task_id": {"value": task_id}}
            if agent_id:
                item["agent_id"] = {"value": agent_id}
            items.append(item)
        return self.call("RECONCILE", {"tasks": items})

    def call(self, kind: str, body: Any = None, raw: bytes | None = None) -> requests.Response:
        """POST a call (`raw`: these exact bytes instead of the JSON of the call)."""
        call: dict[str, Any] = {"type": kind, "framework_id": {"value": self.framework_id}}
        if body is not None:
            call[kind.lower()] = body
        data = raw if raw is not None else json.dumps(call).encode()
        return requests.post(
            f"{self.base_url}/api/v1/scheduler", data=data, timeout=10,
            headers={"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id},
        )  # fmt: skip

    def wait_for(self, match: Callable[[dict], bool], timeout: float = 10.0, after: int = 0):
        """The first event (from index `after`) that `match`es."""

        def find() -> dict | None:
            with self.lock:
                return next((e for e in self.events[after:] if match(e)), None)

        return wait_until(find, timeout, "an event")

    def offers(self) -> list[dict]:
        with self.lock:
            return [o for e in self.events if e["type"] == "OFFERS" for o in e["offers"]["offers"]]

    def updates(self, task_id: str) -> list[dict]:
        with self.lock:
            return [
                e["update"]["status"] for e in self.events
                if e["type"] == "UPDATE" and e["update"]["status"]["task_id"]["value"] == task_id
            ]  # fmt: skip

    def wait_for_update(self, task_id: str, state: str, timeout: float = 10.0) -> dict:
        def find() -> dict | None:
            return next((u for u in self.updates(task_id) if u["state"] == state), None)

        return wait_until(find, timeout, f"{task_id} {state}")

    def acknowledge(self, status: dict) -> requests.Response:
        return self.call("ACKNOWLEDGE", {
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"],
        })  # fmt: skip
