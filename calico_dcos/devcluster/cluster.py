"""DevCluster: the embedded Mesos master, its agents and an executor, on a background thread.

Its public methods are thread-safe: each one runs on the master's asyncio loop and waits for
the result. Tests, `calico-dcos local`, `calico-dcos devcluster` and the benchmark use it.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from calico_dcos.devcluster.agent import DEFAULT_AGENT_NETWORK, AgentInfo, free_agent_network
from calico_dcos.devcluster.agent_http import AgentEndpoints
from calico_dcos.devcluster.app import make_app
from calico_dcos.devcluster.front import MasterPort
from calico_dcos.devcluster.iam import FIVE_DAYS, LOGIN_PATH, Iam
from calico_dcos.devcluster.master import Executor, Master
from calico_dcos.devcluster.pki import Pki
from calico_dcos.devcluster.state import master_state
from calico_dcos.devcluster.synthetic import SyntheticExecutor
from calico_dcos.devcluster.zk import LeaderRecord
from calico_dcos.loops import cancel_the_rest

T = TypeVar("T")


def check_durations(
    positive: dict[str, float | None], at_least_zero: dict[str, float | None]
) -> None:
    """ValueError naming the first keyword whose seconds cannot be used (None is "not
    given" and passes). `positive`: loops that wait this long between rounds (the
    allocator, a subscription's HEARTBEATs, an agent's status update retries), run back to
    back at 0 or less, taking a CPU core for as long as the cluster runs (Mesos itself
    sets no bound on `--allocation_interval`: apache/mesos src/master/flags.cpp); a token or an
    offer that lives 0 s is refused for the same reason Mesos refuses `--offer_timeout`
    <= 0 (apache/mesos src/master/master.cpp: "Must be greater than zero"). `at_least_zero`:
    delays, where 0 means "at once". NaN and infinity mean nothing as a delay."""
    for minimum, durations in ((None, positive), (0.0, at_least_zero)):
        for name, seconds in durations.items():
            if seconds is None:
                continue
            if not math.isfinite(seconds):
                raise ValueError(f"{name} must be a finite number of seconds, not {seconds!r}")
            if minimum is None and seconds <= 0:
                never = " (or None: never)" if name == "offer_timeout" else ""
                raise ValueError(f"{name} must be more than 0 seconds{never}, not {seconds!r}")
            if minimum is not None and seconds < minimum:
                raise ValueError(f"{name} must be at least 0 seconds, not {seconds!r}")


class DevCluster:
    def __init__(
        self,
        agents: int = 3,
        public_agents: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        executor: str = "process",
        workdir: str | Path | None = None,
        allocation_interval: float = 1.0,
        heartbeat_interval: float = 15.0,
        agent_restart_delay: float = 1.0,
        docker_version: str = "19.03.15",
        offer_timeout: float | None = None,
        credentials: dict[str, str] | None = None,
        zk: str | None = None,
        synthetic_durations: dict[str, float] | None = None,
        status_retry_interval: float = 10.0,
        dcos_calico_agents: int = 0,
        strict: bool = False,
        token_lifetime: float = FIVE_DAYS,
        allocation_seed: int | None = None,
        agent_ping_timeout: float = 75.0,
        master_recovery_seconds: float = 0.5,
        agent_reregister_window: float = 1.0,
        agent_network: str = DEFAULT_AGENT_NETWORK,
        synthetic_step: float | None = None,
    ) -> None:
        """`dcos_calico_agents`: private agents beyond `agents` whose hosts look like DC/OS
        2.x, with Calico already shipped (the framework must leave them alone).
        `strict`: DC/OS Enterprise strict mode: HTTPS with a CA made at start-up
        (`ca_bundle`), the IAM's login endpoint (`login_endpoint`, tokens valid
        `token_lifetime` seconds), and every scheduler call needs `Authorization: token=…`
        whose uid is the framework's principal (`register_service_account`).
        `allocation_seed`: makes the allocator's agent shuffle (and so which of a framework's
        roles gets an agent's unreserved resources) reproducible.
        `agent_network`: the /24 whose .1, .2, … the agents get (`agent.agent_ip`), or
        "free" for a random one whose agents' etcd-proxy port is free now
        (`agent.free_agent_network`): what `calico-dcos local` and `devcluster` use, so that
        two runs on one machine, or a run and the tests, do not collide.
        `synthetic_step` (synthetic executor): seconds from launch to STARTING and again to
        RUNNING (`SyntheticExecutor.step`; its default when None); `synthetic_durations`:
        task name -> seconds from RUNNING to FINISHED for one-shot tasks (`calico-docker`…).
        `offer_timeout`: seconds before an offer neither accepted nor declined is rescinded
        (Mesos' `--offer_timeout`; None, as Mesos' default, never)."""
        if executor not in ("process", "synthetic"):
            raise ValueError(f"executor must be 'process' or 'synthetic', not {executor!r}")
        check_durations(
            positive={"allocation_interval": allocation_interval,
                      "heartbeat_interval": heartbeat_interval,
                      "status_retry_interval": status_retry_interval,
                      "token_lifetime": token_lifetime, "offer_timeout": offer_timeout},
            at_least_zero={"agent_restart_delay": agent_restart_delay,
                           "agent_ping_timeout": agent_ping_timeout,
                           "master_recovery_seconds": master_recovery_seconds,
                           "agent_reregister_window": agent_reregister_window,
                           "synthetic_step": synthetic_step},
        )  # fmt: skip
        self.initial_agents = (agents, public_agents, dcos_calico_agents)
        self.port = port
        self.executor_kind = executor
        self.synthetic_durations = synthetic_durations
        self.synthetic_step = synthetic_step
        self.zk = zk
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="devcluster-"))
        self.master = Master(
            self.workdir, host, allocation_interval, heartbeat_interval, agent_restart_delay,
            docker_version, offer_timeout, credentials, status_retry_interval, allocation_seed,
            agent_ping_timeout, master_recovery_seconds, agent_reregister_window,
        )  # fmt: skip
        if agent_network == "free":
            agent_network = free_agent_network(agents + public_agents + dcos_calico_agents)
        self.master.agent_network = agent_network
        self.pki = Pki.create(self.workdir / "pki") if strict else None
        if self.pki:
            self.master.iam = Iam(token_lifetime)
            self.master.ca_bundle = self.pki.ca_bundle
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="devcluster", daemon=True
        )
        self._ports: list[MasterPort] = []
        self._allocation: asyncio.Task | None = None
        self._leader: LeaderRecord | None = None
        self._agent_endpoints: AgentEndpoints | None = None

    # Life cycle -----------------------------------------------------------------------------

    def start(self) -> DevCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        if self.zk:
            self._leader = LeaderRecord(self.zk)
            self._leader.start()
        self._run(self._start())
        if self._leader:
            self._leader.publish(self.call(self.master.master_info))
        return self

    async def _start(self) -> None:
        self.master.executor = self._make_executor()
        sandbox_for = getattr(self.master.executor, "sandbox_for", None)
        if sandbox_for is not None:  # agents with sandboxes serve them, as Mesos agents do
            tls = self.pki.context_for if self.pki else None
            self._agent_endpoints = AgentEndpoints(self.master, sandbox_for, tls)
            self.master.open_agent_endpoint = self._agent_endpoints.open
        self.master.port = await self._serve(self.port)
        self._allocation = asyncio.get_running_loop().create_task(self.master.allocator.run())
        agents, public_agents, dcos_calico_agents = self.initial_agents
        for public in [False] * agents + [True] * public_agents:
            self.master.add_agent(public=public)
        for _ in range(dcos_calico_agents):
            self.master.add_agent(dcos_calico=True)

    def _make_executor(self) -> Executor:
        if self.executor_kind == "synthetic":
            if self.synthetic_step is None:
                return SyntheticExecutor(self.synthetic_durations)
            return SyntheticExecutor(self.synthetic_durations, self.synthetic_step)
        from calico_dcos.devcluster.process_executor import ProcessExecutor
        from calico_dcos.devcluster.standins import STANDINS_DIR

        return ProcessExecutor(self.workdir, STANDINS_DIR)

    async def _serve(self, port: int) -> int:
        port_cell = [0]
        app = make_app(self.master, port_cell, self._failover_over_http)
        if self.master.iam is not None:
            self.master.iam.routes(app)  # Admin Router's /acs/…, on the master's port here
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        tls = self.pki.server_context() if self.pki else None
        master_port = MasterPort(self.master, runner, port_cell)  # front.py
        await master_port.start(self.master.host, port, tls)
        self._ports.append(master_port)
        return port_cell[0]

    def stop(self) -> None:
        """Stop everything: every task process (each task's whole process group, waited
        for), the master's sockets, the loop; a workdir the caller gave is left in place."""
        if not self._thread.is_alive():
            return
        try:
            if self._leader:
                self._leader.stop()
            self._run(self._stop())
        finally:
            kill_everything = getattr(self.master.executor, "kill_everything", None)
            if kill_everything is not None:
                kill_everything()  # anything _stop() left (a stuck loop, a timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def _stop(self) -> None:
        if self._allocation:
            self._allocation.cancel()
        for framework in list(self.master.frameworks.values()):
            if framework.subscription:
                framework.subscription.close()
        shutdown = getattr(self.master.executor, "shutdown", None)
        if shutdown:
            await shutdown()
        for master_port in self._ports:
            await master_port.close()
        if self._agent_endpoints is not None:
            await self._agent_endpoints.close()
        await cancel_the_rest()

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Thread-safe access ---------------------------------------------------------------------

    def _run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the master's loop and return its result."""

        async def run() -> T:
            return fn(*args, **kwargs)

        return self._run(run())

    @property
    def master_url(self) -> str:
        return f"{self.master.host}:{self.master.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.pki else 'http'}://{self.master_url}"

    @property
    def ca_bundle(self) -> Path | None:
        """Strict mode: the CA bundle that vouches for the master's certificate."""
        return self.pki.ca_bundle if self.pki else None

    @property
    def login_endpoint(self) -> str:
        """Strict mode: the IAM's service login URL."""
        return f"{self.base_url}{LOGIN_PATH}"

    def create_service_account(self, uid: str) -> dict:
        """Strict mode: a new service account and its credential (see `Iam`)."""
        if self.master.iam is None:
            raise RuntimeError("service accounts exist only in strict mode (strict=True)")
        return self.master.iam.create_service_account(uid, self.login_endpoint)

    def register_service_account(self, uid: str, public_key_pem: bytes) -> None:
        """Strict mode: `dcos security org service-accounts create -p <key> <uid>`."""
        if self.master.iam is None:
            raise RuntimeError("service accounts exist only in strict mode (strict=True)")
        self.master.iam.register(uid, public_key_pem)

    def iam_unavailable(self, status: int = 503) -> None:
        """Strict mode, fault: every login is answered `status` until `iam_available`."""
        if self.master.iam is None:
            raise RuntimeError("there is an IAM only in strict mode (strict=True)")
        self.master.iam.become_unavailable(status)

    def iam_available(self) -> None:
        """Strict mode: the `iam_unavailable` fault is lifted."""
        if self.master.iam is not None:
            self.master.iam.become_available()

    @property
    def agents(self) -> list[AgentInfo]:
        return self.call(lambda: [a.info() for a in self.master.agents.values() if not a.removed])

    def add_agent(self, public: bool = False, **kw: Any) -> AgentInfo:
        """A new agent; keywords of `Master.add_agent` (`dcos_calico=True`, `cpus`, …)."""
        return self.call(lambda: self.master.add_agent(public=public, **kw).info())

    def restart_agent(self, agent_id: str) -> None:
        self.call(self.master.restart_agent, agent_id)

    def remove_agent(self, agent_id: str) -> None:
        self.call(self.master.remove_agent, agent_id)

    def lose_next_kill(self, name_regex: str) -> None:
        """Fault: the next KILL of a task whose name matches is accepted, never delivered."""
        self.call(self.master.task_faults.lose_next_kill, name_regex)

    def hold_next_task(self, name_regex: str) -> None:
        """Fault: the next launched task whose name matches stays STAGING until killed."""
        self.call(self.master.task_faults.hold_next_task, name_regex)

    def set_agent_attributes(self, agent_id: str, attributes: dict[str, str]) -> None:
        """The agent restarts under the same ID with these TEXT attributes (DC/OS agents
        may gain attributes when restarted with a changed `MESOS_ATTRIBUTES`)."""

        def change() -> None:
            agent = self.master.agents[agent_id]
            agent.attributes = [
                {"name": k, "type": "TEXT", "text": {"value": v}} for k, v in attributes.items()
            ]
            self.master.restart_agent(agent_id)

        self.call(change)

    def fail_next_task(self, name_regex: str, message: str = "") -> None:
        self.call(self.master.fail_next_task, name_regex, message)

    def deny_view_framework(self) -> None:
        """Fault: `GET_FRAMEWORKS` lists no framework, as for a principal without
        VIEW_FRAMEWORK (`Master.deny_view_framework`)."""
        self.call(self.master.deny_view_framework)

    def deny_view_flags(self) -> None:
        """Fault: `GET_FLAGS` is refused 403, as for a principal without VIEW_FLAGS
        (`Master.deny_view_flags`)."""
        self.call(self.master.deny_view_flags)

    def lift_denial(self, action: str) -> None:
        """`deny_view_flags` (action "VIEW_FLAGS") or `deny_view_framework`
        ("VIEW_FRAMEWORK") no longer holds: grants decide again (`Master.lift_denial`)."""
        self.call(self.master.lift_denial, action)

    def grant(self, principal: str | None, actions: Iterable[str]) -> None:
        """From now on `principal` (a service account's uid in strict mode; None: requests
        without a principal) may take exactly `actions` of `authorizer.ACTIONS`
        (REGISTER_FRAMEWORK, RUN_TASK, VIEW_FRAMEWORK, VIEW_FLAGS, ACCESS_SANDBOX) and no
        other; a principal never granted anything may take every one (`authorizer.py`).
        ValueError naming an unknown action."""
        self.call(self.master.authorizer.grant, principal, tuple(actions))

    def refuse_next_call(self, call_type: str, status: int = 400, message: str = "") -> None:
        """The next call of `call_type` is answered `status` and `message`, with no effect."""
        self.call(self.master.refuse_next_call, call_type, status, message)

    def disconnect_framework(self, framework_id: str) -> None:
        self.call(self.master.disconnect_framework, framework_id)

    def silence_framework(self, framework_id: str) -> None:
        self.call(self.master.silence_framework, framework_id)

    def partition_agent(self, agent_id: str) -> None:
        """Cut the agent off the network (`Master.partition_agent`); `heal_agent` ends it."""
        self.call(self.master.partition_agent, agent_id)

    def heal_agent(self, agent_id: str) -> None:
        self.call(self.master.heal_agent, agent_id)

    def reregister_agent_now(self, agent_id: str) -> None:
        """After `failover_master`: this agent's re-registration arrives now."""
        self.call(self.master.reregister_agent_now, agent_id)

    def failover_master(self, old_master: str = "redirect") -> str:
        """A new leading master on a new port. `old_master="redirect"`: the old port answers
        307 to the new one (a master that lost the election). `"gone"`: the old port closes
        (the old master died), so only the ZooKeeper record leads schedulers to the new one."""
        if old_master not in ("redirect", "gone"):
            raise ValueError(f"old_master must be 'redirect' or 'gone', not {old_master!r}")
        return self._run(self._failover(old_master == "gone"))

    async def _failover_over_http(self, old_gone: bool) -> str:
        """`POST /devcluster/failover`: as `failover_master`, but an old port that goes away
        closes after this request has had its answer."""
        return await self._failover(old_gone, close_later=True)

    async def _failover(self, old_gone: bool, close_later: bool = False) -> str:
        """A new leader (`Master.new_leader`: it knows no framework and no task until they
        come back) on a new port."""
        master = self.master
        master.new_leader()
        old_ports = list(self._ports)
        master.port = await self._serve(0)
        master.record("master_failover", message=f"new leader at {self.master_url}")
        if self._leader:
            await asyncio.get_running_loop().run_in_executor(
                None, self._leader.publish, master.master_info()
            )
        if old_gone:
            for master_port in old_ports:
                self._ports.remove(master_port)
            if close_later:
                master.spawn(self._close(old_ports))
            else:
                await self._close(old_ports)
        return self.master_url

    @staticmethod
    async def _close(ports: list[MasterPort]) -> None:
        for master_port in ports:
            await master_port.close()

    def timeline(self) -> list[dict]:
        return self.call(self.master.timeline)

    def state(self) -> dict:
        """`/master/state`, without going through HTTP."""
        return self.call(master_state, self.master)

    def allocator_stats(self) -> dict:
        return self.call(self.master.allocator.stats)
