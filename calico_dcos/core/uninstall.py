"""The uninstall plan: kill every task, optionally revert the hosts, then tear down and wipe.

Another plan on the same engine as the deploy (`engine.Engine`): the same events in, the same
decisions out, plus three of its own that the scheduler applies after the store writes, in
list order:

- `SaveMeta(key, value)`: `store.put_meta(key, value)`; the uninstall's stage and whether it
  reverts the hosts, so that a scheduler restarted half-way goes on where it was (and the way
  it began). Each host's revert task is stored in its agent's record (`SaveAgent`, field
  `REVERT_FIELD`), in the same group commit: no stored document grows with the cluster
  (ZooKeeper refuses a znode over jute.maxbuffer, 1 MB by default; the previous layout, one
  meta document listing every host's revert at ~425 bytes each, broke above ~2,350 hosts).
  `legacy_migration` moves a state written by that layout to this one.
- `Teardown()`: `driver.stop(failover=False)`: pymesos sends TEARDOWN and Mesos forgets the
  framework (and kills anything of it still running).
- `WipeState()`: `store.wipe()`: the framework ID, every agent record, the metadata.

The order is dcos-commons' (sdk/scheduler/src/main/java/com/mesosphere/sdk/scheduler/
uninstall/UninstallPlanFactory.java): kill the tasks; clean the hosts up (`--revert-hosts`:
the installer's `uninstall --docker --cni` on each agent, a one-shot step that restarts
Docker and the agent, so it runs within the restart budget); deregister; then delete the
state, so a crash before the wipe finds the framework removed and only wipes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from calico_dcos.core.config import PlanConfig, StepSpec
from calico_dcos.core.engine import Engine
from calico_dcos.core.events import (
    ENDED,
    Decision,
    Kill,
    Note,
    Reconcile,
    SaveAgent,
    SaveFrameworkId,
    SaveMeta,
    Teardown,
    WipeState,
    in_calls,
)
from calico_dcos.core.records import (
    AgentState,
    StepState,
    agent_from_record,
    parse_task_id,
    step_from_record,
    step_record,
)
from calico_dcos.core.revive import OPERATOR as REVIVE_FOR_OPERATOR
from calico_dcos.core.views import (
    DEGRADED_FAILURES,
    INTERRUPTED,
    failed_line,
    forced_words,
    offer_words,
    phase_doc,
    plan_doc,
    slot_words,
    step_doc,
    summary_doc,
    task_words,
)

META_KEY = "uninstall"
REVERT_FIELD = "revert"  # an agent record's revert task (`step_record`), this layout
LEGACY_REVERTS = "reverts"  # the previous layout's meta field: {agent_id: step record}
REVERT = "revert-host"
KILL = "kill-tasks"
TEARDOWN = "teardown"
DONE = "done"
REVERT_STEP = "uninstall"  # the revert task's step in its task ID: calico-uninstall__…
DEREGISTER_PHASE = "deregister-service"
GONE = "agent gone"  # a revert's `forced` when its agent left the cluster
OPERATOR = "operator"  # a revert's `forced` when an operator force-completed it
MAX_NAMED = 20  # hosts named in the summary's message; the plan's phases name every one


@dataclass
class Doomed:
    """A task of the framework that must end before the framework goes."""

    agent_id: str
    state: str | None
    kill_sent_at: float | None = None
    kills: int = 0  # KILLs sent (a KILL may be lost: sent again with backoff)

    @property
    def ended(self) -> bool:
        """Mesos said it ended (or it is gone with its agent or framework)."""
        return self.state in ENDED


@dataclass
class Progress:
    """The uninstall's progress: the stage, stored as the meta document (`SaveMeta`), and
    each host's revert task, stored in its agent's record (`REVERT_FIELD`)."""

    stage: str = KILL  # KILL -> REVERT -> TEARDOWN -> DONE
    reverts: dict[str, StepState] = field(default_factory=dict)

    def to_record(self, revert_hosts: bool) -> dict:
        """The stored meta document, `{"revert_hosts": bool, "stage": str}`: a few dozen
        bytes at any cluster size (the reverts are in the agents' records)."""
        return {"revert_hosts": revert_hosts, "stage": self.stage}


def migrated(
    records: Mapping[str, Mapping], progress: Mapping | None
) -> tuple[dict[str, dict], dict | None]:
    """(records, meta document) in this layout, from a state in this one or the previous.

    The previous layout (every version before this one) kept every host's revert task in the
    meta document (`LEGACY_REVERTS`: {agent_id: step record}); here each goes into its
    agent's record as `REVERT_FIELD` (an agent with no record gets a record of its own).
    Anything else is returned as it came (copied).
    """
    records = {aid: dict(rec) for aid, rec in records.items()}
    if not progress or LEGACY_REVERTS not in progress:
        return records, None if progress is None else dict(progress)
    for aid, doc in dict(progress[LEGACY_REVERTS]).items():
        records[aid] = {**records.get(aid, {"agent_id": aid}), REVERT_FIELD: dict(doc)}
    meta = {k: v for k, v in progress.items() if k != LEGACY_REVERTS}
    return records, meta


def legacy_migration(
    records: Mapping[str, Mapping], progress: Mapping | None
) -> list[tuple[str, str, dict]]:
    """The store writes (`StateStore.put_many`'s shape) that move a previous layout's state
    to this one; [] when it is in this layout already.

    Every agent record first, the meta document last: `put_many` writes in list order (a
    ZooKeeper group too large for one transaction is split in order), so a crash half-way
    leaves the old meta document, still complete, and it is migrated again on the next start.
    """
    if not progress or LEGACY_REVERTS not in progress:
        return []
    new_records, meta = migrated(records, progress)
    return [("agent", aid, new_records[aid]) for aid in sorted(progress[LEGACY_REVERTS])] + [
        ("meta", META_KEY, meta or {})
    ]


def touched_host(agent: AgentState) -> bool:
    """Only hosts where the Docker or CNI step ever ran have something to put back."""
    return agent.calico_present is None and any(
        agent.steps.get(name) is not None and agent.steps[name].attempts > 0
        for name in ("docker", "cni")
    )


def revert_done(st: StepState) -> bool:
    """Reverted (the task FINISHED), or counted so (an operator, or the agent is gone)."""
    return st.state == "TASK_FINISHED" or st.forced is not None


class Uninstall(Engine):
    """`config.steps` is the one revert step (`REVERT_STEP`, built by `config.build_task`).
    Not thread-safe: the caller serialises, as for `Deploy`."""

    def __init__(
        self,
        config: PlanConfig,
        revert_hosts: bool,
        records: Mapping[str, Mapping] = (),
        framework_id: str | None = None,
        progress: Mapping | None = None,
    ) -> None:
        super().__init__(config, framework_id)
        records, progress = migrated(records or {}, progress)
        if progress is not None:
            revert_hosts = bool(progress.get("revert_hosts", revert_hosts))
        self.revert_hosts = revert_hosts
        self.spec: StepSpec = config.steps[0]
        self._records = records  # as stored: what a revert's `SaveAgent` writes back
        self.agents = {
            aid: agent_from_record({"agent_id": aid, **rec}) for aid, rec in records.items()
        }
        self.doomed: dict[str, Doomed] = {}
        self._doomed_on: dict[str, list[str]] = {}  # agent_id -> its doomed task IDs
        for agent in self.agents.values():
            for st in agent.steps.values():
                if st.live:
                    self._doom(st.task_id, agent.agent_id, st.state)
        self.progress = Progress(progress.get("stage", KILL)) if progress else Progress()
        if revert_hosts:  # the hosts are those the start chose: the records did not change
            self.progress.reverts = {
                aid: step_from_record(rec[REVERT_FIELD]) if REVERT_FIELD in rec else StepState()
                for aid, rec in sorted(records.items())
                if REVERT_FIELD in rec or touched_host(self.agents[aid])
            }
        for aid, st in self.progress.reverts.items():
            if self.agents[aid].lost:
                self._gone(aid, st)  # stored as gone: no offer of it will ever come
            self.slots.sync(aid, st.live)
            self._track(aid, REVERT_STEP, st, 0.0)
        self._settle_at = math.inf

    # -- reads ---------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Torn down and wiped."""
        return self.progress.stage == DONE

    def restart_limit_agents(self) -> int:
        """A percentage budget counts the hosts to revert."""
        return len(self.progress.reverts)

    def reverting(self) -> list[str]:
        """Agents whose revert task is launched and not ended: they hold restart slots."""
        return sorted(self.slots.holders)

    def progress_counts(self) -> tuple[int, int, int, int]:
        """(tasks killed, tasks to kill, hosts reverted, hosts to revert)."""
        killed = sum(1 for d in self.doomed.values() if d.ended)
        reverted = sum(1 for st in self.progress.reverts.values() if revert_done(st))
        return killed, len(self.doomed), reverted, len(self.progress.reverts)

    # -- events --------------------------------------------------------------------------

    def _start(self, now: float, out: list[Decision]) -> None:
        """Hear of every task Mesos knows (implicit reconciliation), and kill ours."""
        out.append(Reconcile(()))
        self._settle_at = now + self.config.reconcile_backoff_seconds  # time for answers
        self._kill_all(now, out)
        self._advance(now, out)

    def on_framework_removed(self) -> list[Decision]:
        """Mesos has removed the framework: its tasks are gone. After a teardown, that is
        the end; before it, the hosts can still be reverted by a framework registered anew."""
        self.subscribed = False
        self.framework_id = None
        self._phases.clear()
        for doomed in self.doomed.values():
            doomed.state = doomed.state if doomed.ended else "TASK_GONE"
        out: list[Decision] = [SaveFrameworkId(None)]
        if self.progress.stage in (TEARDOWN, DONE):
            self.progress.stage = DONE
            out.append(WipeState())
        return out

    def on_report(self, agent_id: str, report: Mapping, now: float) -> list[Decision]:
        """A revert's failure report gives its failure words; other reports change nothing."""
        if report.get("failed"):
            return self._failure_report(agent_id, report, now)
        if report.get("warning"):
            return self._warning_report(agent_id, report, now)
        return []

    def on_options(self, config: PlanConfig, now: float) -> list[Decision]:
        """Options do not change an uninstall under way."""
        return []

    def on_agent_lost(self, agent_id: str, now: float) -> list[Decision]:
        """A gone agent's tasks are gone with it, and its host cannot be reverted."""
        out: list[Decision] = []
        self._dirty(agent_id)
        for task_id in self._doomed_on.get(agent_id, ()):
            doomed = self.doomed[task_id]
            if not doomed.ended:
                doomed.state = "TASK_GONE"
        st = self.progress.reverts.get(agent_id)
        if st is not None and not revert_done(st):
            self._gone(agent_id, st)
            self._sync_slot(agent_id, False)
            self._save(out, agent_id)
        self._advance(now, out)
        return out

    @staticmethod
    def _gone(agent_id: str, st: StepState) -> None:
        """The agent left the cluster: its host counts as done, not reverted, and says so."""
        st.forced, st.message = GONE, "the agent left the cluster: not reverted"
        st.state = "TASK_GONE" if st.live else st.state

    def not_reverted(self) -> list[str]:
        """Hostnames (else agent IDs) of the hosts left as they were because their agent went."""
        return sorted(
            self._hostname(aid) for aid, st in self.progress.reverts.items() if st.forced == GONE
        )

    def on_status(self, status: Mapping, now: float) -> list[Decision]:
        """A revert task's update, a doomed task's end, or a task of ours not known yet
        (killed at once)."""
        out: list[Decision] = []
        task_id, state = status["task_id"]["value"], status["state"]
        agent_id = status.get("agent_id", {}).get("value", "")
        revert = self._revert_of(task_id)
        if revert is not None:
            self._dirty(revert)
            self._revert_update(revert, status, now, out)
        elif task_id in self.doomed:
            self.doomed[task_id].state = state
            self._dirty(self.doomed[task_id].agent_id)
        elif state not in ENDED:
            self._doom(task_id, agent_id, state)
            self._kill_doomed(task_id, now, out)
        self._advance(now, out)
        return out

    def on_tick(self, now: float) -> list[Decision]:
        """Kill again what has not ended (kills are best effort), move on when due."""
        out: list[Decision] = []
        if not self.subscribed:
            return out
        if self.progress.stage == KILL:
            self._kill_all(now, out)
        self._resend_kills(now, out)
        self._check_deadlines(now, out)
        self._check_stable(now, out)
        self._advance(now, out)
        self._revive_if_due(now, out)
        return out

    # -- operator commands ---------------------------------------------------------------

    def restart(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Revert the host again (a failed or force-completed revert). Its ended task is
        forgotten, so that the step is neither live nor done; a live one is left to end."""
        st = self._revert(agent_id, step)
        self._dirty(agent_id)
        if st.live:
            words = (
                f"its task {st.task_id} ({st.state}) is still live and is left to end "
                "(stopping a revert half-way could leave the host broken); restart it again "
                "then if it failed"
            )
        else:
            st.task_id, st.state, st.forced, st.failures, st.retry_at = None, None, None, 0, 0.0
            words = "reverted again, within the restart budget"
        agent = self.agents[agent_id]
        self._revive.want(agent.filtered_until, agent.filtered_after, REVIVE_FOR_OPERATOR)
        out: list[Decision] = []
        self._save(out, agent_id)
        out.append(Note(f"{self._hostname(agent_id)}: {REVERT} restarted by an operator: {words}"))
        self._revive_if_due(now, out)
        return out

    def force_complete(self, agent_id: str, step: str, now: float) -> list[Decision]:
        """Count a host as reverted (an operator cleaned it by hand): not one whose revert
        finished, or one force-completed already (nothing changes: the step is not marked
        forced, its task did run); one whose agent is gone may be (the operator cleaned it)."""
        st = self._revert(agent_id, step)
        if st.state == "TASK_FINISHED" or st.forced == OPERATOR:
            done = "force-completed already" if st.forced == OPERATOR else "done already"
            how = "" if st.forced == OPERATOR else " (host reverted)"
            name = self._hostname(agent_id)
            return [Note(f"{name}: {REVERT} was {done}{how}: nothing changed")]
        self._dirty(agent_id)
        st.forced, st.message = OPERATOR, "force-completed by an operator"
        out: list[Decision] = []
        self._save(out, agent_id)
        live = f"; its task {st.task_id} ({st.state}) is left to end" if st.live else ""
        words = f"{self._hostname(agent_id)}: {REVERT} force-completed by an operator: counted "
        out.append(Note(f"{words}as reverted{live}"))
        self._advance(now, out)
        return out

    def _set_interrupted(self, agent_id: str | None, value: bool, now: float) -> list[Decision]:
        if agent_id is None:
            self.interrupted = value
        else:
            self._known(agent_id).interrupted = value
            self._dirty(agent_id)
        if not value:
            self._revive.want(math.inf, reason=REVIVE_FOR_OPERATOR)
        out: list[Decision] = []
        self._revive_if_due(now, out)
        return out

    def _revert(self, agent_id: str, step: str) -> StepState:
        self._known(agent_id)
        if step != REVERT or agent_id not in self.progress.reverts:
            raise KeyError(f"unknown step {step} (this uninstall has {REVERT} steps only)")
        return self.progress.reverts[agent_id]

    # -- killing -------------------------------------------------------------------------

    def _doom(self, task_id: str, agent_id: str, state: str | None) -> None:
        self._dirty(agent_id)
        self.doomed[task_id] = Doomed(agent_id, state)
        self._doomed_on.setdefault(agent_id, []).append(task_id)

    def _kill_all(self, now: float, out: list[Decision]) -> None:
        """Kill what has not ended; again with backoff (`kill_backoff`) what is still not
        ended, asking about it too (the master answers for a task it does not know, which a
        kill alone may not)."""
        again = []
        for task_id, doomed in self.doomed.items():
            if doomed.ended:
                continue
            if doomed.kill_sent_at is None:
                self._kill_doomed(task_id, now, out)
            elif now - doomed.kill_sent_at >= self.config.kill_backoff(doomed.kills):
                again.append((task_id, doomed.agent_id))
                self._kill_doomed(task_id, now, out)
        out.extend(Reconcile(tasks) for tasks in in_calls(again))

    def _kill_doomed(self, task_id: str, now: float, out: list[Decision]) -> None:
        doomed = self.doomed[task_id]
        doomed.kill_sent_at, doomed.kills = now, doomed.kills + 1
        self._dirty(doomed.agent_id)
        out.append(Kill(task_id, doomed.agent_id))

    # -- reverting -----------------------------------------------------------------------

    def _revert_of(self, task_id: str) -> str | None:
        parsed = parse_task_id(task_id)
        if parsed is None or parsed[0] != REVERT_STEP:
            return None
        st = self.progress.reverts.get(parsed[1])
        return parsed[1] if st is not None and st.task_id == task_id else None

    def _revert_update(self, agent_id: str, status: Mapping, now: float, out: list) -> None:
        st = self.progress.reverts[agent_id]
        if not self._update(self.spec, st, status, now):
            return
        self._ask_for_output(agent_id, st, status, out)
        if st.state in ENDED:
            self._sync_slot(agent_id, False)
            if not revert_done(st):  # it runs again: bring its agent's offers back
                self._want_offers(self.agents[agent_id], max(now, st.retry_at))
        self._save(out, agent_id)

    def _use_offer(
        self, offer: Mapping, now: float, launched: set[str], out: list[Decision]
    ) -> float | None:
        aid = offer["agent_id"]["value"]
        st = self.progress.reverts.get(aid)
        if st is None or revert_done(st):
            return self.config.long_refuse_seconds
        self._dirty(aid)  # its offer may be explained, or launch
        agent = self.agents[aid]
        short = self.config.wait_refuse_seconds
        if self.progress.stage != REVERT or aid in launched or not self._may_launch(agent, st, now):
            return self._refuse(agent, short, now)
        if not self._fits(agent, self.spec, offer, out):
            return self._refuse(agent, short, now)
        if not self._slot_free(aid):
            return self._refuse_for_slot(agent, now)
        self._admit(aid)
        launched.add(aid)
        self._launch(agent, st, self.spec, offer, now, out)
        return None

    def _may_launch(self, agent: AgentState, st: StepState, now: float) -> bool:
        return not (st.live or st.retry_at > now or self.interrupted or agent.interrupted)

    def _save_launch(self, agent: AgentState, out: list[Decision]) -> None:
        self._save(out, agent.agent_id)

    def _step_state(self, agent_id: str, step: str) -> StepState | None:
        return self.progress.reverts.get(agent_id)

    def _spec_of(self, step: str) -> StepSpec | None:
        return self.spec if step == REVERT_STEP else None

    def _saved(self, agent_id: str, now: float, out: list[Decision]) -> None:
        self._save(out, agent_id)

    # -- stages --------------------------------------------------------------------------

    def _advance(self, now: float, out: list[Decision]) -> None:
        """KILL -> REVERT -> TEARDOWN (Teardown, then WipeState) -> DONE."""
        if self.progress.stage == KILL and self._all_killed(now):
            self.progress.stage = REVERT if self.progress.reverts else TEARDOWN
            if self.progress.reverts:
                self._revive.want(math.inf)
            self._save(out)
        if self.progress.stage == REVERT and all(
            revert_done(st) for st in self.progress.reverts.values()
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

    def _save(self, out: list[Decision], agent_id: str | None = None) -> None:
        """The agent's record with its revert task (when given), then the meta document.

        The meta document (a few dozen bytes) goes with every save, so that a restart always
        finds `revert_hosts` as the uninstall began, whatever was saved first."""
        if agent_id is not None:
            record = {
                **self._records.get(agent_id, {"agent_id": agent_id}),
                REVERT_FIELD: step_record(self.progress.reverts[agent_id]),
            }
            self._records[agent_id] = record
            out.append(SaveAgent(agent_id, record))
        out.append(SaveMeta(META_KEY, self.progress.to_record(self.revert_hosts)))

    # -- views for people ----------------------------------------------------------------

    def plan_view(self, now: float) -> dict:
        """The uninstall as the plan: a phase per agent (kill, revert), then deregister.
        O(agents + tasks) at most; an agent's phase is built again only after it changed."""
        kept = self._phase_cache(
            (self.progress.stage, self.interrupted, self._slot_free(""), self.budget)
        )
        named = [(self._hostname(a), a) for a in set(self._doomed_on) | set(self.progress.reverts)]
        named.sort()
        phases = [kept.get(aid) or self._agent_phase(aid, name, now) for name, aid in named]
        phases.append(self._deregister_phase())
        return plan_doc(phases, "serial", self.interrupted)

    def _hostname(self, aid: str) -> str:
        agent = self.agents.get(aid)
        return agent.name if agent is not None else aid

    def _agent_phase(self, aid: str, name: str, now: float) -> dict:
        steps = [self._kill_step(aid)]
        st = self.progress.reverts.get(aid)
        if st is not None:
            status, message = self._revert_status(aid, st, now)
            by_operator = status == "COMPLETE" and st.forced == OPERATOR
            step_id = st.task_id or f"{aid}:{REVERT}"
            steps.append(step_doc(step_id, REVERT, status, message, by_operator))
        phase = phase_doc(aid, name, steps, False)
        if st is None or st.retry_at <= now:  # no countdown in it: keep it
            self._phases[aid] = phase
        return phase

    def _kill_step(self, aid: str) -> dict:
        mine = self._doomed_on.get(aid, ())
        left, sent = [], False
        for task_id in mine:
            doomed = self.doomed[task_id]
            if not doomed.ended:
                left.append(task_id.split("__", 1)[0])
                sent = sent or doomed.kill_sent_at is not None
        if not left:
            return step_doc(f"{aid}:{KILL}", KILL, "COMPLETE", f"{len(mine)} tasks ended")
        status = "STARTING" if sent else "PENDING"
        return step_doc(f"{aid}:{KILL}", KILL, status, "killing " + ", ".join(sorted(left)))

    def _revert_status(self, aid: str, st: StepState, now: float) -> tuple[str, str]:
        if revert_done(st):
            return "COMPLETE", st.message
        words = task_words(st, now)
        if words is not None:
            return words
        if self.progress.stage == KILL:
            return "PENDING", "after every task has ended"
        if self.interrupted or self.agents[aid].interrupted:
            return "WAITING", INTERRUPTED
        if not self._slot_free(aid):
            return slot_words(self.budget)
        return offer_words(self.offer_notes.get(aid))

    def _deregister_phase(self) -> dict:
        done = self.complete
        status = "COMPLETE" if done else "PENDING"
        steps = [
            step_doc(TEARDOWN, TEARDOWN, status,
                     "framework removed from Mesos" if done else "after the hosts"),
            step_doc("wipe-state", "wipe-state", status,
                     "state deleted" if done else "after the teardown"),
        ]  # fmt: skip
        return phase_doc(DEREGISTER_PHASE, DEREGISTER_PHASE, steps, False)

    def summary(self, now: float) -> dict:
        """Progressing until torn down; Degraded when a revert keeps failing."""
        killed, doomed, reverted, reverts = self.progress_counts()
        message = f"Uninstalling: {killed} of {doomed} tasks killed"
        if self.revert_hosts:
            message += f"; {reverted} of {reverts} hosts reverted"
        if self.complete:
            message = "Uninstalled: the framework is torn down and its state deleted"
        by_operator = sum(1 for st in self.progress.reverts.values() if st.forced == OPERATOR)
        if by_operator:
            message += f"; {forced_words(by_operator)}"
        gone = self.not_reverted()
        if gone:  # the first MAX_NAMED, so that the message stays short at any size
            named = ", ".join(gone[:MAX_NAMED])
            more = f" and {len(gone) - MAX_NAMED} more" if len(gone) > MAX_NAMED else ""
            message += f"; gone, not reverted: {named}{more}"
        problems = [
            failed_line(self._hostname(aid), REVERT, st)
            for aid, st in self.progress.reverts.items()
            if st.failures >= DEGRADED_FAILURES and not revert_done(st)
        ]
        return summary_doc(
            available=self.complete,
            progressing=not self.complete,
            message=message,
            problems=problems,
            restarting=self.slots.holders,
            budget=self.budget,
            interrupted=self.interrupted,
            forced_steps=by_operator,
        )
