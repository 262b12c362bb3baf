"""A tiny in-memory Mesos for the plan's unit tests: offers in, decisions applied, no server.

It stands in for the master and agents only where the decision core is concerned: tasks move
STAGING → RUNNING (→ FINISHED for one-shots) one round at a time, so that tests can watch
the order of launches, the restart budget and the retries round by round.
"""

from __future__ import annotations

import itertools

from calico_dcos import plans
from calico_dcos.core import events as ev
from calico_dcos.core.deploy import Deploy
from calico_dcos.mesos import TERMINAL_STATES
from calico_dcos.options import load_options

FAST = {
    "wait_refuse_seconds": 1.0,
    "revive_interval_seconds": 1.0,
    "reconcile_backoff_seconds": 1.0,
}
CHAIN = ("etcd-proxy", "docker", "cni", "libnetwork", "node")
RESTARTING = ("docker", "cni")


def options(**env: str):
    return load_options(None, {f"CALICO_{k.upper()}": v for k, v in env.items()})


def offer(offer_id: str, agent_id: str, hostname: str, role: str = "*", cpus=4.0, mem=4096.0):
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
    body = {"task_id": {"value": task_id}, "state": state} | extra
    if agent_id:
        body["agent_id"] = {"value": agent_id}
    return body


class Sim:
    """Agents `S0…`, the last `public` of them public; tasks advance one state per round."""

    def __init__(self, agents=3, public=1, records=None, framework_id=None, timings=None, **env):
        self.env = env
        self.timings = FAST | (timings or {})
        self.options = options(**env)
        self.plan = Deploy(self.config(self.options), records or {}, framework_id)
        self.now = 1000.0
        self.agents = {f"S{i}": i >= agents - public for i in range(agents)}
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

    def config(self, options):
        return plans.config_from_options(options, "http://scheduler:8080", **self.timings)

    # -- feeding events ----------------------------------------------------------------

    def apply(self, decisions: list) -> list:
        self.decisions.extend(decisions)
        for d in decisions:
            if isinstance(d, ev.SaveAgent):
                self.records[d.agent_id] = d.record
            elif isinstance(d, ev.SaveFrameworkId):
                self.framework_ids.append(d.framework_id)
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
        return self.apply(self.plan.on_subscribed(framework_id, self.now))

    def offer(self, *agent_ids: str) -> list:
        offers = [self.offer_for(a) for a in (agent_ids or self.agents)]
        return self.apply(self.plan.on_offers(offers, self.now))

    def offer_for(self, agent_id: str) -> dict:
        role = "slave_public" if self.agents[agent_id] else "*"
        return offer(f"o{next(self._ids)}", agent_id, f"agent-{agent_id}", role)

    def update(self, task_id: str, state: str, **extra) -> list:
        task = self.tasks.get(task_id)
        if task is not None:
            task["state"] = state
        agent = task["agent"] if task else ""
        return self.apply(self.plan.on_status(status(task_id, state, agent, **extra), self.now))

    def reconcile(self, call: ev.Reconcile) -> None:
        """Answer as the master does: latest state, TASK_LOST for a task it does not know."""
        asked = [t for t, _ in call.tasks] or [
            t for t, task in self.tasks.items() if task["state"] not in TERMINAL_STATES
        ]
        for task_id in asked:
            task = self.tasks.get(task_id, {"state": "TASK_LOST", "agent": ""})
            answer = status(task_id, task["state"], task["agent"], reason="REASON_RECONCILIATION")
            self.apply(self.plan.on_status(answer, self.now))

    def change_options(self, **env: str) -> list:
        """The operator changes some options; the others stay as they were."""
        self.env = self.env | env
        self.options = options(**self.env)
        return self.apply(self.plan.on_options(self.config(self.options), self.now))

    def tick(self, seconds: float = 1.0) -> list:
        self.now += seconds
        return self.apply(self.plan.on_tick(self.now))

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
            if self.plan.complete:
                return n
            self.advance()
            self.tick()
        raise AssertionError(f"not converged: {self.plan.summary(self.now)}")

    def steps_launched(self, agent_id: str) -> list[str]:
        return [step for _, a, step in self.launches if a == agent_id]

    def live_task(self, agent_id: str, step: str) -> str:
        return self.plan.agents[agent_id].steps[step].task_id

    def of(self, kind: type) -> list:
        return [d for d in self.decisions if isinstance(d, kind)]
