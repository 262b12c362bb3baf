"""Status views for people: the plan in dcos-commons' shape (`/v1/plan`, the status page,
`calico-dcos plan show`) and the summary (Available / Progressing / Degraded).

Statuses are dcos-commons' (mesosphere/dcos-commons sdk/scheduler/src/main/java/com/mesosphere/
sdk/scheduler/plan/Status.java): ERROR, WAITING, PENDING, PREPARED, STARTING, STARTED,
COMPLETE, DELAYED, IN_PROGRESS. Everything here is O(size of what it shows).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from calico_dcos.core.records import StepState

DEGRADED_FAILURES = 3  # consecutive failures of a step that make the service Degraded
EARLY_STATES = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_KILLING"})
WAITING_FOR_OFFER = "waiting for an offer"
INTERRUPTED = "interrupted by an operator"


def combine(statuses: list[str], interrupted: bool) -> str:
    """A phase's or plan's status from its children's, as dcos-commons reports it."""
    if statuses and all(s == "COMPLETE" for s in statuses):
        return "COMPLETE"
    if "ERROR" in statuses:
        return "ERROR"
    if interrupted:
        return "WAITING"
    if any(s in ("STARTING", "STARTED", "COMPLETE", "DELAYED", "IN_PROGRESS") for s in statuses):
        return "IN_PROGRESS"
    if "WAITING" in statuses:
        return "WAITING"
    return "PENDING"


def times(n: int) -> str:
    """`once`, `twice`, `3 times`: how often something happened, in words."""
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


# Mesos' master marks an agent unreachable once it missed this many seconds of pings
# (`--agent_ping_timeout` 15 s x `--max_agent_ping_timeouts` 5: apache/mesos
# src/master/constants.hpp `DEFAULT_AGENT_PING_TIMEOUT`, `DEFAULT_MAX_AGENT_PING_TIMEOUTS`).
AGENT_UNREACHABLE_AFTER = 15.0 * 5
# A KILL unanswered, and no word of the task, for this long (one ping timeout): its agent may
# be cut off from the master (a registered agent answers a KILL within seconds).
KILL_SILENCE_SECONDS = 15.0


def kill_silence_words(st: StepState, now: float) -> str:
    """`; no word of its task for 40 s: its agent may be cut off from the master (Mesos marks
    an agent unreachable after 1 min 15 s without its pings, by default)`, for a task killed
    more than once and not heard of (`kill_since`) for `KILL_SILENCE_SECONDS`; ""
    otherwise. The master forwards a KILL to a registered agent and relays its answer
    (apache/mesos src/master/master.cpp `Master::kill`); a partitioned agent answers nothing
    until the master marks it unreachable (TASK_UNREACHABLE, the plan's "gone")."""
    silent = now - st.kill_since if st.kill_since else 0.0
    if st.kills < 2 or silent < KILL_SILENCE_SECONDS:
        return ""
    return (
        f"; no word of its task for {span(silent)}: its agent may be cut off from the master "
        f"(Mesos marks an agent unreachable after {span(AGENT_UNREACHABLE_AFTER)} without its "
        "pings, by default)"
    )


def task_words(st: StepState, now: float) -> tuple[str, str] | None:
    """The status of a step whose task is live, failed for good, or waiting to be retried;
    None when it waits for the plan (interrupt, restart slot, offer, an earlier step)."""
    if st.live:
        if st.killing and st.kills > 1:
            asked = f"KILL sent {st.kills} times, Mesos has not confirmed an end yet"
            asked += kill_silence_words(st, now)
            return "STARTING", f"{st.message}; {asked}" if st.message else asked
        if st.state in EARLY_STATES or st.killing:
            return "STARTING", st.message
        return "STARTED", st.message
    if st.state == "TASK_ERROR" or st.gave_up:
        return "ERROR", st.message
    if st.retry_at > now:
        wait = st.retry_at - now
        why = st.message or st.last_failure or "no reason was given"
        return "DELAYED", f"failed {times(st.failures)}: {why}; retry in {wait:.0f}s"
    return None


def span(seconds: float) -> str:
    """A duration as people say it: `45 s`, `2 min 10 s`, `10 min`, `1 h 5 min`."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole // 60, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


# What a task stuck before TASK_RUNNING waits for, in Mesos' words: TASK_STAGING is the
# state from the launch until the executor reports ("Initial state", apache/mesos
# include/mesos/v1/mesos.proto, `TaskState`), while the agent fetches the task's URIs "in
# preparation of running the task" (docs/fetcher.md) and starts its executor;
# TASK_STARTING: "The task is being launched by the executor" (mesos.proto).
STALL_REASONS = {
    "TASK_STAGING": "the agent has not started it (fetching its URIs, or the agent is busy)",
    "TASK_STARTING": "its executor is starting it and has not reported it running",
}


def stall_words(state: str, launched_ago: float, launch_timeout: float) -> str:
    """A stalled launch: `launched 2 min 10 s ago, still TASK_STAGING on its agent: the agent
    has not started it (…); killed and retried at 10 min (launch_timeout)`."""
    why = STALL_REASONS.get(state, "it has not reported running")
    return (
        f"launched {span(launched_ago)} ago, still {state} on its agent: {why}; "
        f"killed and retried at {span(launch_timeout)} (launch_timeout)"
    )


def slot_words(limit: int, held: bool = False, free: bool = False) -> tuple[str, str]:
    """WAITING for one of the `limit` restart slots; `held`: with an offer of its agent held
    for it, so it launches the moment one frees; `free`: one is free now, but the agent's
    offers were declined while none was, so it waits for its agent's next offer, and
    another agent waiting may take the slot first."""
    words = f"waiting for a restart slot ({limit} at a time)"
    if free:
        words += (
            ": one is free now, for the first waiting agent whose offer comes (this "
            "agent's offers were declined while none was)"
        )
    if held:
        words += "; next in line: its agent's offer is held to launch as soon as one frees"
    return "WAITING", words


def offer_words(note: str | None) -> tuple[str, str]:
    """PREPARED, with why the last offer did not fit if one did not."""
    return "PREPARED", note or WAITING_FOR_OFFER


def acknowledge_words(agent_name: str, step: str) -> str:
    """How an operator acknowledges a step's installer warning (the plan is Degraded, exit
    5, until one does): `plan force-complete` of the step, which keeps it done and the host
    as it is (`Deploy._acknowledge`)."""
    return f"`calico-dcos plan force-complete --phase {agent_name} --step {step}` acknowledges it"


def failing(name: str, step: str, st: StepState, done: bool = False) -> str | None:
    """A problem line when a step is failing NOW: it gave up (waits for the operator), ended
    in TASK_ERROR, or failed `DEGRADED_FAILURES` times in a row and is not done. A step that
    is done (a daemon that came back up, even before its count starts over) is no problem:
    Degraded says something is wrong now, as Kubernetes' conditions and dcos-commons' plan
    statuses do (ERROR only while the step has not completed); but a done step whose
    installer warned that it left something not as the options want is one, until an
    operator acknowledges the warning (`plan force-complete` of the step)."""
    if done:
        if not st.warning or st.warning_acknowledged_at:
            return None
        return f"{name}: {step} done with a warning: {st.warning}; {acknowledge_words(name, step)}"
    if st.gave_up:
        words = st.message or st.last_failure or "stopped: waits for the operator"
        return f"{name}: {step} {words}"
    if st.failures >= DEGRADED_FAILURES or st.state == "TASK_ERROR":
        return failed_line(name, step, st)
    return None


def forced(st: StepState, fingerprint: str | None) -> bool:
    """Done because an operator force-completed it (`plan force-complete`) under the options
    of `fingerprint`, not because its task did: its task may have been killed before it
    started, or never launched. Read from the record (`forced` holds the fingerprint then),
    so it survives a restart of the scheduler; a force-complete under older options is no
    longer one once the step has run again under the current ones."""
    return st.forced is not None and st.forced == fingerprint


def done_words(st: StepState, fingerprint: str | None) -> str:
    """What a done step shows: its task's last words, "force-completed" (`forced`), or the
    installer's warning (done, but not as the options want it: a value someone else set,
    left alone), and when an operator acknowledged it: `done with a warning, acknowledged by
    an operator at 2026-11-29 20:40:12 UTC: <words>`."""
    if st.warning_acknowledged_at and st.warning:
        when = utc_words(st.warning_acknowledged_at)
        return f"done with a warning, acknowledged by an operator at {when}: {st.warning}"
    if st.warning:
        return f"done with a warning: {st.warning}"
    if forced(st, fingerprint):
        return forced_step_words(st)
    return st.message


def forced_step_words(st: StepState) -> str:
    """A force-completed step's words: "force-completed" (its task may never have run: the
    page's legend says so), unless its task is known to run: one left running, or back with
    its agent after a partition (`force-completed by an operator; its task … did run and is
    still running (TASK_RUNNING)`, and whether it is being killed)."""
    if st.live and st.state == "TASK_RUNNING":
        words = f"force-completed by an operator; its task {st.task_id} did run and is still"
        words += " running"
        return words + (": being killed" if st.killing else "")
    return "force-completed"


def utc_words(at: float) -> str:
    """A time of the plan's clock (wall seconds since the epoch) as people read it, in UTC:
    `2026-11-29 20:40:12 UTC` (as the file store names a time: store/file.py)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def utc_iso(at: float) -> str:
    """The same time as programs read it (ISO 8601, RFC 3339): `2026-11-29T20:40:12Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def failed_line(name: str, step: str, st: StepState) -> str:
    """`agent-1: etcd-proxy failed 6 times: <why>`, never with an empty reason: while the step
    tries again (its task live) the words of its last failure, and what it does now."""
    if st.live:
        why = st.last_failure or "no reason was given"
        now = "starting again" if st.state in EARLY_STATES else "running again, not done yet"
        return f"{name}: {step} failed {times(st.failures)}: {why}; {now}"
    why = st.message or st.last_failure or f"its task ended {st.state or 'unknown'}"
    return f"{name}: {step} failed {times(st.failures)}: {why}"


def waiting_for_operator(agents: int) -> str:
    """What agents whose step gave up wait for (the summary's message)."""
    who = "1 agent waits" if agents == 1 else f"{agents} agents wait"
    return (
        f"{who} for the operator: a step stopped after failures caused by the host; "
        "fix the host, then `calico-dcos plan restart`, or change the options (which "
        "restarts it too)"
    )


def step_doc(
    step_id: str,
    name: str,
    status: str,
    message: str,
    forced: bool = False,
    warning: StepState | None = None,
) -> dict:
    """A dcos-commons step: `{"id", "name", "status", "message"}`, and `"forced": true` for a
    step COMPLETE only because an operator force-completed it; for a step done with the
    installer's warning (`warning`: its state, given only for a done step), `"warning":
    true`, and `"warning_acknowledged": "2026-11-29T20:40:12Z"` once an operator acknowledged
    it (`utc_iso`). dcos-commons' step has no such fields: its clients ignore them; left out
    otherwise, so that a page of 500 agents' phases does not grow by them."""
    doc = {"id": step_id, "name": name, "status": status, "message": message}
    if forced:
        doc["forced"] = True
    if warning is not None and warning.warning:
        doc["warning"] = True
        if warning.warning_acknowledged_at:
            doc["warning_acknowledged"] = utc_iso(warning.warning_acknowledged_at)
    return doc


def phase_doc(phase_id: str, name: str, steps: list[dict], interrupted: bool) -> dict:
    """A dcos-commons phase (serial), its status combined from its steps'."""
    return {
        "id": phase_id,
        "name": name,
        "strategy": "serial",
        "status": combine([s["status"] for s in steps], interrupted),
        "steps": steps,
    }


def plan_doc(phases: list[dict], strategy: str, interrupted: bool) -> dict:
    """`{"phases", "strategy", "errors", "status"}`: errors are `phase: step: message`."""
    errors = [
        f"{p['name']}: {s['name']}: {s['message']}"
        for p in phases
        if p["status"] == "ERROR"  # a phase is ERROR exactly when one of its steps is
        for s in p["steps"]
        if s["status"] == "ERROR"
    ]
    return {
        "phases": phases,
        "strategy": strategy,
        "errors": errors,
        "status": combine([p["status"] for p in phases], interrupted),
    }


# The summary lists at most this many problems (one per failing step of an agent, so as many
# as the agents when an option is wrong everywhere), then says how many more there are: the
# page and `/v1/status` stay small at any cluster size; the plan's steps hold every one.
MAX_PROBLEMS = 50
# The agents holding restart slots it names (the budget is a share of the agents: 5,000 at
# 50,000 agents and 10 %); `restarting_count` says how many hold one.
MAX_HOLDERS_NAMED = 50


def summary_doc(
    *,
    available: bool,
    progressing: bool,
    message: str,
    problems: Iterable[str],
    restarting: Iterable[str],
    budget: int,
    interrupted: bool,
    forced_steps: int = 0,
    replacing: Mapping[str, str] | None = None,
    acknowledged_warnings: int = 0,
) -> dict:
    """The page's and `/v1/status`'s summary; `degraded` when there are problems (the first
    `MAX_PROBLEMS`, then a line counting the others); `restarting` names the first
    `MAX_HOLDERS_NAMED` slot holders (agent IDs), `restarting_count` counts them all, and
    `replacing` maps those of them that hold it to replace a running daemon (`replacing`:
    `{agent_id: step}`, not a Docker or agent restart) to the daemon's step;
    `forced_steps` counts the steps COMPLETE only by an operator's force-complete (each
    `"forced": true` in the plan), which `message` says too (`forced_words`);
    `acknowledged_warnings` the steps done with an installer's warning an operator
    acknowledged (no longer problems; `acknowledged_words` in `message`)."""
    problems = sorted(problems)
    holders = sorted(restarting)
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems = problems[:MAX_PROBLEMS] + [f"… and {more} more (see the plan's steps)"]
    return {
        "available": available,
        "progressing": progressing,
        "degraded": bool(problems),
        "message": message,
        "problems": problems,
        "restarting": holders[:MAX_HOLDERS_NAMED],
        "restarting_count": len(holders),
        "replacing": {a: replacing[a] for a in holders[:MAX_HOLDERS_NAMED] if a in replacing}
        if replacing
        else {},
        "budget": budget,
        "interrupted": interrupted,
        "forced_steps": forced_steps,
        "acknowledged_warnings": acknowledged_warnings,
    }


def forced_words(count: int) -> str:
    """The summary's words for `count` (> 0) steps done only by an operator's force-complete:
    easy to miss otherwise, the rollout being Available and its agents COMPLETE."""
    steps, tasks = ("1 step", "its task") if count == 1 else (f"{count} steps", "their tasks")
    return (
        f"{steps} force-completed ({tasks} may never have run: `calico-dcos plan restart` runs it)"
    )


def acknowledged_words(count: int) -> str:
    """The summary's words for `count` (> 0) steps done with an installer's warning that an
    operator acknowledged: not problems any more, but still not as the options want."""
    steps = "1 step's warning" if count == 1 else f"{count} steps' warnings"
    return (
        f"{steps} acknowledged by an operator (done, not as the options want: "
        "`calico-dcos plan restart` runs it again)"
    )


# The plan names at most this many agents gone from the cluster (`gone_doc`); `gone_total`
# counts them all.
MAX_GONE_NAMED = 50


def gone_state(since: float, unreachable: bool) -> str:
    """`unreachable since 2026-11-29 20:31:05 UTC` or `gone from the cluster since …`: what
    an agent gone from the cluster is, from when (`since`: when the scheduler heard Mesos
    say so, plan clock; 0 when not known). Unreachable: its tasks went TASK_UNREACHABLE."""
    when = f" since {utc_words(since)}" if since else ""
    return f"unreachable{when}" if unreachable else f"gone from the cluster{when}"


def gone_words(since: float, unreachable: bool) -> str:
    """`gone_state`, and what it means. Unreachable: the master lost contact with it
    (`--agent_ping_timeout` x `--max_agent_ping_timeouts`: apache/mesos
    docs/high-availability-framework-guide.md), its tasks may still run, and it comes back
    if the partition heals (`Master::__reregisterSlave`); otherwise the master removed it."""
    if unreachable:
        return (
            f"{gone_state(since, unreachable)}: Mesos lost contact with it (its tasks may "
            "still run); it rejoins the plan when Mesos offers it again"
        )
    return f"{gone_state(since, unreachable)}: Mesos removed it"


def unreachable_problem(name: str, since: float) -> str:
    """The problem line (Degraded) of an agent the plan wants that is unreachable: Calico
    is not verified there while Mesos cannot reach it, and it may come back.

    Why Degraded while it lasts, and not for ever (the plan tells the two apart by its
    tasks' last state, `Deploy._unreachable`; apache/mesos src/master/master.cpp):
    - unreachable (`Master::markUnreachable` then `__removeSlave` with an unreachable time):
      a PARTITION_AWARE framework's tasks go TASK_UNREACHABLE; the agent may re-register
      (`__reregisterSlave`) with its tasks still running: a state to be resolved, so
      Degraded, as a script waiting on `plan show` must notice (exit 5);
    - removed for good: shut down or unregistered (`__removeSlave` with no unreachable
      time: TASK_GONE_BY_OPERATOR), or marked gone (`Master::markGone`, what `dcos node
      decommission` does: its unreachable tasks TASK_GONE_BY_OPERATOR), or garbage
      collected from the registry's unreachable list past `--registry_max_agent_age`
      (default 2 weeks: src/master/constants.hpp `DEFAULT_REGISTRY_MAX_AGENT_AGE`) or
      `--registry_max_agent_count` (`Master::_doRegistryGc`: nothing is sent; an explicit
      reconciliation then answers TASK_UNKNOWN, case (6) of `Master::_reconcileTasks`): the
      agent is no longer part of the cluster, nothing to wait for, so not Degraded. The
      plan forgets a gone agent after `gone_retention_seconds` (7 days, before Mesos'
      2 weeks), which ends a Degraded that Mesos never ended by a word."""
    return (
        f"{name}: {gone_state(since, True)}: Calico is not verified there while Mesos "
        "cannot reach it (its tasks may still run); Degraded until it is back or Mesos "
        "removes it"
    )


def short_agent_id(agent_id: str) -> str:
    """The end of an agent ID, enough to tell two agents of one name apart: a Mesos agent ID
    is the master's ID (a UUID), `-S` and a number (apache/mesos src/master/master.cpp,
    `newSlaveId`), so `…be82cf-S0` for `cc16046d-…-333bb8be82cf-S0`; a short ID as is."""
    head, dash, tail = agent_id.rpartition("-")
    if not dash or len(agent_id) <= 12:
        return agent_id
    return f"…{head[-6:]}-{tail}"


def gone_label(name: str, agent_id: str, repeated: bool) -> str:
    """How an agent gone from the cluster is named: its name, with the end of its agent ID
    when the name is `repeated` (a phase of the plan, or another agent gone, has it: an
    agent that came back under a new agent ID, as after a reboot, or an earlier cluster's
    agents): `agent-1 (agent …be82cf-S0)`, so that `agent-1 WAITING` beside it is not read
    as the same agent."""
    return f"{name} (agent {short_agent_id(agent_id)})" if repeated else name


def gone_doc(
    agent_id: str, name: str, since: float, unreachable: bool, label: str | None = None
) -> dict:
    """One agent gone from the cluster, as the plan lists it beside its phases:
    `{"id", "name", "label" (how to show it, `gone_label`), "since" (`utc_iso`, or null when
    not known), "unreachable", "message"}`."""
    return {
        "id": agent_id,
        "name": name,
        "label": label or name,
        "since": utc_iso(since) if since else None,
        "unreachable": unreachable,
        "message": gone_words(since, unreachable),
    }


# Names of agents interrupted on their own a hint spells out; the rest are counted.
CONTINUE_NAMED = 3


def continue_words(plan: bool, agents: Sequence[str] = (), total: int | None = None) -> str:
    """The command, or commands, that lift the interrupts that hold: the whole plan's
    (`plan`: `calico-dcos plan continue`), then each agent's own (`agents`, the names of
    agents interrupted on their own; `total` how many there are, when `agents` is only the
    first few): `calico-dcos plan continue --phase <its name>`. The one place every reply,
    summary and step says how to resume, so that none names a command that would not lift
    the interrupt that holds (a whole-plan `continue` leaves agents' own interrupts in
    place, and `--phase` does not lift the plan's). Backquoted; "" when nothing holds."""
    total = len(agents) if total is None else total
    said = []
    if plan:
        said.append("`calico-dcos plan continue`")
    if len(agents) == 1 and total == 1:
        said.append(f"`calico-dcos plan continue --phase {agents[0]}`")
    elif agents:
        names = ", ".join(agents[:CONTINUE_NAMED])
        more = total - min(len(agents), CONTINUE_NAMED)
        names += f" and {more} more" if more > 0 else ""
        said.append(f"`calico-dcos plan continue --phase <agent>` for each of {names}")
    return "; then ".join(said)


def interrupted_words(agent_name: str | None) -> str:
    """Why nothing new starts: the whole plan (`agent_name` None) or one agent interrupted by
    an operator, and the command that resumes it (`continue_words`)."""
    if agent_name is None:
        return (
            "the plan is interrupted by an operator: nothing is launched, replaced or "
            f"relaunched anywhere until {continue_words(True)}"
        )
    return (
        f"{agent_name} is interrupted by an operator: nothing is launched, replaced or "
        f"relaunched there until {continue_words(False, [agent_name])}"
    )
