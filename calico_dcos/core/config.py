"""What a plan decides by: its steps (`StepSpec`), the restart budget and its timings.

Built from the options by `calico_dcos.service.config_from_options`; the core itself never
reads options or files. Timings are short in tests and Mesos-friendly in `run`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from calico_dcos.core.budget import RestartBudget
from calico_dcos.core.records import AgentView


class StepKind(StrEnum):
    """When a step's task counts as done."""

    DAEMON = "daemon"  # TASK_RUNNING (and healthy, if it has a health check)
    ONESHOT = "oneshot"  # TASK_FINISHED


class Restarts(StrEnum):
    """What a step's task restarts on its agent; such steps run within the restart budget."""

    DOCKER = "docker"
    AGENT = "agent"  # the Mesos agent: the task itself is cut off by the restart


@dataclass(frozen=True)
class StepSpec:
    """One step as a plan sees it (built from `steps.py` and the options).

    `cpus` and `mem` (MB) are what its task asks of an offer.
    """

    name: str
    kind: StepKind | str
    restarts: Restarts | str | None = None
    health_checked: bool = False
    enabled: bool = True
    fingerprint: str = ""
    cpus: float = 0.1
    mem: float = 64.0

    @property
    def needs(self) -> dict[str, float]:
        """The scalar resources its task asks for: {"cpus": …, "mem": …}."""
        return {"cpus": self.cpus, "mem": self.mem}

    @property
    def task_name(self) -> str:
        """The Mesos task name, as operators see it: `calico-<step>`."""
        return f"calico-{self.name}"


# spec, agent, task ID, role of the offer -> Mesos v1 TaskInfo JSON
TaskBuilder = Callable[[StepSpec, AgentView, str, str], dict]


@dataclass(frozen=True)
class PlanConfig:
    """Everything a plan decides by. Times in seconds."""

    steps: tuple[StepSpec, ...]
    build_task: TaskBuilder
    budget: RestartBudget = RestartBudget()
    retry_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 300.0
    max_host_failures: int = 3  # failures in a row the host causes, then the operator's turn
    stable_seconds: float = 60.0  # up this long, a task's next failure counts as the first
    options_digest: str = ""  # of every option: a step that gave up tries again when it changes
    wants_agent: Callable[[AgentView], bool] = lambda agent: True
    long_refuse_seconds: float = 3600.0  # agents done, or running Calico by other means
    # agents the options leave out: shorter, since an agent may gain the attributes its
    # constraints want when it restarts under the same ID, and only its offers say so
    unwanted_refuse_seconds: float = 300.0
    wait_refuse_seconds: float = 5.0  # running steps, restart slots, and every ACCEPT
    # An offer of an agent whose next step will be ready soon (its step of ours is running,
    # or it is among the next in line for a restart slot) is held, not declined, and
    # ACCEPTed the moment the step ends or a slot frees; released (DECLINE, a short filter)
    # after this long, so that a stalled agent's resources go back to other frameworks.
    # 30 s: longer than a step takes on a healthy host (a Docker restart, a download of a
    # few MB), far shorter than the launch deadline, and inside DC/OS' `--offer_timeout` of
    # 2 min (dcos/dcos gen/dcos-config.yaml, MESOS_OFFER_TIMEOUT=2mins), so the scheduler
    # gives an offer back before the master takes it (a RESCIND is handled all the same).
    # 0: never hold (`Engine.holding`).
    offer_hold_seconds: float = 30.0
    # Mesos' `--allocation_interval` (apache/mesos src/master/constants.hpp,
    # DEFAULT_ALLOCATION_INTERVAL = 1 s): resources recovered after an ACCEPT or a DECLINE
    # are offered again only at the next round. The plan holds enough slot waiters' offers
    # to keep every restart slot busy until then (`Deploy._slot_pool`). DC/OS leaves Mesos'
    # default (dcos/dcos gen/dcos-config.yaml, /etc/mesos-master sets no
    # MESOS_ALLOCATION_INTERVAL), but an operator may set it (dcos-mesos-master.service reads
    # /opt/mesosphere/etc/mesos-master-extras and /etc/mesosphere/mesos/master.env), so the
    # scheduler asks the master for it at each subscription (`GET_FLAGS`,
    # `calico_dcos.master_flags`) and hands it to the plan (`Engine.on_allocation_interval`).
    allocation_interval_seconds: float = 1.0
    revive_interval_seconds: float = 0.25  # REVIVEs coalesce within this window (`revive`)
    revive_per_agent_seconds: float = 0.0004  # each REVIVE re-offers every agent
    reconcile_backoff_seconds: float = 2.0
    reconcile_max_backoff_seconds: float = 60.0
    reconcile_max_rounds: int = 8
    implicit_reconcile_seconds: float = 600.0
    kill_retry_seconds: float = 5.0  # a KILL not confirmed is sent again, with backoff …
    kill_retry_max_seconds: float = 60.0  # … up to this
    launch_timeout_seconds: float = 600.0  # STAGING/STARTING longer than this: killed, retried
    # A task still STAGING or STARTING this long after its launch is stalled: its step says
    # how long and what it waits for, the plan is Degraded, the log says so once, and restart
    # slot waiters are not held while every slot holder is stalled. 60 s: twice a hold, far
    # longer than a launch takes on a healthy agent (an installer of a few MB fetched, a
    # process started: under a few seconds), and a tenth of the launch deadline, so that an
    # operator hears of it nine minutes before the deadline acts.
    stalled_seconds: float = 60.0
    gone_retention_seconds: float = 7 * 86400.0  # records of agents gone are kept this long

    def with_allocation_interval(self, seconds: float) -> PlanConfig:
        """This configuration with the master's `--allocation_interval` (seconds, more than
        0 and finite: ValueError otherwise, naming the value)."""
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"an allocation interval is more than 0 seconds, not {seconds!r}")
        return dataclasses.replace(self, allocation_interval_seconds=float(seconds))

    @cached_property
    def enabled_steps(self) -> tuple[StepSpec, ...]:
        return tuple(s for s in self.steps if s.enabled)

    def revive_interval(self, agents: int) -> float:
        """The coalescing window of REVIVEs (`calico_dcos.core.revive`): at least
        `revive_interval_seconds`, and longer in a big cluster: Mesos answers each with an
        offer of every agent (done ones too), which the scheduler must decline, so the agents
        offered again stay below one per `revive_per_agent_seconds` (0.4 s at 1,000 agents,
        2 s at 5,000, 20 s at 50,000)."""
        return max(self.revive_interval_seconds, agents * self.revive_per_agent_seconds)

    def kill_backoff(self, kills: int) -> float:
        """Seconds after the `kills`-th KILL of a task before it is sent again."""
        return min(self.kill_retry_max_seconds, self.kill_retry_seconds * 2 ** max(0, kills - 1))

    def backoff(self, failures: int) -> float:
        """Seconds before a retry: retry_backoff, 2·retry_backoff, 4·… up to max_backoff."""
        if failures <= 0:
            return 0.0
        return min(self.max_backoff_seconds, self.retry_backoff_seconds * 2 ** (failures - 1))


TIMINGS = frozenset(name for name in PlanConfig.__dataclass_fields__ if name.endswith("_seconds"))
