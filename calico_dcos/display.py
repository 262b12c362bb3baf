"""What long runs show on the operator's terminal: the plan as a table, counts and an estimate.

`local`, `uninstall` and `status` show a plan (one phase per agent, one step per chain step,
the shape of `/v1/plan`); `bench` shows a count of agents converged. On a terminal the view
is one block redrawn in place by rich's live display (https://rich.readthedocs.io/en/stable/
live.html), laid out anew for the terminal's width at every redraw, so it fits 60 columns as
well as 200 and follows a resize. Anywhere else (a log file, CI) it writes one line per
change and never redraws.

The pure part (`counts`, `estimate_seconds`, `holder_labels`, `headline`, `PlanView`) takes
plain documents and a clock reading; the `PlanDisplay` and `CountDisplay` adapters write.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from calico_dcos.core.views import continue_words

# A step's status (dcos-commons' plan statuses) in the words and colours people read.
WORDS = {
    "COMPLETE": ("done", "green"),
    "STARTED": ("running", "cyan"),
    "STARTING": ("starting", "cyan"),
    "PREPARED": ("next", ""),
    "PENDING": ("pending", "dim"),
    "WAITING": ("waiting", "yellow"),
    "DELAYED": ("retrying", "yellow"),
    "ERROR": ("error", "red"),
}
# A step COMPLETE only because an operator force-completed it (the plan's step has
# `"forced": true`): not "done", since its task may never have run.
FORCED = "FORCED"
WORDS[FORCED] = ("forced", "yellow")
AGENT_COLUMN_MAX = 32  # longer hostnames are cut with an ellipsis
DEPARTED_SHOWN = 10  # agents that left the plan, shown under the others (the latest)
REFRESH_SECONDS = 0.3


def word(status: str) -> tuple[str, str]:
    """A status as (word, rich style)."""
    return WORDS.get(status, (status.lower(), ""))


def step_status(step: Mapping) -> str:
    """A step's status as people are shown it: FORCED for one done only by force."""
    return FORCED if step.get("forced") else step["status"]


def counts(plan: Mapping) -> tuple[int, int, int, int]:
    """(agents done, agents, steps done, steps) of a plan document."""
    phases = plan["phases"]
    steps = [step for phase in phases for step in phase["steps"]]
    return (
        sum(1 for phase in phases if phase["status"] == "COMPLETE"),
        len(phases),
        sum(1 for step in steps if step["status"] == "COMPLETE"),
        len(steps),
    )


def estimate_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Seconds still to go at the pace so far, or None before anything is done (or after)."""
    if done <= 0 or done >= total or elapsed <= 0:
        return None
    return elapsed * (total - done) / done


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def holder_labels(agent_ids: Sequence[str], plan: Mapping) -> list[str]:
    """Agents (by ID, as `summary["restarting"]` lists them) as people know them: the
    hostname, with the agent ID after it where the hostname alone is ambiguous (two agents
    share it) or unknown."""
    names = {phase["id"]: phase["name"] for phase in plan["phases"]}
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    labels = []
    for agent_id in agent_ids:
        name = names.get(agent_id, agent_id)
        if name == agent_id:
            labels.append(agent_id)
        elif taken[name] > 1:
            labels.append(f"{name} ({agent_id})")
        else:
            labels.append(name)
    return labels


def slots_line(summary: Mapping, plan: Mapping) -> str:
    """`Restart slots: 1 of 2 in use (agent-3)`; a holder replacing a running daemon rather
    than restarting Docker or the agent says so, `(agent-3: replacing node)`; past the
    holders the summary names, `… and N more`."""
    replacing = summary.get("replacing", {})
    holders = [
        f"{label}: replacing {replacing[aid]}" if aid in replacing else label
        for aid, label in zip(
            summary["restarting"], holder_labels(summary["restarting"], plan), strict=True
        )
    ]
    count = summary.get("restarting_count", len(holders))
    line = f"Restart slots: {count} of {summary['budget']} in use"
    more = f" and {count - len(holders)} more" if count > len(holders) else ""
    return line + (f" ({', '.join(holders)}{more})" if holders else "")


def headline(plan: Mapping, summary: Mapping, elapsed: float) -> str:
    """The summary's own words, then steps done, time so far and an estimate of what is left:
    `2 of 4 agents done · 14 of 20 steps · 1 min 05 s, about 40 s to go`."""
    _, _, steps_done, steps = counts(plan)
    text = summary["message"] + (" (degraded)" if summary["degraded"] else "")
    text += f" · {steps_done} of {steps} steps · {duration(elapsed)}"
    left = estimate_seconds(steps_done, steps, elapsed)
    return text + (f", about {duration(left)} to go" if left is not None else "")


class PlanView:
    """The whole block for one moment: headline, restart slots, one row per agent, the
    agents that left the plan (`departed`: `[(name, words)]`, oldest first, as
    `departure_words` says them), then problems and warnings. Laid out for the width it is
    rendered at: a column per step when they fit, else one line per agent with its progress
    and current step."""

    def __init__(
        self,
        plan: Mapping,
        summary: Mapping,
        warnings: Sequence[str],
        elapsed: float,
        departed: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.plan, self.summary, self.warnings, self.elapsed = plan, summary, warnings, elapsed
        self.departed = departed

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        lines = [Text(headline(self.plan, self.summary, self.elapsed)), Text(self._slots())]
        if width >= self._wide_width():  # the agent column, and the space after it
            table, agent, gap = self._wide(width), self._widths()[0], "  "
        else:
            table, agent, gap = self._narrow(width), self._name_width(width), " "
        notes = [Text(f"! {problem}", style="red") for problem in self.summary["problems"]]
        notes += [Text(f"warning: {warning}", style="yellow") for warning in self.warnings]
        yield Group(*lines, table, *self._departed_rows(width, agent, gap), *notes)

    def _departed_rows(self, width: int, agent: int, gap: str) -> list[Text]:
        """A line per agent that left the plan, under the others: its name in the agent
        column (`agent` wide, then `gap`), then what happened in words (not only a colour:
        "removed from the cluster at 14:02:31"); the latest `DEPARTED_SHOWN`, and how many
        more left before them. Cut with an ellipsis at the width, never wrapped."""
        if not self.departed:
            return []
        agent = max(agent, 5)
        rows = []
        earlier = len(self.departed) - DEPARTED_SHOWN
        if earlier > 0:
            rows.append(Text(f"… and {earlier} more agents left the plan before these", "dim"))
        for name, words in self.departed[-DEPARTED_SHOWN:]:
            if len(name) > agent:
                name = name[: agent - 1] + "…"
            row = Text(f"{name:<{agent}}{gap}", no_wrap=True)
            row.append(words, style="magenta")
            row.truncate(width, overflow="ellipsis")
            rows.append(row)
        return rows

    def _slots(self) -> str:
        line = slots_line(self.summary, self.plan)
        if self.summary.get("interrupted"):
            line += f" · interrupted: {continue_words(True)} resumes"
        return line

    def _step_names(self) -> list[str]:
        names: dict[str, None] = {}
        for phase in self.plan["phases"]:
            names.update((step["name"], None) for step in phase["steps"])
        return list(names)

    def _widths(self) -> tuple[int, list[int]]:
        """The agent column's width and each step column's (its name or its longest word)."""
        names = [phase["name"] for phase in self.plan["phases"]]
        agent = min(max((len(n) for n in names), default=5), AGENT_COLUMN_MAX)
        return agent, [max(len(name), 8) for name in self._step_names()]

    def _wide_width(self) -> int:
        """The columns, two spaces between them, and room for 8 characters of message."""
        agent, cells = self._widths()
        return agent + sum(cells) + 2 * (len(cells) + 1) + 8

    def _wide(self, width: int) -> Table:
        """A column per step, at its full width; the message gets what is left."""
        names = self._step_names()
        agent, cells = self._widths()
        left = width - agent - sum(cells) - 2 * (len(cells) + 1)
        table = Table(box=None, pad_edge=False, show_edge=False, expand=False)
        table.add_column("agent", no_wrap=True, overflow="ellipsis", width=agent)
        for name, cell in zip(names, cells, strict=True):
            table.add_column(name, no_wrap=True, width=cell)
        table.add_column("", no_wrap=True, overflow="ellipsis", max_width=left)
        for phase in self.plan["phases"]:
            steps = {step["name"]: step for step in phase["steps"]}
            row = [self._cell(steps.get(name)) for name in names]
            table.add_row(phase["name"], *row, self._message(phase))
        return table

    def _name_width(self, width: int) -> int:
        """The narrow layout's name column: the longest name, at most 20 and a quarter of
        the width (but 8)."""
        names = [phase["name"] for phase in self.plan["phases"]]
        return min(max((len(n) for n in names), default=5), 20, max(width // 4, 8))

    def _narrow(self, width: int) -> Group:
        """One line per agent: name, steps done, the current step and what it says; cut
        with an ellipsis at the width, never wrapped."""
        name_width = self._name_width(width)
        rows = []
        for phase in self.plan["phases"]:
            steps = phase["steps"]
            done = sum(1 for step in steps if step["status"] == "COMPLETE")
            name = phase["name"]
            if len(name) > name_width:
                name = name[: name_width - 1] + "…"
            row = Text(f"{name:<{name_width}} {done}/{len(steps)} ", no_wrap=True)
            current = next((s for s in steps if s["status"] != "COMPLETE"), None)
            forced = [s["name"] for s in steps if s.get("forced")]
            if current is None:
                row.append("done", style="green")
                if forced:
                    row.append(f" (forced: {', '.join(forced)})", style="yellow")
            else:
                text, style = word(current["status"])
                row.append(f"{current['name']} ")
                row.append(text, style=style)
                if current["message"]:
                    row.append(f": {current['message']}", style="dim")
            row.truncate(width, overflow="ellipsis")
            rows.append(row)
        return Group(*rows)

    @staticmethod
    def _cell(step: Mapping | None) -> Text:
        if step is None:
            return Text("")
        text, style = word(step_status(step))
        return Text(text, style=style)

    @staticmethod
    def _message(phase: Mapping) -> Text:
        current = next((s for s in phase["steps"] if s["status"] != "COMPLETE"), None)
        if current is None or not current["message"]:
            return Text("")
        return Text(current["message"], style="dim")


# What Mesos' command executor says of every task that ends well (apache/mesos
# src/launcher/executor.cpp: `message = "Command " + WSTRINGIFY(status)`): no news on a step
# that is done.
SUCCESS_WORDS = "Command exited with status 0"


def shown_message(step: Mapping) -> str:
    """A step's message as a person needs it: none for a step done with the executor's
    success words (a failure's words, "force-completed" and the like stay)."""
    if step["status"] == "COMPLETE" and step["message"] == SUCCESS_WORDS:
        return ""
    return step["message"]


# Not started, whether an offer is in sight or not: a step flips between the two with every
# offer round, which is no news in a log.
NOT_STARTED = {"PREPARED": "PENDING"}


GONE_WORDS = "no longer in the plan: the agent left the cluster (or agents.constraints changed)"


def departure_words(lost_at: float | None, gone: Mapping | None = None) -> str:
    """What is said of an agent whose phase left the plan (the plan shows only agents in the
    cluster and wanted), from when the scheduler found it gone from the cluster (`lost_at`:
    seconds since the epoch, 0 when not known; `Scheduler.lost_at`): "removed from the
    cluster at 14:02:31" (local time), or `GONE_WORDS` when the scheduler does not say it
    left (`None`: its options' agents.constraints no longer pick it, or its record is gone).
    `gone`: the plan's entry for it (`"gone"`, `core.views.gone_doc`), which says whether it
    is unreachable (Mesos lost contact; it may come back): "unreachable since 14:02:31"."""
    if gone is not None and gone.get("unreachable"):
        at = f" since {time.strftime('%H:%M:%S', time.localtime(lost_at))}" if lost_at else ""
        return (
            f"unreachable{at}: Mesos lost contact with it (its tasks may still run); back in "
            "the plan when Mesos offers it again"
        )
    if lost_at is None:
        return GONE_WORDS
    if not lost_at:
        return "removed from the cluster"
    return f"removed from the cluster at {time.strftime('%H:%M:%S', time.localtime(lost_at))}"


def gone_of(plan: Mapping) -> dict[str, Mapping]:
    """The plan's agents gone from the cluster (`"gone"`), by agent ID."""
    return {entry["id"]: entry for entry in plan.get("gone", ())}


def departures(plan: Mapping, names: dict[str, str]) -> list[tuple[str, str]]:
    """The agents whose phases left the plan since `names` (`{agent ID: name}` of the phases
    last seen, updated to the plan's): `[(agent ID, name)]`."""
    shown = {phase["id"]: phase["name"] for phase in plan["phases"]}
    left = [(agent_id, name) for agent_id, name in names.items() if agent_id not in shown]
    names.clear()
    names.update(shown)
    return left


def plan_changes(
    plan: Mapping,
    seen: dict[tuple[str, str], str],
    lost_at: Callable[[str], float | None] = lambda agent_id: None,
) -> list[str]:
    """One line per step whose status changed since `seen` (which is updated); PENDING and
    PREPARED count as one. An agent whose phase is gone (the plan shows only agents in the
    cluster and wanted) gets one line saying so (`departure_words`, from `lost_at(agent
    ID)`): else it would vanish without a word, as when a user removes an agent from
    `local`'s embedded cluster."""
    lines = []
    shown = {phase["id"] for phase in plan["phases"]}
    gone = gone_of(plan)
    for key, name in list(seen.items()):
        if key[1] == "" and key[0] not in shown:  # (phase id, ""): the phase's name
            words = departure_words(lost_at(key[0]), gone.get(key[0]))
            name = gone.get(key[0], {}).get("label", name)  # with its ID if the name repeats
            lines.append(f"{name:<16} {words}")
            for stale in [k for k in seen if k[0] == key[0]]:
                del seen[stale]
    for phase in plan["phases"]:
        seen[(phase["id"], "")] = phase["name"]
        for step in phase["steps"]:
            key = (phase["id"], step["name"])
            status = NOT_STARTED.get(step["status"], step_status(step))
            if seen.get(key) != status:
                seen[key] = status
                message = f"  {shown_message(step)}" if shown_message(step) else ""
                text = word(status)[0]
                lines.append(f"{phase['name']:<16} {step['name']:<11} {text}{message}")
    return lines


class PlanDisplay:
    """A plan followed on `out`: redrawn in place on a terminal, one line per change elsewhere.

    Use as a context manager; `update(plan, summary, warnings)` as often as the plan is read
    (it redraws at most every `REFRESH_SECONDS` on its own), `print(text)` for a line that
    stays above the live block. `warnings` are what holds now: on a terminal the block
    shows them; elsewhere a line says each as it comes, and again that it no longer holds.
    An agent whose phase leaves the plan stays on a terminal as a line under the others,
    saying what happened (`departure_words`, from `lost_at(agent ID)`: `Scheduler.lost_at`),
    until it is back in the plan; elsewhere a line says it once. `console` may be given
    (tests fix its width)."""

    def __init__(
        self,
        out: IO[str],
        console: Console | None = None,
        clock=time.monotonic,
        lost_at: Callable[[str], float | None] = lambda agent_id: None,
    ) -> None:
        self.console = console or Console(file=out, highlight=False)
        self.live = self.console.is_terminal
        self._clock = clock
        self._lost_at = lost_at
        self._started = clock()
        self._seen: dict[tuple[str, str], str] = {}
        self._warned: dict[str, None] = {}  # the warnings said, while they hold (in order)
        self._names: dict[str, str] = {}  # agent ID -> name, of the phases last seen
        self._departed: dict[str, tuple[str, str]] = {}  # agent ID -> (name, words)
        self._live = Live(
            console=self.console, auto_refresh=False, redirect_stdout=False,
            redirect_stderr=False, transient=False,
        )  # fmt: skip

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    def __enter__(self) -> PlanDisplay:
        if self.live:
            self._live.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.live:
            self._live.stop()

    def update(self, plan: Mapping, summary: Mapping, warnings: Sequence[str] = ()) -> None:
        if self.live:
            gone = gone_of(plan)
            for agent_id, name in departures(plan, self._names):
                words = departure_words(self._lost_at(agent_id), gone.get(agent_id))
                label = gone.get(agent_id, {}).get("label", name)  # with its ID if repeated
                self._departed[agent_id] = (label, words)
            for agent_id in [a for a in self._departed if a in self._names]:
                del self._departed[agent_id]  # back in the plan (it joined again)
            departed = list(self._departed.values())
            view = PlanView(plan, summary, warnings, self.elapsed, departed)
            self._live.update(view, refresh=True)
            return
        for warning in [w for w in self._warned if w not in warnings]:
            del self._warned[warning]
            self.console.print(f"warning no longer holds: {warning}", soft_wrap=True, markup=False)
        for warning in warnings:
            if warning not in self._warned:
                self._warned[warning] = None
                self.console.print(f"warning: {warning}", soft_wrap=True, markup=False)
        for line in plan_changes(plan, self._seen, self._lost_at):
            self.console.print(line, soft_wrap=True, markup=False)

    def print(self, text: str) -> None:
        self.console.print(text, soft_wrap=not self.live, markup=False)

    def log_handler(self) -> logging.Handler:
        """Log records for this display's terminal: printed above the live block, which is
        redrawn under them, instead of on stderr across it. Not on a terminal, stderr."""
        if not self.live:
            return logging.StreamHandler()
        return _ConsoleHandler(self.console)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), markup=False, highlight=False)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


class CountDisplay:
    """A count towards a total with an estimate (the benchmark's agents converged): rich's
    progress bar on a terminal, else a line at every tenth of the way and at the end.

    Its time runs from `start_clock()` (the bench calls it at the framework's SUBSCRIBE,
    where the run's wall time starts, and the lines say "since SUBSCRIBE"), else from its
    creation; `update(done, elapsed)` takes the measured time instead of its own clock's (the
    bench's last update gives the run's wall time, so that the two never disagree)."""

    def __init__(
        self,
        out: IO[str],
        label: str,
        total: int,
        console: Console | None = None,
        clock=time.monotonic,
    ) -> None:
        self.console = console or Console(file=out, highlight=False)
        self._clock = clock
        self.label, self.total = label, total
        self._tenths = -1
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            expand=True,
        )
        self._task = self._progress.add_task(label, total=total)
        self._started = clock()
        self._since = ""  # what the time is counted from, said after it
        self._first: tuple[float, int] | None = None  # (when, count) of the first count > 0

    def __enter__(self) -> CountDisplay:
        if self.console.is_terminal:
            self._progress.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.console.is_terminal:
            self._progress.stop()

    def start_clock(self, since: str = "SUBSCRIBE") -> None:
        """Count the time from now, saying `since` what (the bar's clock starts again too)."""
        self._started, self._since, self._first = self._clock(), since, None
        if self.console.is_terminal:
            self._progress.reset(self._task, completed=0, description=f"{self.label} since {since}")

    def update(self, done: int, elapsed: float | None = None) -> None:
        """`done` of the total; `elapsed`: seconds measured by the caller (shown to the tenth,
        as the bench's result shows its wall time), else this display's clock's (whole)."""
        if self.console.is_terminal:
            self._progress.update(self._task, completed=done)
            return
        now = self._clock()
        if self._first is None and done > 0:
            self._first = (now, done)
        tenths = 10 * done // self.total if self.total else 10
        if tenths != self._tenths or elapsed is not None:
            self._tenths = tenths
            took = duration(now - self._started) if elapsed is None else f"{elapsed:.1f} s"
            if self._since:
                took += f" since {self._since}"
            left = None
            if self._first is not None and elapsed is None:  # the pace since the first count,
                since, first = self._first  # not since the start: set-up says nothing of it
                left = estimate_seconds(done - first, self.total - first, now - since)
            eta = (
                f", about {duration(left)} to go" if left is not None and done < self.total else ""
            )
            self.console.print(
                f"{self.label}: {done} of {self.total} ({took}{eta})",
                soft_wrap=True,
                markup=False,
            )
