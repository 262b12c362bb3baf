"""The embedded Mesos master: frameworks, agents, tasks, and the aiohttp app that serves them.

Everything here runs on one asyncio loop (the DevCluster thread), so no locks are needed.
Scheduler calls are in `calls.py`, the HTTP front door with the real master's check order in
`scheduler_api.py`, `/master/state` in `state.py`, and the `/devcluster/` control endpoints in
`faults.py`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from calico_dcos.devcluster import protocol
from calico_dcos.devcluster.agent import (
    DEFAULT_AGENT_NETWORK,
    Agent,
    agent_ip,
    prepare_host_root,
)
from calico_dcos.devcluster.allocator import (
    AGENT_DISCONNECTED,
    AGENT_UNREACHABLE,
    FRAMEWORK_DISCONNECTED,
    FRAMEWORK_FAILED_OVER,
    FRAMEWORK_REMOVED,
    MASTER_FAILOVER,
    Allocator,
    OfferBook,
)
from calico_dcos.devcluster.authorizer import Authorizer, register_refusal
from calico_dcos.devcluster.framework import Framework, Subscription, Task
from calico_dcos.devcluster.iam import Iam
from calico_dcos.devcluster.resources import Resources
from calico_dcos.devcluster.task_faults import TaskFaults

DEFAULT_RESOURCES = {"cpus": 4.0, "mem": 16384.0, "disk": 100000.0}
DEFAULT_PORTS = (31000, 32000)
TIMELINE_LENGTH = 200_000


class Executor(Protocol):
    async def launch(self, agent: Agent, task: dict) -> None: ...
    async def kill(self, agent: Agent, task_id: str, grace_seconds: float) -> None: ...
    async def agent_stopping(self, agent: Agent, keep_tasks: bool) -> None: ...


class Master:
    """State and behaviour of the master; see CONTRACTS.md for the parts others rely on."""

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        allocation_interval: float = 1.0,
        heartbeat_interval: float = 15.0,
        agent_restart_delay: float = 1.0,
        docker_version: str = "19.03.15",
        offer_timeout: float | None = None,
        credentials: dict[str, str] | None = None,
        status_retry_interval: float = 10.0,
        allocation_seed: int | None = None,
        agent_ping_timeout: float = 75.0,
        master_recovery_seconds: float = 0.5,
        agent_reregister_window: float = 1.0,
    ) -> None:
        """`agent_ping_timeout`: seconds without a pong before a partitioned agent is marked
        unreachable (the real `--agent_ping_timeout` x `--max_agent_ping_timeouts`).
        After a master failover the new leader answers 503 for `master_recovery_seconds`,
        and its agents re-register at random times within `agent_reregister_window` after
        that (see `new_leader`)."""
        self.agent_ping_timeout = agent_ping_timeout
        self.master_recovery_seconds = master_recovery_seconds
        self.agent_reregister_window = agent_reregister_window
        self.recovered_at = 0.0
        self.previous_frameworks: dict[str, Framework] = {}
        self.id = str(uuid.uuid4())
        self.workdir = workdir
        self.host = host
        self.port = 0
        self.heartbeat_interval = heartbeat_interval
        self.agent_restart_delay = agent_restart_delay
        self.docker_version = docker_version
        self.credentials = credentials
        self.iam: Iam | None = None  # strict mode: every scheduler call needs its token
        self.ca_bundle: Path | None = None  # strict mode: HTTPS, vouched for by this CA
        self.status_retry_interval = status_retry_interval
        self.executor: Executor | None = None
        # the agent's own HTTP endpoint (agent_http.py), opened as it registers: sets its port
        self.open_agent_endpoint: Callable[[Agent], None] | None = None
        self.agent_network = DEFAULT_AGENT_NETWORK  # agents' addresses: see `agent_ip`
        self.frameworks: dict[str, Framework] = {}
        self.removed_frameworks: dict[str, Framework] = {}
        self.agents: dict[str, Agent] = {}
        self.allocator = Allocator(self, allocation_interval, offer_timeout, allocation_seed)
        self.offers: OfferBook = OfferBook(self.allocator.ledger)
        self.timeline_entries: deque[dict] = deque(maxlen=TIMELINE_LENGTH)
        self.faults: list[tuple[re.Pattern, str]] = []
        self.task_faults = TaskFaults()  # lost KILLs, tasks held in STAGING
        self.call_faults: list[tuple[str, int, str]] = []
        self.authorizer = Authorizer()  # per-principal grants (authorizer.py)
        self.start_time = time.time()
        self.elected_time = time.time()
        self._counters = {"offer": 0, "framework": 0, "agent": 0, "private": 0, "public": 0}
        self._background: set[asyncio.Task] = set()
        self.hostcalls: list[dict] = []
        self._hostcall_offsets: dict[str, int] = {}

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ca_bundle else 'http'}://{self.host}:{self.port}"

    def record(self, event: str, **fields: Any) -> None:
        self.timeline_entries.append({"t": time.monotonic(), "event": event, **fields})

    def spawn(self, coro: Coroutine) -> None:
        """Run `coro` in the background, keeping a reference so it is not collected."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        asyncio.get_running_loop().call_later(delay, callback, *args)

    def new_offer_id(self) -> str:
        self._counters["offer"] += 1
        return f"{self.id}-O{self._counters['offer']}"

    def new_framework_id(self) -> str:
        n = self._counters["framework"]
        self._counters["framework"] += 1
        return f"{self.id}-{n:04d}"

    def master_info(self) -> dict:
        packed = sum(int(part) << (8 * i) for i, part in enumerate(self.host.split(".")))
        return {
            "id": self.id,
            "ip": packed,
            "port": self.port,
            "pid": f"master@{self.host}:{self.port}",
            "hostname": self.host,
            "version": protocol.MESOS_VERSION,
            "address": {"hostname": self.host, "ip": self.host, "port": self.port},
            "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "QUOTA_V2"}],
        }

    # Agents ---------------------------------------------------------------------------------

    def add_agent(
        self,
        public: bool = False,
        cpus: float | None = None,
        mem: float | None = None,
        disk: float | None = None,
        ports: tuple[int, int] = DEFAULT_PORTS,
        attributes: list[dict] | None = None,
        docker_version: str | None = None,
        dcos_calico: bool = False,
        docker_flags: list[str] | None = None,
    ) -> Agent:
        """A new agent, registered at once. `dcos_calico`: its host looks like DC/OS 2.x,
        which ships Calico as its own systemd units. `docker_flags`: what its docker unit
        passes to dockerd, e.g. `["--cluster-store", "etcd://…"]` (the stand-ins model it)."""
        kind = "public" if public else "private"
        self._counters["agent"] += 1
        self._counters[kind] += 1
        number = self._counters["agent"]
        hostname = f"{'public-' if public else ''}agent-{self._counters[kind]}"
        scalars = dict(DEFAULT_RESOURCES)
        for name, value in (("cpus", cpus), ("mem", mem), ("disk", disk)):
            if value is not None:
                scalars[name] = float(value)
        pool = Resources(scalars, {"ports": [ports]})
        role = "slave_public" if public else "*"
        if attributes is None:
            attributes = [public_ip_attribute()] if public else []
        agent = Agent(
            self,
            f"{self.id}-S{number - 1}",
            hostname,
            agent_ip(number, self.agent_network),
            public,
            self.workdir / "hosts" / hostname,
            {role: pool},
            attributes,
            docker_version or self.docker_version,
            self.status_retry_interval,
        )
        prepare_host_root(agent, dcos_calico, docker_flags)
        if self.open_agent_endpoint is not None:
            self.open_agent_endpoint(agent)
        self.agents[agent.agent_id] = agent
        self.record("agent_registered", agent_id=agent.agent_id, hostname=hostname)
        self.allocator.request()
        return agent

    def restart_agent(self, agent_id: str) -> None:
        """Restart the agent process: the master sees it disconnect, then re-register.

        apache/mesos src/master/master.cpp (`Master::exited(const UPID&)`, `removeFramework(
        Slave*, Framework*)`): at the disconnection the tasks of frameworks that do not
        checkpoint are TASK_LOST / REASON_AGENT_DISCONNECTED ("Agent <host> disconnected")
        at once, whatever their capabilities; checkpointed tasks survive the restart."""
        agent = self.agents[agent_id]
        if agent.removed or agent.unreachable or not agent.connected:
            return
        agent.disconnect()
        self.record("agent_disconnected", agent_id=agent_id, hostname=agent.hostname)
        self.allocator.rescind_agent(agent_id, AGENT_DISCONNECTED)
        lost = [tid for tid, fid in agent.task_frameworks.items() if not self._checkpoints(fid)]
        for task_id in lost:
            message = f"Agent {agent.hostname} disconnected"
            self._master_terminal(agent, task_id, "TASK_LOST", "REASON_AGENT_DISCONNECTED", message)
        if self.executor:
            self.spawn(self.executor.agent_stopping(agent, keep_tasks=not lost))
        self.later(self.agent_restart_delay, self._reregister, agent_id)

    def _checkpoints(self, framework_id: str) -> bool:
        framework = self.frameworks.get(framework_id)
        return bool(framework and framework.checkpoint)

    def _reregister(self, agent_id: str) -> None:
        agent = self.agents[agent_id]
        if agent.removed or agent.unreachable:
            return
        self._agent_back(agent)
        agent.set_unit(agent.unit, "active")

    def _agent_back(self, agent: Agent) -> None:
        """The agent re-registers: the master learns its tasks' states, kills that waited
        for it go out (`Master::reregisterSlave` resends `killedTasks`), its pending updates
        are resent, and it is offered again."""
        agent.reconnect()
        agent.registered_time = time.time()
        kills, agent.pending_kills = agent.pending_kills, {}
        for task_id, grace in kills.items():
            self.kill(agent, task_id, grace)
        self.record("agent_reregistered", agent_id=agent.agent_id, hostname=agent.hostname)
        self.allocator.request()

    def remove_agent(self, agent_id: str) -> None:
        """The agent is lost for good (its machine died): marked unreachable, never back."""
        agent = self.agents[agent_id]
        if agent.removed:
            return
        if not agent.unreachable:
            self._mark_unreachable(agent, "health check timed out")
        agent.removed = True
        agent.disconnect()
        if self.executor:
            self.spawn(self.executor.agent_stopping(agent, keep_tasks=False))
        for task_id in list(agent.task_frameworks):
            agent.forget_task(task_id)
        agent.available = {}
        self.record("agent_removed", agent_id=agent_id, hostname=agent.hostname)

    # Master failover ------------------------------------------------------------------------

    @property
    def recovering(self) -> bool:
        """The registry is still being recovered: scheduler calls get 503."""
        return time.monotonic() < self.recovered_at

    def new_leader(self) -> None:
        """This master is now a newly elected leader, as after a failover.

        apache/mesos src/master/master.cpp and http.cpp: the new leader recovers the registry
        (agents and unreachable agents, nothing about frameworks or tasks) and answers
        "503 Master has not finished recovery" until then. Frameworks become known again
        when they subscribe (any ID is accepted, even one torn down before the failover)
        or when an agent running their tasks re-registers, which also brings the tasks
        back. Until an agent re-registers, reconciliation of its tasks gets no answer and
        implicit reconciliation leaves them out (`Master::reconcile`). Old offers and
        streams die with the old leader."""
        self.id = str(uuid.uuid4())
        self.elected_time = time.time()
        self.recovered_at = time.monotonic() + self.master_recovery_seconds
        for offer_id in list(self.offers):
            offer = self.allocator.recover(offer_id)
            if offer is not None:
                self.allocator.record_end(offer, MASTER_FAILOVER, False)
        previous = {**self.previous_frameworks, **self.frameworks}
        for framework in previous.values():
            if framework.subscription:
                subscription, framework.subscription = framework.subscription, None
                subscription.close()
            if framework.failover_timer:
                framework.failover_timer.cancel()
                framework.failover_timer = None
        self.previous_frameworks = previous
        self.frameworks = {}
        self.removed_frameworks = {}
        self.allocator.ledger.dirty = True
        rng = self.allocator.random
        for agent in self.agents.values():
            if agent.removed or agent.unreachable:
                continue
            agent.recovering = True
            agent.pause()
            delay = self.master_recovery_seconds + rng.uniform(0, self.agent_reregister_window)
            self.later(delay, self._agent_reregistered_with_new_leader, agent.agent_id)
        self.record("master_failover", message="new leader elected; recovering")

    def reregister_agent_now(self, agent_id: str) -> None:
        """Fault helper: the agent's re-registration with the new leader arrives now instead
        of at its random time in `agent_reregister_window` (for tests that need to know)."""
        self._agent_reregistered_with_new_leader(agent_id)

    def _agent_reregistered_with_new_leader(self, agent_id: str) -> None:
        agent = self.agents[agent_id]
        if not agent.recovering:
            return
        agent.recovering = False
        for task_id, framework_id in list(agent.task_frameworks.items()):
            old = self.previous_frameworks.get(framework_id)
            task = old.tasks.get(task_id) if old else None
            if old is None or task is None or framework_id in self.removed_frameworks:
                continue
            framework = self.frameworks.get(framework_id)
            if framework is None:
                framework = Framework(framework_id, old.info, old.principal)
                framework.unregistered_time = time.time()
                self.frameworks[framework_id] = framework
            framework.tasks[task_id] = task
            self.allocator.ledger.dirty = True
        if not any(a.recovering for a in self.agents.values()):
            self.previous_frameworks = {}
        if agent.connected:
            self._agent_back(agent)

    # Partitions -----------------------------------------------------------------------------

    def partition_agent(self, agent_id: str) -> None:
        """Fault: cut the network between the master and the agent. The master notices
        nothing until `agent_ping_timeout` passes without a pong (apache/mesos
        src/master/master.cpp, `SlaveObserver::timeout`: `--agent_ping_timeout` 15 s x
        `--max_agent_ping_timeouts` 5 by default), then marks it unreachable. Meanwhile it
        still offers the agent; what it sends there (launches, kills) is lost, and the
        agent's updates wait in its status update manager."""
        agent = self.agents[agent_id]
        if agent.removed or agent.partitioned:
            return
        agent.partitioned = True
        agent.partition_epoch += 1
        self.record("agent_partitioned", agent_id=agent_id, hostname=agent.hostname)
        self.later(self.agent_ping_timeout, self._ping_timed_out, agent_id, agent.partition_epoch)

    def _ping_timed_out(self, agent_id: str, epoch: int) -> None:
        agent = self.agents[agent_id]
        if agent.partitioned and agent.partition_epoch == epoch and not agent.unreachable:
            self._mark_unreachable(agent, "health check timed out")

    def _mark_unreachable(self, agent: Agent, message: str) -> None:
        """`Master::markUnreachable` then `__removeSlave`: offers rescinded, the agent's
        offer filters dropped (`allocator->removeSlave`), each task TASK_UNREACHABLE
        (PARTITION_AWARE frameworks) or TASK_LOST, REASON_AGENT_REMOVED, with
        `unreachable_time`; the task IDs are remembered as unreachable; FAILURE (agent
        lost) to the frameworks."""
        self.allocator.rescind_agent(agent.agent_id, AGENT_UNREACHABLE)
        for framework in self.frameworks.values():
            framework.remove_agent_filters(agent.agent_id)
        agent.unreachable = True
        agent.unreachable_time = time.time()
        for task_id, framework_id in list(agent.task_frameworks.items()):
            framework = self.frameworks.get(framework_id)
            task = framework.tasks.get(task_id) if framework else None
            if framework is None or task is None:
                continue
            state = "TASK_UNREACHABLE" if framework.partition_aware else "TASK_LOST"
            status = protocol.master_status(
                task_id, state, "REASON_AGENT_REMOVED", message, agent.agent_id
            )
            status["unreachable_time"] = {"nanoseconds": int(agent.unreachable_time * 1e9)}
            if "executor" in task.info:
                status["executor_id"] = task.info["executor"]["executor_id"]
            self._set_state(agent, task, status)
            # Mesos' allocator removes an unreachable agent with its allocations
            # (`HierarchicalAllocatorProcess::removeSlave`): its tasks count no more.
            self._account(task, -1)
            framework.tasks.pop(task_id, None)
            framework.unreachable_tasks[task_id] = task
            framework.send(protocol.update_event(status))
        failure = {"type": "FAILURE", "failure": {"agent_id": {"value": agent.agent_id}}}
        for framework in self.frameworks.values():
            framework.send(failure)
        self.record("agent_unreachable", agent_id=agent.agent_id, hostname=agent.hostname)

    def heal_agent(self, agent_id: str) -> None:
        """Fault: the partition ends. Before the ping timeout nothing happened as far as the
        master knows; after it the agent re-registers as an unreachable agent coming back
        (`Master::_reregisterSlave`): its tasks are added back in their current state
        (RUNNING), no longer unreachable, and each framework hears of each of them once
        (`_reregistered_update`). Either way tasks the master sent while the link was
        down never arrived: the agent answers the master's reconciliation with TASK_DROPPED
        (PARTITION_AWARE) or TASK_LOST, "Reconciliation: task unknown to the agent"
        (src/slave/slave.cpp, `Slave::reregistered`)."""
        agent = self.agents[agent_id]
        if agent.removed or not agent.partitioned:
            return
        agent.partitioned = False
        if agent.unreachable:
            agent.unreachable = False
            agent.unreachable_time = None
            for task_id, framework_id in list(agent.task_frameworks.items()):
                framework = self.frameworks.get(framework_id)
                task = framework.unreachable_tasks.pop(task_id, None) if framework else None
                if task is None or task_id in agent.undelivered:
                    agent.forget_task(task_id)
                    continue
                framework.tasks[task_id] = task
                self._account(task, +1)
                self._reregistered_update(agent, framework, task)
        for task_id in list(agent.undelivered):
            agent.undelivered.discard(task_id)
            framework = self.frameworks.get(agent.task_frameworks.get(task_id, ""))
            state = "TASK_DROPPED" if framework and framework.partition_aware else "TASK_LOST"
            agent.send_status(
                task_id, state, message="Reconciliation: task unknown to the agent",
                reason="REASON_RECONCILIATION", source="SOURCE_AGENT",
            )  # fmt: skip
        self.record("agent_healed", agent_id=agent_id, hostname=agent.hostname)
        self._agent_back(agent)

    def _reregistered_update(self, agent: Agent, framework: Framework, task: Task) -> None:
        """What `Master::__reregisterSlave` tells a framework about each task of an agent
        that comes back after it was marked unreachable (apache/mesos src/master/master.cpp,
        since 5e5a8102c "Send status updates when an unreachable agent re-registers", Mesos
        1.5): one update in the task's state as the agent reports it (with its health),
        SOURCE_MASTER, REASON_SLAVE_REREGISTERED, "Unreachable agent re-reregistered" (sic),
        to every framework, PARTITION_AWARE or not. It is forwarded without a uuid (nothing to
        acknowledge, never resent) and dropped for a framework that is not connected
        ("Dropping update ... for disconnected framework"): a scheduler cannot count on it,
        which is why apache/mesos docs/reconciliation.md has it reconcile. Nothing is sent
        for an agent a failed-over master recovered from its registry (`slaves.recovered`),
        nor for a task launched into the partition (the agent never had it)."""
        latest = agent.latest.get(task.task_id) or task.latest or {}
        status = protocol.master_status(
            task.task_id,
            latest.get("state", task.state),
            "REASON_SLAVE_REREGISTERED",
            "Unreachable agent re-reregistered",
            agent.agent_id,
        )
        if "healthy" in latest:
            status["healthy"] = latest["healthy"]
        if "executor" in task.info:
            status["executor_id"] = task.info["executor"]["executor_id"]
        if framework.connected:
            framework.send(protocol.update_event(status))
        self.record(
            "reregistered_update", agent_id=agent.agent_id, task_id=task.task_id,
            state=status["state"], delivered=framework.connected,
        )  # fmt: skip

    def _master_terminal(
        self, agent: Agent, task_id: str, state: str, reason: str, message: str
    ) -> None:
        """End a task from the master's side: one update without uuid, task forgotten."""
        framework = self.frameworks.get(agent.task_frameworks.get(task_id, ""))
        agent.forget_task(task_id)
        if framework is None or task_id not in framework.tasks:
            return
        status = protocol.master_status(task_id, state, reason, message, agent.agent_id)
        task = framework.tasks[task_id]
        if "executor" in task.info:
            status["executor_id"] = task.info["executor"]["executor_id"]
        self._set_state(agent, task, status)
        self._finish_task(framework, task_id)
        framework.send(protocol.update_event(status))

    # Frameworks -----------------------------------------------------------------------------

    def subscribe(self, info: dict, principal: str | None, suppressed: list[str]) -> Subscription:
        """SUBSCRIBE: a new framework, or a failover of a known one (§5)."""
        framework_id = info.get("id", {}).get("value")
        error = self._refusal(info, framework_id, principal) or suppressed_error(info, suppressed)
        if error:
            return self._refused_subscription(framework_id or "", error)
        framework = self.frameworks.get(framework_id or "")
        if framework is None:
            framework_id = framework_id or self.new_framework_id()
            framework = Framework(framework_id, info, principal or info.get("principal"))
            self.frameworks[framework_id] = framework
        else:
            self._fail_over(framework, info)
        framework.suppressed = set(suppressed)
        resubscribed = "id" in info
        subscribed = {
            "type": "SUBSCRIBED",
            "subscribed": {
                "framework_id": {"value": framework.id},
                "heartbeat_interval_seconds": self.heartbeat_interval,
                "master_info": self.master_info(),
            },
        }
        framework.subscription = Subscription(framework.id, self.heartbeat_interval, subscribed)
        framework.registered_time = time.time()
        self.record("framework_subscribed", framework_id=framework.id, name=info.get("name"))
        self.allocator.request()
        if resubscribed:
            self._update_framework_on_agents()
        return framework.subscription

    def _update_framework_on_agents(self) -> None:
        """`Master::sendFrameworkUpdates`: every registered agent gets UpdateFrameworkMessage
        and resumes its status update manager (Agent.resume)."""
        for agent in self.agents.values():
            if agent.connected and not agent.removed:
                agent.resume()

    def _refusal(self, info: dict, framework_id: str | None, principal: str | None) -> str | None:
        if framework_id in self.removed_frameworks:
            return "Framework has been removed"
        error = framework_info_error(info)
        if error:
            return error
        wanted = principal or info.get("principal")
        if not self.authorizer.allows(wanted, "REGISTER_FRAMEWORK"):  # `_subscribe`
            return register_refusal(info)
        known = self.frameworks.get(framework_id or "")
        if known and known.principal != wanted:
            return "Changing framework's principal is not allowed."
        return None

    def _refused_subscription(self, framework_id: str, error: str) -> Subscription:
        refused = Subscription(framework_id, self.heartbeat_interval, None)
        refused.close(error)
        return refused

    def _fail_over(self, framework: Framework, info: dict) -> None:
        old = framework.subscription
        framework.subscription = None
        if old:
            old.close("Framework failed over")
        if framework.failover_timer:
            framework.failover_timer.cancel()
            framework.failover_timer = None
        self.allocator.drop_framework_offers(framework, FRAMEWORK_FAILED_OVER)
        framework.update_info(info)

    def stream_closed(self, subscription: Subscription) -> None:
        """The SUBSCRIBE connection ended: disconnect and start the failover timeout."""
        subscription.close()
        framework = self.frameworks.get(subscription.framework_id)
        if framework is None or framework.subscription is not subscription:
            return
        framework.subscription = None
        framework.unregistered_time = time.time()
        self.allocator.drop_framework_offers(framework, FRAMEWORK_DISCONNECTED)
        framework.clear_filters()  # `HierarchicalAllocatorProcess::deactivateFramework`
        self.record("framework_disconnected", framework_id=framework.id)
        loop = asyncio.get_running_loop()
        framework.failover_timer = loop.call_later(
            framework.failover_timeout, self._failover_expired, framework.id
        )

    def _failover_expired(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        if framework and not framework.connected:
            self.remove_framework(framework, "failover timeout expired")

    def remove_framework(self, framework: Framework, why: str) -> None:
        """TEARDOWN or failover timeout (`Master::removeFramework`): each task is killed on
        its agent and ends TASK_KILLED / REASON_FRAMEWORK_REMOVED in the master's books (no
        update reaches the framework, which is gone); the stream closes; the ID is
        remembered as completed, so it cannot subscribe again."""
        for task_id, task in list(framework.tasks.items()):
            agent = self.agents.get(task.agent_id)
            if agent and self.executor and not agent.removed:
                self.spawn(self.executor.kill(agent, task_id, 0.0))
            status = protocol.master_status(
                task_id, "TASK_KILLED", "REASON_FRAMEWORK_REMOVED",
                f"Framework {framework.id} removed", task.agent_id,
            )  # fmt: skip
            if agent:
                self._set_state(agent, task, status)
                self._recover_task(agent, task)
                agent.forget_task(task_id)
            self._finish_task(framework, task_id)
        self.allocator.drop_framework_offers(framework, FRAMEWORK_REMOVED)
        if framework.subscription:
            framework.subscription.close()
            framework.subscription = None
        del self.frameworks[framework.id]
        self.removed_frameworks[framework.id] = framework
        self.allocator.ledger.dirty = True
        self.record("framework_removed", framework_id=framework.id, message=why)

    def disconnect_framework(self, framework_id: str) -> None:
        """Fault: drop the framework's stream as a network failure would."""
        framework = self.frameworks[framework_id]
        if framework.subscription:
            self.stream_closed(framework.subscription)

    def silence_framework(self, framework_id: str) -> None:
        """Fault: the stream stays open but no event (not even HEARTBEAT) reaches it."""
        subscription = self.frameworks[framework_id].subscription
        if subscription:
            subscription.silenced = True

    # Tasks ----------------------------------------------------------------------------------

    def launch(self, framework: Framework, agent: Agent, task: Task) -> None:
        """The task is STAGING on the agent; the executor reports from here on."""
        framework.tasks[task.task_id] = task
        self._account(task, 1)
        agent.task_frameworks[task.task_id] = framework.id
        name = task.info.get("name", "")
        self.record(
            "launch", agent_id=agent.agent_id, hostname=agent.hostname,
            task_id=task.task_id, task_name=name, state="TASK_STAGING",
        )  # fmt: skip
        failure = self._take_fault(name)
        if agent.partitioned:
            agent.undelivered.add(task.task_id)
        elif self.task_faults.launch_held(task.task_id, name):
            self.record("launch_held", agent_id=agent.agent_id, task_id=task.task_id)
        elif failure is not None:
            agent.send_status(task.task_id, "TASK_STARTING")
            agent.send_status(task.task_id, "TASK_FAILED", message=failure)
        elif self.executor:
            self.spawn(self.executor.launch(agent, task.info))

    def fail_next_task(self, name_regex: str, message: str = "") -> None:
        """Fault: the next launched task whose name matches goes STARTING → FAILED instead of
        reaching the executor; the one mechanism for every executor."""
        self.faults.append((re.compile(name_regex), message or "Injected failure (devcluster)"))

    def deny_view_framework(self) -> None:
        """Fault: no principal may view any framework, as an authorizer that grants no
        VIEW_FRAMEWORK does (on DC/OS, no `dcos:mesos:master:framework:role:<role>` read):
        the operator API's `GET_FRAMEWORKS` then leaves every framework out of its answer
        rather than refusing the call (apache/mesos src/master/http.cpp `getFrameworks`,
        `ObjectApprovers` for {VIEW_FRAMEWORK}; `_getFrameworks` skips what the approver
        denies)."""
        self.authorizer.deny_to_all("VIEW_FRAMEWORK")

    def deny_view_flags(self) -> None:
        """Fault: no principal may view the master's flags, as an authorizer that grants no
        VIEW_FLAGS does (on DC/OS strict mode, no `dcos:mesos:master:flags` read): the
        operator API's `GET_FLAGS` is then refused 403 (apache/mesos src/master/http.cpp
        `Master::Http::_flags` asks the authorizer for VIEW_FLAGS, with no object, and
        `getFlags` answers `Forbidden()`, libprocess' "403 Forbidden.")."""
        self.authorizer.deny_to_all("VIEW_FLAGS")

    def lift_denial(self, action: str) -> None:
        """The `deny_view_framework` or `deny_view_flags` fault (`action` VIEW_FRAMEWORK or
        VIEW_FLAGS) ends: each principal's grant decides again, as after the missing
        permission is granted."""
        self.authorizer.lift_denial(action)

    def refuse_next_call(self, call_type: str, status: int = 400, message: str = "") -> None:
        """Fault: answer the next scheduler call of `call_type` (ACCEPT, DECLINE, ...) with
        `status` and `message` instead of acting on it, as the real master refuses a call it
        cannot parse or validate (src/master/http.cpp): the call has no effect."""
        text = message or "Failed to validate scheduler::Call: injected refusal (devcluster)"
        self.call_faults.append((call_type, status, text))

    def take_call_fault(self, call_type: str) -> tuple[int, str] | None:
        for index, (kind, status, text) in enumerate(self.call_faults):
            if kind == call_type:
                del self.call_faults[index]
                return status, text
        return None

    def _take_fault(self, name: str) -> str | None:
        for index, (pattern, message) in enumerate(self.faults):
            if pattern.search(name):
                del self.faults[index]
                return message
        return None

    def kill(self, agent: Agent, task_id: str, grace_seconds: float) -> None:
        """A kill for a disconnected agent waits for it to re-register (`Master::kill`:
        "Kill will be retried if the agent reregisters"); one for a partitioned agent is
        lost, as the master does not know yet."""
        self.record("kill", agent_id=agent.agent_id, hostname=agent.hostname, task_id=task_id)
        framework = self.frameworks.get(agent.task_frameworks.get(task_id, ""))
        task = framework and framework.tasks.get(task_id)
        if self.task_faults.kill_lost(task.info.get("name", "") if task else ""):
            self.record("kill_lost", agent_id=agent.agent_id, task_id=task_id)
            return
        if task_id in self.task_faults.held:  # never reached an executor
            self.task_faults.held.discard(task_id)
            agent.send_status(task_id, "TASK_KILLED", message="Killed while STAGING")
            return
        if not agent.connected or agent.recovering:
            agent.pending_kills[task_id] = grace_seconds
        elif self.executor and not agent.partitioned:
            self.spawn(self.executor.kill(agent, task_id, grace_seconds))

    def on_latest_state(self, agent: Agent, status: dict) -> None:
        """The agent tells the master each task's latest state as soon as it knows it."""
        framework = self.frameworks.get(agent.task_frameworks.get(status["task_id"]["value"], ""))
        task = framework and framework.tasks.get(status["task_id"]["value"])
        if task:
            self._set_state(agent, task, status)

    def _set_state(self, agent: Agent, task: Task, status: dict) -> None:
        if (
            task.state not in protocol.TERMINAL_STATES
            and status["state"] in protocol.TERMINAL_STATES
        ):
            self._recover_task(agent, task)
        task.state = status["state"]
        task.latest = status
        task.statuses.append({"state": status["state"], "timestamp": status["timestamp"]})
        self.record(
            "status", agent_id=agent.agent_id, hostname=agent.hostname, task_id=task.task_id,
            task_name=task.info.get("name", ""), state=status["state"],
            message=status.get("message", ""), healthy=status.get("healthy"),
        )  # fmt: skip

    def _recover_task(self, agent: Agent, task: Task) -> None:
        if agent.removed:
            return
        for reserved, pool in task.pools.items():
            agent.available.setdefault(reserved, Resources()).add(pool)
        self._account(task, -1)
        task.pools = {}

    def _account(self, task: Task, sign: int) -> None:
        """The allocator's ledger counts the resources of the current frameworks' tasks."""
        if not task.pools:
            return
        framework = self.frameworks.get(task.framework_id)
        if framework is not None and framework.tasks.get(task.task_id) is task:
            self.allocator.ledger.add(framework.id, task.role, task.pools, sign)
        else:
            self.allocator.ledger.dirty = True

    def forward_update(self, agent: Agent, status: dict) -> None:
        """One delivery attempt of an agent's update; dropped if the framework is away."""
        framework = self.frameworks.get(agent.task_frameworks.get(status["task_id"]["value"], ""))
        if framework is None:
            return
        task = framework.tasks.get(status["task_id"]["value"])
        if task:
            task.status_update_state = status["state"]
        framework.send(protocol.update_event(status))

    def acknowledged(self, framework: Framework, agent: Agent, task_id: str, uuid: str) -> None:
        status = agent.acknowledge(task_id, uuid)
        if status and status["state"] in protocol.TERMINAL_STATES:
            self._finish_task(framework, task_id)

    def _finish_task(self, framework: Framework, task_id: str) -> None:
        task = framework.tasks.get(task_id)
        if task:
            self._account(task, -1)
            del framework.tasks[task_id]
            framework.completed_tasks.append(task)

    def timeline(self) -> list[dict]:
        """What happened, oldest first, with the stand-ins' calls.log lines as `hostcall`."""
        self._collect_hostcalls()
        return sorted([*self.timeline_entries, *self.hostcalls], key=lambda e: e["t"])

    def _collect_hostcalls(self) -> None:
        """Read what the stand-ins appended since last time (their `t` is CLOCK_MONOTONIC,
        the same clock as ours)."""
        for agent in self.agents.values():
            log = agent.host_root / ".devcluster" / "calls.log"
            offset = self._hostcall_offsets.get(agent.agent_id, 0)
            if not log.exists() or log.stat().st_size <= offset:
                continue
            with log.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._hostcall_offsets[agent.agent_id] = offset + len(complete)
            for line in complete.decode().splitlines():  # already redacted (hostsim.redact)
                call = json.loads(line)
                entry = {
                    "t": call["t"], "event": "hostcall", "agent_id": agent.agent_id,
                    "hostname": agent.hostname, "tool": call["tool"], "argv": call["argv"],
                }  # fmt: skip
                if "env" in call:
                    entry["env"] = call["env"]
                self.hostcalls.append(entry)


def public_ip_attribute() -> dict:
    """DC/OS marks public agents with the attribute `public_ip:true`."""
    return {"name": "public_ip", "type": "TEXT", "text": {"value": "true"}}


def suppressed_error(info: dict, suppressed: list[str]) -> str | None:
    roles = set(info.get("roles", [])) | {info.get("role", "*")}
    unknown = sorted(set(suppressed) - roles)
    if unknown:
        return f"Suppressed roles {unknown} are not a subset of the framework's roles"
    return None


def framework_info_error(info: dict) -> str | None:
    """FrameworkInfo validation (§4): the error text delivered as an ERROR event."""
    multi_role = any(c.get("type") == "MULTI_ROLE" for c in info.get("capabilities", []))
    if multi_role and "role" in info:
        return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
    if not multi_role and "roles" in info:
        return "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
    roles = info.get("roles", [])
    if len(set(roles)) != len(roles):
        return "'FrameworkInfo.roles' contains duplicate items"
    for role in roles or [info.get("role", "*")]:
        if role != "*" and (not role or role.startswith(("-", ".")) or "/" in role or " " in role):
            return f"Role '{role}' is invalid"
    if "id" in info:
        error = protocol.valid_id(info["id"].get("value"))
        if error:
            return f"'FrameworkInfo.id' is invalid: {error}"
    return None
