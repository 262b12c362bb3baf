"""The uninstall core: kill every task, optionally revert the hosts, then tear down and wipe.

Pure, in the style of `plan.py`: the same events in (`on_subscribed`, `on_offers`,
`on_status`, `on_tick`, …), the same decisions out (`plan.Kill`, `Launch`, `Decline`,
`Reconcile`, `Revive`, `SaveFrameworkId`), plus three of its own that the scheduler applies
after the store writes, in list order:

- `SaveMeta(key, value)`: `store.put_meta(key, value)`; the uninstall's progress, so that a
  scheduler restarted half-way goes on where it was (and the way it began).
- `Teardown()`: `driver.stop(failover=False)`: pymesos sends TEARDOWN and Mesos forgets the
  framework (and kills anything of it still running).
- `WipeState()`: `store.wipe()`: the framework ID, every agent record, the metadata.

The order is dcos-commons': kill the tasks; clean the hosts up (`--revert-hosts`: the
installer's `uninstall --docker --cni` on each agent, within the restart budget, because it
restarts Docker and the agent); deregister; then delete the state, so a crash before the
wipe finds the framework removed and only wipes.

An `Uninstall` offers the reads the API needs from a plan (`plan_view`, `summary`,
`progress`, `complete`, `agents`, `subscribed`, `config`) and the operator's commands, so
the scheduler can hold one in place of its `Plan`.
"""

from __future__ import annotations

import hashlib
import math
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from calico_dcos import plan as p
from calico_dcos.steps import INSTALLER_PATH, STEP_LABEL, AgentView

META_KEY = "uninstall"
REVERT = "revert-host"
KILL = "kill-tasks"
TEARDOWN = "teardown"
DONE = "done"
REVERT_TASK = "calico-uninstall"
DEREGISTER_PHASE = "deregister-service"


@dataclass(frozen=True)
class SaveMeta:
    key: str
    value: dict


@dataclass(frozen=True)
class Teardown:
    pass


@dataclass(frozen=True)
class WipeState:
    pass


Decision = p.Decision | SaveMeta | Teardown | WipeState
RevertBuilder = Callable[[AgentView, str, str], dict]  # agent, task ID, role -> TaskInfo


# ---------------------------------------------------------------------------------------
# The revert task


def revert_task_info(
    options: Mapping, agent: AgentView, task_id: str, role: str, artifacts_url: str
) -> dict:
    """The installer's `uninstall --docker --cni`: puts back daemon.json and the CNI files.

    It restarts Docker and the agent, like the install steps, so it runs within the restart
    budget; a relaunch after the agent restart finds nothing left to do and finishes.
    """
    python = options["service"]["agent_python"]
    argv = [python, "./installer.pyz", "uninstall", "--docker", "--cni"]
    argv += ["--stability-seconds", str(options["rollout"]["stability_seconds"])]
    if agent.public:
        argv.append("--public")
    resources = {"cpus": options["cni"]["cpus"], "mem": options["cni"]["mem"]}
    return {
        "name": REVERT_TASK,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent.agent_id},
        "resources": [
            {"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": role}
            | {"allocation_info": {"role": role}}
            for name, value in resources.items()
        ],
        "labels": {"labels": [{"key": STEP_LABEL, "value": "uninstall"}]},
        "command": {
            "shell": True,
            "value": "exec " + " ".join(shlex.quote(arg) for arg in argv),
            "uris": [{"value": artifacts_url.rstrip("/") + INSTALLER_PATH, "executable": False}],
        },
    }


def revert_fingerprint(options: Mapping) -> str:
    """Names the revert task's options in its task ID, as the steps' fingerprints do."""
    text = f"{options['service']['agent_python']}|{options['rollout']['stability_seconds']}"
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# State


@dataclass
class Doomed:
    """A task of the framework that must end before the framework goes."""

    agent_id: str
    state: str | None
    kill_sent_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.state in p.ENDED


@dataclass
class UninstallConfig:
    plan: p.PlanConfig  # budget, backoff and offer timings, as the deploy plan uses them
    revert_hosts: bool
    build_revert: RevertBuilder
    fingerprint: str = ""
    cpus: float = 0.1
    mem: float = 64.0


@dataclass
class Progress:
    """The part that is stored (`SaveMeta`): the stage and each host's revert task."""

    stage: str = KILL  # KILL -> REVERT -> TEARDOWN -> DONE
    reverts: dict[str, p.StepState] = field(default_factory=dict)

    def to_record(self, revert_hosts: bool) -> dict:
        return {
            "revert_hosts": revert_hosts,
            "stage": self.stage,
            "reverts": {
                aid: {k: getattr(st, k) for k in p.STEP_FIELDS} for aid, st in self.reverts.items()
            },
        }

    @classmethod
    def from_record(cls, record: Mapping) -> Progress:
        reverts = {
            aid: p.StepState(**{k: v for k, v in doc.items() if k in p.STEP_FIELDS})
            for aid, doc in record.get("reverts", {}).items()
        }
        return cls(record.get("stage", KILL), reverts)


def touched_host(agent: p.AgentState) -> bool:
    """Only hosts where the Docker or CNI step ever ran have something to put back."""
    return agent.calico_present is None and any(
        agent.steps.get(name) is not None and agent.steps[name].attempts > 0
        for name in ("docker", "cni")
    )


# ---------------------------------------------------------------------------------------
# The uninstall


class Uninstall:
    """Not thread-safe: the caller serialises, as for `Plan`."""

    def __init__(
        self,
        config: UninstallConfig,
        records: Mapping[str, Mapping] = (),
        framework_id: str | None = None,
        progress: Mapping | None = None,
    ) -> None:
        if progress is not None:
            config.revert_hosts = bool(progress.get("revert_hosts", config.revert_hosts))
        self.uconfig = config
        self.config = config.plan
        self.framework_id = framework_id
        self.subscribed = False
        self.interrupted = False
        self.agents = {
            aid: p.agent_from_record({"agent_id": aid, **rec}) for aid, rec in dict(records).items()
        }
        self.doomed: dict[str, Doomed] = {
            st.task_id: Doomed(agent.agent_id, st.state)
            for agent in self.agents.values()
            for st in agent.steps.values()
            if st.live
        }
        self.progress = Progress.from_record(progress) if progress else Progress()
        if config.revert_hosts and not progress:
            self.progress.reverts = {
                aid: p.StepState() for aid, a in self.agents.items() if touched_host(a)
            }
        self._settle_at = float("inf")
        self._revive = p.Reviver()
        self._wait = (0.0, -math.inf)  # the latest short decline's filter: since, until

    # -- reads ---------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return self.progress.stage == DONE

    @property
    def budget(self) -> int:
        return p.restart_budget(self.config.restart_budget, len(self.progress.reverts))

    def reverting(self) -> list[str]:
        """Agents whose revert task is launched and not finished: they hold restart slots."""
        return sorted(aid for aid, st in self.progress.reverts.items() if st.live)

    def revert_done(self, st: p.StepState) -> bool:
        return st.state == "TASK_FINISHED" or st.forced is not None

    def progress_counts(self) -> tuple[int, int, int, int]:
        """(tasks killed, tasks to kill, hosts reverted, hosts to revert)."""
        killed = sum(1 for d in self.doomed.values() if d.ended)
        reverted = sum(1 for st in self.progress.reverts.values() if self.revert_done(st))
        return killed, len(self.doomed), reverted, len(self.progress.reverts)

    # -- events --------------------------------------------------------------------------

    def on_subscribed(self, framework_id: str, now: float) -> list[Decision]:
        """Hear of every task Mesos knows (implicit reconciliation), and kill ours."""
        out: list[Decision] = []
        self.subscribed = True
        if framework_id != self.framework_id:
            self.framework_id = framework_id
            out.append(p.SaveFrameworkId(framework_id))
        out.append(p.Reconcile(()))
        self._settle_at = now + self.config.reconcile_backoff_seconds  # time for answers
        self._kill_all(now, out)
        self._advance(now, out)
        return out

    def on_disconnected(self) -> None:
        self.subscribed = False

    def on_framework_removed(self) -> list[Decision]:
        """Mesos has removed the framework: its tasks are gone. After a teardown, that is
        the end; before it, the hosts can still be reverted by a framework registered anew."""
        self.subscribed = False
        self.framework_id = None
        for doomed in self.doomed.values():
            doomed.state = doomed.state if doomed.ended else "TASK_GONE"
        out: list[Decision] = [p.SaveFrameworkId(None)]
        if self.progress.stage in (TEARDOWN, DONE):
            self.progress.stage = DONE
            out.append(WipeState())
        return out

    def on_rescind(self, offer_id: str) -> list[Decision]:
        return []

    def on_report(self, agent_id: str, report: Mapping, now: float) -> list[Decision]:
        return []

    def on_agent_lost(self, agent_id: str, now: float) -> list[Decision]:
        """A gone agent's tasks are gone with it, and its host cannot be reverted."""
        out: list[Decision] = []
        for doomed in self.doomed.values():
            if doomed.agent_id == agent_id and not doomed.ended:
                doomed.state = "TASK_GONE"
        st = self.progress.reverts.get(agent_id)
        if st is not None and not self.revert_done(st):
            st.forced, st.message = "agent gone", "the agent left the cluster: not reverted"
            st.state = "TASK_GONE" if st.live else st.state
            self._save(out)
        self._advance(now, out)
        return out

    def on_status(self, status: Mapping, now: float) -> list[Decision]:
        out: list[Decision] = []
        task_id, state = status["task_id"]["value"], status["state"]
        agent_id = status.get("agent_id", {}).get("value", "")
        revert = self._revert_of(task_id)
        if revert is not None:
            self._revert_update(revert, status, now, out)
        elif task_id in self.doomed:
            self.doomed[task_id].state = state
        elif state not in p.ENDED:
            self.doomed[task_id] = Doomed(agent_id, state)
            self._kill(task_id, now, out)
        self._advance(now, out)
        return out

    def on_tick(self, now: float) -> list[Decision]:
        """Kill again what has not ended (kills are best effort), move on when due."""
        out: list[Decision] = []
        if not self.subscribed:
            return out
        if self.progress.stage == KILL:
            self._kill_all(now, out)
        self._advance(now, out)
        self._revive_if_due(now, out)
        return out

    def on_offers(self, offers: Iterable[Mapping], now: float) -> list[Decision]:
        return p.answer_offers(
            offers, lambda offer, launched, out: self._use_offer(offer, now, launched, out)
        )

    # -- operator commands ---------------------------------------------------------------

    def interrupt(self, agent_id: str | None, now: float) -> list[Decision]:
        """No new revert launches (on one agent, or anywhere) until continued."""
        return self._set_interrupted(agent_id, True, now)

    def proceed(self, agent_id: str | None, now: float) -> list[Decision]:
        return self._set_interrupted(agent_id, False, now)

    def restart(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Revert the host again (a failed or force-completed revert). Its ended task is
        forgotten, so that the step is neither live nor done; a live one is left to end."""
        st = self._revert(agent_id, step)
        if not st.live:
            st.task_id, st.state, st.forced, st.failures, st.retry_at = None, None, None, 0, 0.0
        agent = self.agents[agent_id]
        self._revive.want(agent.filtered_until, agent.filtered_since)
        out: list[Decision] = []
        self._save(out)
        self._revive_if_due(now, out)
        return out

    def force_complete(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Count a host as reverted (an operator cleaned it by hand)."""
        st = self._revert(agent_id, step)
        st.forced, st.message = "operator", "force-completed by an operator"
        out: list[Decision] = []
        self._save(out)
        self._advance(now, out)
        return out

    def _set_interrupted(self, agent_id: str | None, value: bool, now: float) -> list[Decision]:
        if agent_id is None:
            self.interrupted = value
        else:
            self._known(agent_id).interrupted = value
        if not value:
            self._revive.want(math.inf)
        out: list[Decision] = []
        self._revive_if_due(now, out)
        return out

    def _known(self, agent_id: str) -> p.AgentState:
        if agent_id not in self.agents:
            raise KeyError(f"unknown agent {agent_id}")
        return self.agents[agent_id]

    def _revert(self, agent_id: str, step: str) -> p.StepState:
        self._known(agent_id)
        if step != REVERT or agent_id not in self.progress.reverts:
            raise KeyError(f"unknown step {step} (this uninstall has {REVERT} steps only)")
        return self.progress.reverts[agent_id]

    # -- killing -------------------------------------------------------------------------

    def _kill_all(self, now: float, out: list[Decision]) -> None:
        """Kill what has not ended; ask again about tasks killed before and still not ended
        (the master answers for a task it does not know, which a kill alone may not)."""
        again = []
        for task_id, doomed in self.doomed.items():
            if doomed.ended:
                continue
            if doomed.kill_sent_at is None:
                self._kill(task_id, now, out)
            elif now - doomed.kill_sent_at >= self.config.reconcile_backoff_seconds:
                again.append((task_id, doomed.agent_id))
                self._kill(task_id, now, out)
        if again:
            out.append(p.Reconcile(tuple(again)))

    def _kill(self, task_id: str, now: float, out: list[Decision]) -> None:
        doomed = self.doomed[task_id]
        doomed.kill_sent_at = now
        out.append(p.Kill(task_id, doomed.agent_id))

    # -- reverting -----------------------------------------------------------------------

    def _revert_of(self, task_id: str) -> str | None:
        parsed = p.parse_task_id(task_id)
        if parsed is None or parsed[0] != "uninstall":
            return None
        st = self.progress.reverts.get(parsed[1])
        return parsed[1] if st is not None and st.task_id == task_id else None

    def _revert_update(self, agent_id: str, status: Mapping, now: float, out: list) -> None:
        st = self.progress.reverts[agent_id]
        state = status["state"]
        if state == st.state:
            return
        st.state, st.updated = state, now
        st.message = status.get("message", "") or st.message
        if state in p.ENDED and state != "TASK_FINISHED":
            self._revert_ended(st, status, now)
        if state in p.ENDED:
            self._slot_freed(agent_id, st, now)
        self._save(out)

    def _slot_freed(self, agent_id: str, st: p.StepState, now: float) -> None:
        """A revert ended: agents declined while they waited get offers again, and so
        does this one if it must run again before its filter ends."""
        since, until = self._wait
        self._revive.want(until, since)
        agent = self.agents[agent_id]
        due = max(now, st.retry_at) + p.REVIVE_WORTH_SECONDS
        if not self.revert_done(st) and agent.filtered_until > due:
            self._revive.want(agent.filtered_until, agent.filtered_since)

    def _revert_ended(self, st: p.StepState, status: Mapping, now: float) -> None:
        """Cut off by the agent restart it caused: relaunch at once; otherwise back off."""
        if status.get("reason") in p.AGENT_RESTART_REASONS or st.state in p.VANISHED:
            st.cutoffs += 1
            return
        st.failures += 1
        delay = p.backoff(
            st.failures, self.config.retry_backoff_seconds, self.config.max_backoff_seconds
        )
        st.retry_at = now + delay

    def _use_offer(
        self, offer: Mapping, now: float, launched: set[str], out: list[Decision]
    ) -> float | None:
        aid = offer["agent_id"]["value"]
        st = self.progress.reverts.get(aid)
        if st is None or self.revert_done(st):
            return self.config.long_refuse_seconds
        if self.progress.stage != REVERT or aid in launched or not self._may_launch(aid, st, now):
            return self._refuse_briefly(aid, now)
        if not self._fits(offer):
            return self._refuse_briefly(aid, now)
        launched.add(aid)
        self._launch(aid, st, offer, now, out)
        return None

    def _refuse_briefly(self, aid: str, now: float) -> float:
        """An agent with a revert to come: remember its filter, to REVIVE when a slot frees."""
        seconds = self.config.wait_refuse_seconds
        agent = self.agents[aid]
        agent.filtered_since, agent.filtered_until = self._wait = (now, now + seconds)
        return seconds

    def _fits(self, offer: Mapping) -> bool:
        have = p.offer_scalars(offer)
        return have.get("cpus", 0.0) >= self.uconfig.cpus and have.get("mem", 0.0) >= (
            self.uconfig.mem
        )

    def _may_launch(self, aid: str, st: p.StepState, now: float) -> bool:
        agent = self.agents[aid]
        if st.live or st.retry_at > now or self.interrupted or agent.interrupted:
            return False
        return len(self.reverting()) < self.budget

    def _launch(self, aid: str, st: p.StepState, offer: Mapping, now: float, out: list) -> None:
        st.attempts += 1
        st.task_id = p.task_id_for("uninstall", aid, self.uconfig.fingerprint, st.attempts)
        st.state, st.message, st.updated, st.retry_at = "TASK_STAGING", "", now, 0.0
        agent = self.agents[aid]
        task = self.uconfig.build_revert(agent.view, st.task_id, p.offer_role(offer))
        refuse = self.config.wait_refuse_seconds
        agent.filtered_since, agent.filtered_until = now, now + refuse
        self._save(out)
        out.append(p.Launch(offer["id"]["value"], aid, task, refuse))

    # -- stages --------------------------------------------------------------------------

    def _advance(self, now: float, out: list[Decision]) -> None:
        """KILL -> REVERT -> TEARDOWN (Teardown, then WipeState) -> DONE."""
        if self.progress.stage == KILL and self._all_killed(now):
            self.progress.stage = REVERT if self.progress.reverts else TEARDOWN
            if self.progress.reverts:
                self._revive.want(math.inf)
            self._save(out)
        if self.progress.stage == REVERT and all(
            self.revert_done(st) for st in self.progress.reverts.values()
        ):
            self.progress.stage = TEARDOWN
            self._save(out)
        if self.progress.stage == TEARDOWN and self.subscribed:
            self.progress.stage = DONE
            self.subscribed = False
            out += [Teardown(), WipeState()]
        self._revive_if_due(now, out)

    def _all_killed(self, now: float) -> bool:
        return (
            self.subscribed
            and now >= self._settle_at
            and all(d.ended for d in self.doomed.values())
        )

    def _save(self, out: list[Decision]) -> None:
        out.append(SaveMeta(META_KEY, self.progress.to_record(self.uconfig.revert_hosts)))

    def _revive_if_due(self, now: float, out: list[Decision]) -> None:
        interval = self.config.revive_interval(len(self.agents))
        out.extend(self._revive.due(now, interval))

    # -- views for people ----------------------------------------------------------------

    def plan_view(self, now: float) -> dict:
        """The uninstall as the plan: a phase per agent (kill, revert), then deregister."""
        agents = sorted(
            {d.agent_id for d in self.doomed.values()} | set(self.progress.reverts),
            key=lambda aid: (self._hostname(aid), aid),
        )
        phases = [self._agent_phase(aid, now) for aid in agents]
        phases.append(self._deregister_phase())
        errors = [
            f"{ph['name']}: {s['name']}: {s['message']}"
            for ph in phases
            for s in ph["steps"]
            if s["status"] == "ERROR"
        ]
        statuses = [ph["status"] for ph in phases]
        return {
            "phases": phases,
            "strategy": "serial",
            "errors": errors,
            "status": p.combine(statuses, self.interrupted),
        }

    def _hostname(self, aid: str) -> str:
        agent = self.agents.get(aid)
        return agent.hostname if agent is not None and agent.hostname else aid

    def _agent_phase(self, aid: str, now: float) -> dict:
        steps = [self._kill_step(aid)]
        if aid in self.progress.reverts:
            steps.append(self._revert_step(aid, now))
        return {
            "id": aid,
            "name": self._hostname(aid),
            "strategy": "serial",
            "status": p.combine([s["status"] for s in steps], False),
            "steps": steps,
        }

    def _kill_step(self, aid: str) -> dict:
        mine = {t: d for t, d in self.doomed.items() if d.agent_id == aid}
        left = sorted(t.split("__", 1)[0] for t, d in mine.items() if not d.ended)
        if not left:
            status, message = "COMPLETE", f"{len(mine)} tasks ended"
        else:
            sent = any(d.kill_sent_at is not None for d in mine.values() if not d.ended)
            status = "STARTING" if sent else "PENDING"
            message = "killing " + ", ".join(left)
        return {"id": f"{aid}:{KILL}", "name": KILL, "status": status, "message": message}

    def _revert_step(self, aid: str, now: float) -> dict:
        st = self.progress.reverts[aid]
        status, message = self._revert_status(aid, st, now)
        return {"id": st.task_id or f"{aid}:{REVERT}", "name": REVERT} | {
            "status": status,
            "message": message,
        }

    def _revert_status(self, aid: str, st: p.StepState, now: float) -> tuple[str, str]:
        if self.revert_done(st):
            return "COMPLETE", st.message
        if st.live:
            early = st.state in ("TASK_STAGING", "TASK_STARTING")
            return ("STARTING" if early else "STARTED"), st.message
        if st.retry_at > now:
            return "DELAYED", f"failed {st.failures} times: {st.message}; retry in " + (
                f"{st.retry_at - now:.0f}s"
            )
        if self.progress.stage == KILL:
            return "PENDING", "after every task has ended"
        if self.interrupted or self.agents[aid].interrupted:
            return "WAITING", "interrupted by an operator"
        if len(self.reverting()) >= self.budget:
            return "WAITING", f"waiting for a restart slot ({self.budget} at a time)"
        return "PREPARED", "waiting for an offer"

    def _deregister_phase(self) -> dict:
        done = self.complete
        status = "COMPLETE" if done else "PENDING"
        steps = [
            {"id": "teardown", "name": "teardown", "status": status,
             "message": "framework removed from Mesos" if done else "after the hosts"},
            {"id": "wipe-state", "name": "wipe-state", "status": status,
             "message": "state deleted" if done else "after the teardown"},
        ]  # fmt: skip
        return {
            "id": DEREGISTER_PHASE,
            "name": DEREGISTER_PHASE,
            "strategy": "serial",
            "status": status,
            "steps": steps,
        }

    def summary(self, now: float) -> dict:
        killed, doomed, reverted, reverts = self.progress_counts()
        message = f"Uninstalling: {killed} of {doomed} tasks killed"
        if self.uconfig.revert_hosts:
            message += f"; {reverted} of {reverts} hosts reverted"
        if self.complete:
            message = "Uninstalled: the framework is torn down and its state deleted"
        problems = sorted(
            f"{self._hostname(aid)}: {REVERT} failed {st.failures} times: {st.message}"
            for aid, st in self.progress.reverts.items()
            if st.failures >= p.DEGRADED_FAILURES and not self.revert_done(st)
        )
        return {
            "available": self.complete,
            "progressing": not self.complete,
            "degraded": bool(problems),
            "message": message,
            "problems": problems,
            "restarting": self.reverting(),
            "budget": self.budget,
            "interrupted": self.interrupted,
        }


def uninstall_from_options(
    options: Mapping,
    artifacts_url: str,
    revert_hosts: bool,
    records: Mapping[str, Mapping],
    framework_id: str | None,
    progress: Mapping | None,
    **timings: float,
) -> Uninstall:
    """An uninstall with the deploy plan's budget and timings, and the installer's revert."""

    def build(agent: AgentView, task_id: str, role: str) -> dict:
        return revert_task_info(options, agent, task_id, role, artifacts_url)

    config = UninstallConfig(
        plan=p.config_from_options(options, artifacts_url, **timings),
        revert_hosts=revert_hosts,
        build_revert=build,
        fingerprint=revert_fingerprint(options),
        cpus=options["cni"]["cpus"],
        mem=options["cni"]["mem"],
    )
    return Uninstall(config, records, framework_id, progress)
