"""Run a DevCluster and a real pymesos driver against it, for tests of any part.

    with running_cluster(agents=2) as cluster, Framework(cluster) as fw:
        fw.wait_for(lambda: len(fw.offers) >= 2)

`Framework` records every callback of pymesos' real `MesosSchedulerDriver` (and
acknowledges each update itself) so that tests can wait on what the scheduler saw, never on a clock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pymesos import MesosSchedulerDriver, Scheduler

from calico_dcos.devcluster import DevCluster
from tests.helpers.wait import wait_until


def worker_agent_network() -> str:
    """The agents' /24 for this pytest process: 127.0.1.0 (the devcluster's default) alone or
    on pytest-xdist's first worker, 127.0.17.0, 127.0.33.0, … on the next ones (the worker's
    name, `gw<N>`, is in PYTEST_XDIST_WORKER). Process-executor agents bind their own address
    (etcd proxies on :2379, the agent's /files/read on :5051), so two workers' clusters must
    not share one; a stride of 16 /24s leaves each worker room for 4,064 agents, and
    `free_agent_network` (what `local` and `devcluster` runs pick) never takes 127.0.x.0."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker[:2] == "gw" and worker[2:].isdigit() else 0
    return f"127.0.{1 + 16 * (index % 16)}.0"


# Short intervals so that a test sees allocations, restarts and retries within a second.
FAST = {
    "agent_network": worker_agent_network(),
    "allocation_interval": 0.1,
    "heartbeat_interval": 1.0,
    "agent_restart_delay": 0.3,
    "status_retry_interval": 0.5,
}


@contextlib.contextmanager
def running_cluster(**kwargs: Any) -> Iterator[DevCluster]:
    """A started DevCluster (synthetic executor and fast intervals unless overridden)."""
    options = {"agents": 2, "public_agents": 1, "executor": "synthetic", **FAST, **kwargs}
    cluster = DevCluster(**options).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def framework_info(**kwargs: Any) -> dict:
    """A MULTI_ROLE, checkpointing FrameworkInfo for roles `*` and `slave_public`."""
    return {
        "user": "nobody",
        "name": "devcluster-test",
        "roles": ["*", "slave_public"],
        "checkpoint": True,
        "failover_timeout": 60.0,
        "capabilities": [{"type": "MULTI_ROLE"}],
        **kwargs,
    }


class Framework(Scheduler):
    """A pymesos scheduler that records what it is told. By default it keeps every offer;
    set `on_offers` to act on them (called on the driver's thread, must not raise)."""

    def __init__(
        self,
        cluster: DevCluster,
        info: dict | None = None,
        on_offers: Callable[[Framework, list[dict]], None] | None = None,
        **driver_kwargs: Any,
    ) -> None:
        self.cluster = cluster
        self.info = info or framework_info()
        self.on_offers = on_offers
        # Acknowledged here, not by pymesos: its implicit acknowledgement raises inside the
        # driver's thread when the master refuses it (403 once the stream has dropped, as the
        # real master answers), which aborts the driver. Like the real scheduler, a refused
        # acknowledgement is recorded and the agent sends the update again.
        self.acknowledge = driver_kwargs.pop("implicit_acknowledgements", True)
        self.ack_failures: list[str] = []
        self.driver_kwargs = {**driver_kwargs, "implicit_acknowledgements": False}
        self.lock = threading.Lock()
        self.framework_id: str | None = self.info.get("id", {}).get("value")
        self.offers: list[dict] = []
        self.rescinded: list[str] = []
        self.updates: list[dict] = []
        self.errors: list[str] = []
        self.lost_agents: list[str] = []
        self.registrations = 0
        self.driver: MesosSchedulerDriver | None = None

    def __enter__(self) -> Framework:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, master: str | None = None) -> Framework:
        self.driver = MesosSchedulerDriver(
            self, self.info, master or self.cluster.master_url, **self.driver_kwargs
        )
        before = self.registrations
        self.driver.start()
        wait_until(lambda: self.registrations > before, what="SUBSCRIBED")
        return self

    def stop(self, failover: bool = False) -> None:
        if self.driver:
            self.driver.stop(failover)
            self.driver.join()
            self.driver = None

    # pymesos callbacks ----------------------------------------------------------------------

    def registered(self, driver, framework_id, master_info) -> None:
        with self.lock:
            self.framework_id = framework_id["value"]
            self.registrations += 1

    def reregistered(self, driver, master_info) -> None:
        with self.lock:
            self.registrations += 1

    def resourceOffers(self, driver, offers) -> None:  # noqa: N802 (pymesos' name)
        with self.lock:
            self.offers.extend(offers)
        if self.on_offers:
            self.on_offers(self, offers)

    def offerRescinded(self, driver, offer_id) -> None:  # noqa: N802
        with self.lock:
            self.rescinded.append(offer_id["value"])

    def statusUpdate(self, driver, update) -> None:  # noqa: N802
        with self.lock:
            self.updates.append(update)
        if self.acknowledge and "uuid" in update:
            try:
                driver.acknowledgeStatusUpdate(update)
            except Exception as exc:  # refused or not connected: the agent resends it
                with self.lock:
                    self.ack_failures.append(str(exc))

    def slaveLost(self, driver, agent_id) -> None:  # noqa: N802
        with self.lock:
            self.lost_agents.append(agent_id["value"])

    def error(self, driver, message) -> None:
        with self.lock:
            self.errors.append(message)

    # queries --------------------------------------------------------------------------------

    def states(self, task_id: str) -> list[str]:
        with self.lock:
            return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]

    def wait_for_state(self, task_id: str, state: str, timeout: float = 10.0) -> dict:
        def find() -> dict | None:
            with self.lock:
                matches = [
                    u for u in self.updates
                    if u["task_id"]["value"] == task_id and u["state"] == state
                ]  # fmt: skip
            return matches[-1] if matches else None

        return wait_until(find, timeout, f"{task_id} {state}")

    def offer_from(self, agent_id: str, timeout: float = 10.0) -> dict:
        """The newest offer from `agent_id` that was not rescinded."""

        def find() -> dict | None:
            with self.lock:
                live = [
                    o for o in self.offers
                    if o["agent_id"]["value"] == agent_id and o["id"]["value"] not in self.rescinded
                ]  # fmt: skip
            return live[-1] if live else None

        return wait_until(find, timeout, f"an offer from {agent_id}")


def command_task(offer: dict, task_id: str, command: str = "true", **extra: Any) -> dict:
    """A TaskInfo running `command` with a little of the offer's cpus and mem. Each resource
    copies the offered resource's own reservation (`role`/`reservations`) and the offer's
    `allocation_info`: the allocation role says nothing about the reservation, since Mesos
    offers unreserved resources under any of a MULTI_ROLE framework's roles."""
    offered = {r["name"]: r for r in offer["resources"] if r.get("type") == "SCALAR"}

    def resource(name: str, value: float) -> dict:
        own = {k: offered[name][k] for k in ("role", "reservations") if k in offered[name]}
        return {"name": name, "type": "SCALAR", "scalar": {"value": value}, **own,
                "allocation_info": offer["allocation_info"]}  # fmt: skip

    return {
        "name": extra.pop("name", task_id),
        "task_id": {"value": task_id},
        "agent_id": offer["agent_id"],
        "resources": [resource("cpus", 0.1), resource("mem", 32)],
        "command": {"value": command},
        **extra,
    }
