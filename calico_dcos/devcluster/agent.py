"""A simulated Mesos agent: identity, resources, its host root, and reliable status updates.

The real agent's task status update manager keeps one ordered stream of updates per task,
sends only the head, and retries it with backoff until the scheduler acknowledges it; the
master forwards each attempt. This class does the same on the master's event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from calico_dcos.devcluster import hostroot, protocol
from calico_dcos.devcluster.resources import Resources

if TYPE_CHECKING:
    from calico_dcos.devcluster.master import Master

AGENT_PORT = 5051
# Agents' addresses by default (tests rely on them): 127.0.1.1, 127.0.1.2, …
DEFAULT_AGENT_NETWORK = "127.0.1.0"
# The etcd-proxy step's default `etcd.listen_port`, which every agent's proxy binds on its own
# address: what two devclusters on one machine would collide on.
ETCD_PROXY_PORT = 2379
MAX_RETRY_INTERVAL = 600.0


@dataclass(frozen=True)
class AgentInfo:
    """A thread-safe snapshot of an agent, for tests and tools."""

    agent_id: str
    hostname: str
    ip: str
    public: bool
    host_root: Path
    connected: bool
    port: int = AGENT_PORT  # its HTTP endpoint's (the offers' `url`)


def agent_ip(number: int, network: str = DEFAULT_AGENT_NETWORK) -> str:
    """Agent `number` (from 1)'s address: `network` is a /24's first address (127.a.b.0);
    its .1 to .254 for the first 254 agents, then the next /24s'."""
    offset = 256 * ((number - 1) // 254) + 1 + (number - 1) % 254
    return str(ipaddress.IPv4Address(network) + offset)


def free_agent_network(
    agents: int, port: int = ETCD_PROXY_PORT, tries: int = 50, rng: random.Random | None = None
) -> str:
    """A random loopback /24 (127.a.b.0, a in 2–254, so never the tests' 127.0.1.0) on which
    the first `agents` agents' `port` can be bound now: so that two devclusters, or a
    `calico-dcos local` and the tests, on one machine do not fight over their proxies'
    127.0.1.N:2379 (Linux routes all of 127.0.0.0/8 to loopback). RuntimeError after `tries`
    ranges, naming the last address taken."""
    rng = rng or random.Random()
    taken = ""
    for _ in range(tries):
        network = f"127.{rng.randint(2, 254)}.{rng.randint(0, 255)}.0"
        last = agent_ip(agents, network)
        if int(ipaddress.IPv4Address(last)) >> 24 != 127:
            continue  # so many agents that the range leaves 127.0.0.0/8
        taken = first_taken(network, agents, port)
        if not taken:
            return network
    raise RuntimeError(
        f"no free loopback range for {agents} agents' port {port} after {tries} tries "
        f"(last taken: {taken}); stop other devclusters or `calico-dcos local` runs"
    )


def first_taken(network: str, agents: int, port: int) -> str:
    """The first of the agents' `address:port` that cannot be bound now, or ''."""
    for number in range(1, agents + 1):
        address = agent_ip(number, network)
        with socket.socket() as sock:
            try:
                sock.bind((address, port))
            except OSError:
                return f"{address}:{port}"
    return ""


class Agent:
    """One agent. Executors call `send_status`; the master calls `acknowledge`."""

    def __init__(
        self,
        master: Master,
        agent_id: str,
        hostname: str,
        ip: str,
        public: bool,
        host_root: Path,
        pools: dict[str, Resources],
        attributes: list[dict],
        docker_version: str,
        retry_interval: float,
    ) -> None:
        self.master = master
        self.agent_id = agent_id
        self.hostname = hostname
        self.ip = ip
        self.port = AGENT_PORT
        self.public = public
        self.host_root = host_root
        self.total = pools
        self.available = {role: pool.copy() for role, pool in pools.items()}
        self.attributes = attributes
        self.docker_version = docker_version
        self.retry_interval = retry_interval
        self.connected = True
        self.removed = False
        # Partitions and master failovers (master.py): the link is down while partitioned or
        # while a new master waits for this agent to re-register.
        self.partitioned = False
        self.partition_epoch = 0
        self.unreachable = False
        self.unreachable_time: float | None = None
        self.recovering = False
        self.undelivered: set[str] = set()  # launched while partitioned: never arrived
        self.pending_kills: dict[str, float] = {}  # task ID -> grace, resent on re-register
        self.latest: dict[str, dict] = {}  # each task's latest status, as the agent knows it
        self.registered_time = time.time()
        self.unit = "dcos-mesos-slave-public" if public else "dcos-mesos-slave"
        self.task_frameworks: dict[str, str] = {}
        self._streams: dict[str, deque[dict]] = {}
        self._retries: dict[str, asyncio.TimerHandle] = {}

    @property
    def link_up(self) -> bool:
        """Messages get through between this agent and the leading master."""
        return self.connected and not self.partitioned and not self.recovering

    @property
    def control_url(self) -> str:
        return self.master.base_url

    def info(self) -> AgentInfo:
        return AgentInfo(
            self.agent_id,
            self.hostname,
            self.ip,
            self.public,
            self.host_root,
            self.connected,
            self.port,
        )

    def framework_id_of(self, task_id: str) -> str | None:
        return self.task_frameworks.get(task_id)

    def send_status(
        self,
        task_id: str,
        state: str,
        *,
        message: str | None = None,
        reason: str | None = None,
        healthy: bool | None = None,
        source: str = "SOURCE_EXECUTOR",
    ) -> None:
        """Queue a reliable update for `task_id`; the head of each task's stream is sent."""
        if self.removed or task_id not in self.task_frameworks:
            return
        status = self._status(task_id, state, message, reason, healthy, source)
        self.latest[task_id] = status
        if self.link_up:
            self.master.on_latest_state(self, status)
        stream = self._streams.setdefault(task_id, deque())
        stream.append(status)
        if len(stream) == 1 and self.link_up:
            self._deliver(task_id, self.retry_interval)

    def _status(self, task_id, state, message, reason, healthy, source) -> dict:
        status = {
            "task_id": {"value": task_id},
            "state": state,
            "source": source,
            "agent_id": {"value": self.agent_id},
            "executor_id": {"value": task_id},
            "timestamp": time.time(),
            "uuid": protocol.new_uuid_b64(),
        }
        for key, value in (("message", message), ("reason", reason), ("healthy", healthy)):
            if value is not None:
                status[key] = value
        return status

    def _deliver(self, task_id: str, interval: float) -> None:
        stream = self._streams.get(task_id)
        if not stream or not self.link_up:
            return
        self.master.forward_update(self, stream[0])
        loop = asyncio.get_running_loop()
        next_interval = min(interval * 2, MAX_RETRY_INTERVAL)
        self._retries[task_id] = loop.call_later(interval, self._deliver, task_id, next_interval)

    def acknowledge(self, task_id: str, uuid_b64: str) -> dict | None:
        """Drop the head update if `uuid_b64` is its uuid; returns the acknowledged status."""
        stream = self._streams.get(task_id)
        if not stream or stream[0]["uuid"] != uuid_b64:
            return None
        status = stream.popleft()
        self._cancel_retry(task_id)
        if stream:
            self._deliver(task_id, self.retry_interval)
        else:
            del self._streams[task_id]
        if status["state"] in protocol.TERMINAL_STATES and not stream:
            self.task_frameworks.pop(task_id, None)
            self.latest.pop(task_id, None)
        return status

    def _cancel_retry(self, task_id: str) -> None:
        handle = self._retries.pop(task_id, None)
        if handle:
            handle.cancel()

    def pending_updates(self) -> int:
        return sum(len(stream) for stream in self._streams.values())

    def pause(self) -> None:
        """Stop sending (the master it talked to is gone); updates wait in their streams."""
        for task_id in list(self._retries):
            self._cancel_retry(task_id)

    def disconnect(self) -> None:
        """Stop talking to the master; updates wait in their streams."""
        self.connected = False
        for task_id in list(self._retries):
            self._cancel_retry(task_id)

    def resume(self) -> None:
        """`TaskStatusUpdateManagerProcess::resume` (apache/mesos
        src/slave/task_status_update_manager.cpp), which the agent runs on the master's
        UpdateFrameworkMessage after a framework re-subscribes (src/slave/slave.cpp,
        `Slave::updateFramework`): the head of every stream, of every framework, is resent
        at once with the retry interval back at its minimum."""
        if not self.link_up:
            return
        for task_id in list(self._streams):
            self._cancel_retry(task_id)
            self._deliver(task_id, self.retry_interval)

    def killing(self, task_id: str) -> None:
        """The command executor's TASK_KILLING at the start of a kill, sent only when the
        framework has TASK_KILLING_STATE (apache/mesos src/launcher/executor.cpp, `kill`)."""
        framework = self.master.frameworks.get(self.task_frameworks.get(task_id, ""))
        if framework and "TASK_KILLING_STATE" in framework.capabilities:
            self.send_status(task_id, "TASK_KILLING")

    def reconnect(self) -> None:
        """Re-register: the master learns each task's latest state (the re-registration
        message carries the tasks), then the head of every stream is resent."""
        self.connected = True
        if not self.link_up:
            return
        for status in list(self.latest.values()):
            self.master.on_latest_state(self, status)
        for task_id in list(self._streams):
            self._cancel_retry(task_id)
            self._deliver(task_id, self.retry_interval)

    def forget_task(self, task_id: str) -> None:
        """The task is gone from this agent (framework removed, agent restarted without it)."""
        self.task_frameworks.pop(task_id, None)
        self._streams.pop(task_id, None)
        self.latest.pop(task_id, None)
        self.undelivered.discard(task_id)
        self.pending_kills.pop(task_id, None)
        self._cancel_retry(task_id)

    def set_unit(self, unit: str, state: str) -> None:
        hostroot.set_unit(self.host_root, unit, state)


def prepare_host_root(
    agent: Agent, dcos_calico: bool = False, docker_flags: list[str] | None = None
) -> None:
    """Lay out the simulated host root as CONTRACTS.md fixes it."""
    hostroot.create_host_root(
        agent.host_root,
        agent_id=agent.agent_id,
        hostname=agent.hostname,
        ip=agent.ip,
        public=agent.public,
        docker_version=agent.docker_version,
        control_url=agent.control_url,
        control_ca=agent.master.ca_bundle,
        dcos_calico=dcos_calico,
        docker_flags=docker_flags,
    )
