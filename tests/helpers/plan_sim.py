"""The one simulator of the plans for the core's unit tests: a tiny in-memory Mesos, no server.

It stands in for the master and agents only where the decision core is concerned: offers go
in, decisions come out and are applied (records kept, launches and kills noted, reconciliation
answered as the master would), and tasks move STAGING → RUNNING (→ FINISHED for one-shots)
one round at a time, so that tests can watch the order of launches, the restart budget and
the retries round by round. The clock moves only when told.

`Sim(...)` runs the deploy plan; `Sim.uninstalling(...)` the uninstall plan over the records
a finished rollout leaves (`converged_records`).
"""

from __future__ import annotations

import itertools

from calico_dcos import plans
from calico_dcos.core import events as ev
from calico_dcos.core.deploy import META_KEY as DEPLOY_META_KEY
from calico_dcos.core.deploy import Deploy
from calico_dcos.core.records import task_id_for
from calico_dcos.mesos import TERMINAL_STATES
from calico_dcos.options import load_options

FAST = {
    "wait_refuse_seconds": 1.0,
    "revive_interval_seconds": 1.0,
    "reconcile_backoff_seconds": 1.0,
    "kill_retry_seconds": 2.5,  # longer than a round of the simulated cluster
}
CHAIN = ("etcd-proxy", "docker", "cni", "libnetwork", "node")
RESTARTING = ("docker", "cni")
DAEMONS = ("etcd-proxy", "libnetwork", "node")
ARTIFACTS = "http://scheduler:8080"


def options(**env: str):
    """Options from `section_key=value` pairs, as the environment would give them; the cni
    step restarts the agent (as on Mesos < 1.2), so that the restart budget is exercised by
    both restarting steps."""
    env = {"cni_restart_agent": "true", **env}
    return load_options(None, {f"CALICO_{k.upper()}": v for k, v in env.items()})


def offer(offer_id: str, agent_id: str, hostname: str, role: str = "*", cpus=4.0, mem=4096.0):
    """A Mesos v1 Offer of `cpus` and `mem` (MB) allocated to `role`."""

    def scalar(name, value):
        return {
            "name": name,
            "type": "SCALAR",
            "scalar": {"value": value},
            "role": role,
            "allocation_info": {"role": role},
        }

    return {
        "id": {"value": offer_id},
        "agent_id": {"value": agent_id},
        "hostname": hostname,
        "allocation_info": {"role": role},
        "resources": [scalar("cpus", cpus), scalar("mem", mem)],
    }


def status(task_id: str, state: str, agent_id: str = "", **extra) -> dict:
    """A Mesos v1 TaskStatus (`reason`, `message`, `healthy` … as keyword arguments)."""
    body = {"task_id": {"value": task_id}, "state": state} | extra
    if agent_id:
        body["agent_id"] = {"value": agent_id}
    return body


def converged_records(agents: int = 3, public: int = 1) -> dict[str, dict]:
    """What a finished rollout leaves in the store: daemons RUNNING, one-shots FINISHED."""
    records = {}
    for i in range(agents):
        aid = f"S{i}"
        steps = {}
        for step in CHAIN:
            state = "TASK_RUNNING" if step in DAEMONS else "TASK_FINISHED"
            task_id = task_id_for(step, aid, "f" * 64, 1)
            steps[step] = {"task_id": task_id, "state": state, "attempts": 1, "fingerprint": "f"}
        public_agent = i >= agents - public
        hostname = f"public-agent-{i}" if public_agent else f"agent-{i}"
        records[aid] = {"agent_id": aid, "hostname": hostname, "public": public_agent} | {
            "steps": steps
        }
    return records


class Sim:
    """Agents `S0…`, the last `public` of them public; tasks advance one state per round."""

    def __init__(
        self, agents=3, public=1, records=None, framework_id=None, timings=None, meta=None, **env
    ):
        self.env = env
        self.timings = FAST | (timings or {})
        self.options = options(**env)
        meta = meta or {}
        self.core = Deploy(
            self.config(self.options), records or {}, framework_id, meta.get(DEPLOY_META_KEY)
        )
        self.meta: dict[str, dict] = dict(meta)  # what SaveMeta stored: key -> document
        self.now = 1000.0
        self.agents = {f"S{i}": i >= agents - public for i in range(agents)}
        self.hostnames = {aid: f"agent-{aid}" for aid in self.agents}
        self.tasks: dict[str, dict] = {}
        self.launches: list[tuple[float, str, str]] = []  # (now, agent_id, step)
        self.kills: list[str] = []
        self.revives: list[float] = []  # when each REVIVE was sent
        self.decisions: list = []
        self.records: dict[str, dict] = {}
        self.framework_ids: list = []
        self.max_restarting = 0
        self.answers_reconciliation = True
        self._ids = itertools.count()

    @classmethod
    def uninstalling(cls, revert_hosts=False, records=None, progress=None, **env) -> Sim:
        """The uninstall of framework `fw-1` over `records` (a converged rollout's, 3 agents
        with 1 public, by default), resumed from `progress` if given."""
        sim = cls(agents=0, public=0, **env)
        records = converged_records() if records is None else records
        sim.core = plans.uninstall_from_options(
            sim.options, ARTIFACTS, revert_hosts, records, "fw-1", progress, **sim.timings
        )
        sim.records = records
        sim.agents = {aid: bool(rec.get("public")) for aid, rec in records.items()}
        sim.hostnames = {aid: rec.get("hostname", aid) for aid, rec in records.items()}
        sim.answers_reconciliation = False  # the uninstall tests answer (or not) themselves
        return sim

    def config(self, options):
        return plans.config_from_options(options, ARTIFACTS, **self.timings)

    # -- feeding events ----------------------------------------------------------------

    def apply(self, decisions: list) -> list:
        """Keep the decisions and act on them as the scheduler and the master would."""
        self.decisions.extend(decisions)
        for d in decisions:
            if isinstance(d, ev.SaveAgent):
                self.records[d.agent_id] = d.record
            elif isinstance(d, ev.SaveFrameworkId):
                self.framework_ids.append(d.framework_id)
            elif isinstance(d, ev.SaveMeta):
                self.meta[d.key] = d.value
            elif isinstance(d, ev.Launch):
                step = d.task_info["name"].removeprefix("calico-")
                tid = d.task_info["task_id"]["value"]
                self.tasks[tid] = {"agent": d.agent_id, "step": step, "state": "TASK_STAGING"}
                self.launches.append((self.now, d.agent_id, step))
            elif isinstance(d, ev.Kill):
                self.kills.append(d.task_id)
            elif isinstance(d, ev.Revive):
                self.revives.append(self.now)
            elif isinstance(d, ev.Reconcile) and self.answers_reconciliation:
                self.reconcile(d)
        self.max_restarting = max(self.max_restarting, self.restarting_now())
        return decisions

    def subscribe(self, framework_id="fw-1") -> list:
        return self.apply(self.core.on_subscribed(framework_id, self.now))

    def offer(self, *agent_ids: str, **resources: float) -> list:
        """One offer from each agent (every agent by default) in one batch."""
        offers = [self.offer_for(a, **resources) for a in (agent_ids or self.agents)]
        return self.apply(self.core.on_offers(offers, self.now))

    def offer_for(self, agent_id: str, **resources: float) -> dict:
        role = "slave_public" if self.agents.get(agent_id) else "*"
        hostname = self.hostnames.get(agent_id, agent_id)
        return offer(f"o{next(self._ids)}", agent_id, hostname, role, **resources)

    def master_says(
        self, agent_id: str, task_ids: list[str], state: str, reason: str, message: str
    ) -> None:
        """What the master itself sends (SOURCE_MASTER) for tasks of one agent, e.g. when it
        marks the agent unreachable or gone; the simulated tasks are left as they are, since
        the agent may still run them."""
        for task_id in task_ids:
            body = status(
                task_id, state, agent_id, source="SOURCE_MASTER", reason=reason, message=message
            )
            self.apply(self.core.on_status(body, self.now))

    def update(self, task_id: str, state: str, agent_id: str = "", **extra) -> list:
        """A status update of a task (its agent as launched, unless given)."""
        task = self.tasks.get(task_id)
        if task is not None:
            task["state"] = state
        agent = agent_id or (task["agent"] if task else "")
        return self.apply(self.core.on_status(status(task_id, state, agent, **extra), self.now))

    def reconcile(self, call: ev.Reconcile) -> None:
        """Answer as the master does: latest state, TASK_LOST for a task it does not know."""
        asked = [t for t, _ in call.tasks] or [
            t for t, task in self.tasks.items() if task["state"] not in TERMINAL_STATES
        ]
        for task_id in asked:
            task = self.tasks.get(task_id, {"state": "TASK_LOST", "agent": ""})
            answer = status(task_id, task["state"], task["agent"], reason="REASON_RECONCILIATION")
            self.apply(self.core.on_status(answer, self.now))

    def change_options(self, **env: str) -> list:
        """The operator changes some options; the others stay as they were."""
        self.env = self.env | env
        self.options = options(**self.env)
        return self.apply(self.core.on_options(self.config(self.options), self.now))

    def tick(self, seconds: float = 1.0) -> list:
        self.now += seconds
        return self.apply(self.core.on_tick(self.now))

    def kill_everything(self) -> None:
        """Answer every kill sent so far with TASK_KILLED, then let the core settle."""
        for kill in self.of(ev.Kill):
            self.update(kill.task_id, "TASK_KILLED", kill.agent_id)
        self.tick(3.0)

    # -- the simulated cluster -----------------------------------------------------------

    def advance(self) -> None:
        """Every live task moves one state on: STAGING → RUNNING (healthy) → FINISHED."""
        for tid, task in list(self.tasks.items()):
            if task["state"] == "TASK_STAGING":
                self.update(tid, "TASK_RUNNING", healthy=True)
            elif task["state"] == "TASK_RUNNING" and task["step"] in RESTARTING:
                self.update(tid, "TASK_FINISHED")
            elif tid in self.kills and task["state"] == "TASK_RUNNING":
                self.update(tid, "TASK_KILLED")

    def restarting_now(self) -> int:
        """Agents with a restarting step launched and not finished: the budget's measure."""
        return len(
            {
                t["agent"]
                for t in self.tasks.values()
                if t["step"] in RESTARTING and t["state"] in ("TASK_STAGING", "TASK_RUNNING")
            }
        )

    def converge(self, rounds: int = 60) -> int:
        """Offer, advance and tick until the plan is complete; the rounds it took."""
        for n in range(rounds):
            self.offer()
            if self.core.complete:
                return n
            self.advance()
            self.tick()
        raise AssertionError(f"not converged: {self.core.summary(self.now)}")

    def steps_launched(self, agent_id: str) -> list[str]:
        return [step for _, a, step in self.launches if a == agent_id]

    def live_task(self, agent_id: str, step: str) -> str:
        return self.core.agents[agent_id].steps[step].task_id

    def of(self, kind: type) -> list:
        return [d for d in self.decisions if isinstance(d, kind)]


# Only the two steps holding and restart slots are about: fewer updates per agent.
ONLY_PROXY_AND_DOCKER = {
    "cni_enable": "false",
    "libnetwork_enable": "false",
    "node_enable": "false",
}


def subscribed(agents: int, timings: dict | None = None, **env) -> Sim:
    """Private agents, subscribed and reconciled, the subscription's own REVIVE long past and
    its decisions cleared."""
    sim = Sim(agents=agents, public=0, timings=timings, **env)
    sim.subscribe()
    sim.tick(3)
    sim.decisions.clear()
    return sim
