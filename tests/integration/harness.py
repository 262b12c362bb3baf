"""The real scheduler (pymesos over loopback sockets) against a DevCluster.

Assertions read the devcluster's timeline (what Mesos really saw), not the scheduler's view.
Intervals are short so that every test finishes in seconds.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from threading import Thread

from calico_dcos.artifacts import build_cni_standins
from calico_dcos.mesos import TERMINAL_STATES
from calico_dcos.options import load_options
from calico_dcos.service import Service, start_service
from tests.helpers.agent_python import find_oldest_agent_python
from tests.helpers.devcluster import running_cluster, wait_until

TIMINGS = {
    "wait_refuse_seconds": 0.5,
    "revive_interval_seconds": 0.2,
    "reconcile_backoff_seconds": 0.5,
    "kill_retry_seconds": 0.5,
}
RESTARTING = ("calico-docker", "calico-cni")


def options_env(state_dir: Path, master_url: str, **options: str) -> dict[str, str]:
    """CALICO_* variables for fast runs on this machine, plus the test's own options."""
    env = {
        "CALICO_SERVICE_MASTER": master_url,
        "CALICO_SERVICE_STATE": str(state_dir),
        "CALICO_SERVICE_AGENT_PYTHON": find_oldest_agent_python(),  # as on DC/OS agents
        "CALICO_SERVICE_USER": getpass.getuser(),
        "CALICO_SERVICE_FAILOVER_TIMEOUT_SECONDS": "60",
        "CALICO_ROLLOUT_STABILITY_SECONDS": "0.3",
        "CALICO_ROLLOUT_RETRY_BACKOFF_SECONDS": "0.5",
        "CALICO_ETCD_RUN_PROXY": "false",
        "CALICO_NODE_HEALTH_CHECK_INTERVAL_SECONDS": "1",
        # No etcd in these tests: the network's profile is left to the CNI plugin.
        "CALICO_CALICO_DEFAULT_PROFILE_POLICY": "plugin-default",
    }
    env.update({f"CALICO_{k.upper()}": str(v) for k, v in options.items()})
    return env


def start_scheduler(
    cluster,
    workdir: Path,
    heartbeat_timeout=75.0,
    timings: dict[str, float] | None = None,
    clock: Callable[[], float] | None = None,
    refusal_timeout: float | None = None,
    tick_seconds: float = 0.1,
    **options: str,
) -> Service:
    """A scheduler on `workdir/state`: a second one on the same workdir shares its state.
    `timings` override the plan's (`PlanConfig`), `clock` is the wall clock it is given,
    `tick_seconds` its periodic timer's."""
    env = options_env(workdir / "state", cluster.master_url, **options)
    extra = {"clock": clock} if clock is not None else {}
    if refusal_timeout is not None:
        extra["refusal_timeout"] = refusal_timeout
    return start_service(
        load_options(None, env),
        host="127.0.0.1",
        port=0,
        artifacts_dir=workdir / "artifacts",
        timings=TIMINGS | (timings or {}),
        tick_seconds=tick_seconds,
        heartbeat_timeout=heartbeat_timeout,
        **extra,
    )


@contextlib.contextmanager
def scheduler_on(cluster, workdir: Path, **kwargs) -> Iterator[Service]:
    service = start_scheduler(cluster, workdir, **kwargs)
    try:
        yield service
    finally:
        service.stop()


def start_waiting_scheduler(cluster, workdir: Path, into: list[Service]) -> tuple[int, Thread]:
    """A second scheduler on `workdir/state`, started on its own thread on a port free now:
    it serves its API while it waits for the leader lock another scheduler holds, and its
    `Service` lands in `into` once it leads. Returns (its API port, the thread)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = load_options(None, options_env(workdir / "state", cluster.master_url))
    thread = Thread(
        target=lambda: into.append(
            start_service(
                options,
                host="127.0.0.1",
                port=port,
                artifacts_dir=workdir / "second",
                timings=TIMINGS,
                tick_seconds=0.1,
            )
        )
    )
    thread.start()
    return port, thread


def cni_standins(out_dir: Path) -> dict[str, str]:
    """file:// URIs of the CNI plugin stand-ins (no Calico release download in tests)."""
    paths = build_cni_standins(out_dir)
    return {
        "cni_calico_uri": paths["calico"].as_uri(),
        "cni_calico_ipam_uri": paths["calico-ipam"].as_uri(),
    }


def launches(timeline: list[dict], agent_id: str | None = None) -> list[dict]:
    return [
        e
        for e in timeline
        if e["event"] == "launch" and (agent_id is None or e.get("agent_id") == agent_id)
    ]


def steps_launched(timeline: list[dict], agent_id: str) -> list[str]:
    return [e["task_name"].removeprefix("calico-") for e in launches(timeline, agent_id)]


def most_restarting_at_once(timeline: list[dict], names: tuple[str, ...] = RESTARTING) -> int:
    """From the timeline: agents with a restarting step (`names`: task names) launched and
    not yet ended (in any terminal state: a task killed before it started ends TASK_KILLED)."""
    running: dict[str, str] = {}  # task_id -> agent_id
    most = 0
    for e in timeline:
        if e["event"] == "launch" and e.get("task_name") in names:
            running[e["task_id"]] = e["agent_id"]
        elif e["event"] == "status" and e.get("state") in TERMINAL_STATES:
            running.pop(e.get("task_id"), None)
        most = max(most, len(set(running.values())))
    return most


class _Converged:
    """`service`'s plan is complete; on a timeout, `explain()` gives the plan's summary, its
    held offers and why it refused each agent's last offer."""

    def __init__(self, service: Service) -> None:
        self.scheduler = service.scheduler

    def __call__(self) -> bool:
        return self.scheduler.plan.complete

    def explain(self) -> str:
        plan = self.scheduler.plan
        message = self.scheduler.summary().get("message", "")
        with self.scheduler.lock:
            notes = dict(plan.offer_notes)
            held = plan.held_offers
        return f"plan: {message!r}; held offers: {held}; last offer notes: {notes}"


def converged(service: Service) -> _Converged:
    return _Converged(service)


def events(timeline: list[dict], kind: str) -> list[dict]:
    return [e for e in timeline if e["event"] == kind]


def launch_counts(timeline: list[dict]) -> dict[tuple[str, str], int]:
    """(agent_id, task name) -> launches: more than one means a step ran twice."""
    counts: dict[tuple[str, str], int] = {}
    for e in launches(timeline):
        key = (e["agent_id"], e["task_name"])
        counts[key] = counts.get(key, 0) + 1
    return counts


__all__ = ["running_cluster", "wait_until"]
