"""`calico-dcos bench`: convergence at cluster scale, one row per size (see `calico_dcos.bench`)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import click

from calico_dcos.bench import (
    CALL_TYPES,
    RESTARTING,
    Settings,
    limited_by,
    run_size,
    sim_settings,
    summarise,
)
from calico_dcos.core.budget import RestartBudget
from calico_dcos.core.config import TIMINGS
from calico_dcos.display import CountDisplay

# (header, format, shown without --wide)
COLUMNS = (
    ("agents", "{:>6}", True),
    ("wall s", "{:>8}", True),
    ("bound s", "{:>8}", True),
    ("ratio", "{:>6}", True),
    ("pace s", "{:>6}", True),
    ("cpu floor s", "{:>11}", True),
    ("slots %", "{:>7}", True),
    ("cpu ms/ag", "{:>9}", True),
    *((f"{t[:7].lower()}/ag", "{:>9}", False) for t in CALL_TYPES),
    ("offers/ag", "{:>9}", True),
    ("writes/ag", "{:>9}", False),
    ("bytes/ag", "{:>8}", False),
    ("rss MB", "{:>7}", True),
    ("ack p50 ms", "{:>10}", False),
    ("ack p99 ms", "{:>10}", True),
    ("resent", "{:>6}", True),
    ("busy %", "{:>6}", False),
    ("rec/commit", "{:>10}", False),
    ("mesos cpu s", "{:>11}", False),
    ("mesos ms/ag", "{:>11}", True),
    ("load", "{:>9}", True),
)


class Seconds(click.ParamType):
    """A finite number of seconds, at least `minimum` (or above it, with `open_minimum`);
    click's FloatRange lets `nan` and `inf` through."""

    name = "seconds"

    def __init__(self, minimum: float = 0.0, open_minimum: bool = False) -> None:
        self.minimum = minimum
        self.open_minimum = open_minimum

    def convert(self, value, param, ctx) -> float:  # noqa: ANN001 (click's signature)
        if isinstance(value, float):
            return value
        try:
            return finite_seconds(str(value), self.minimum, self.open_minimum)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def finite_seconds(text: str, minimum: float = 0.0, open_minimum: bool = False) -> float:
    """`text` as seconds, or ValueError saying what is wrong with it as typed."""
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"expected a number of seconds, not {text!r}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite number of seconds, not {text!r}")
    if seconds < minimum or (open_minimum and seconds == minimum):
        bound = f"more than {minimum:g}" if open_minimum else f"at least {minimum:g}"
        raise ValueError(f"{text!r}: seconds must be {bound}")
    return seconds


def parse_sizes(text: str) -> list[int]:
    """`--agents 100,1000,5000`: the sizes, each at least 1, in increasing order."""
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        raise click.BadParameter(
            f"{text!r} has an empty size: expected sizes like 100,1000,5000",
            param_hint="'--agents'",
        )
    try:
        sizes = sorted({int(part) for part in parts})
    except ValueError:
        raise click.BadParameter(
            f"expected sizes like 100,1000,5000, not {text!r}", param_hint="'--agents'"
        ) from None
    if sizes[0] < 1:
        raise click.BadParameter(
            f"every size must be at least 1 agent, not {text!r}", param_hint="'--agents'"
        )
    return sizes


def parse_restart_seconds(text: str) -> dict[str, float]:
    """`0.2` for every restarting step, or per step: `docker=0.2,cni=1.5` (each at least 0;
    a step not named takes 0.2)."""
    hint = "--restart-seconds"
    steps = ", ".join(n.removeprefix("calico-") for n in RESTARTING)
    try:
        if "=" not in text:
            seconds = finite_seconds(text)
            return {name: seconds for name in RESTARTING}
        given = {}
        for part in text.split(","):
            step, equals, value = (item.strip() for item in part.partition("="))
            if not (step and equals):
                raise ValueError(f"expected seconds or STEP=SECONDS,… ({steps}), not {text!r}")
            if f"calico-{step}" not in RESTARTING:
                raise ValueError(f"the one-shot steps are {steps}, not {step!r}")
            try:
                given[f"calico-{step}"] = finite_seconds(value)
            except ValueError as exc:
                raise ValueError(f"{step}={value}: {exc}") from None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
    return {name: given.get(name, 0.2) for name in RESTARTING}


def parse_budget(text: str) -> int | str:
    """`--restart-budget`, read by the plan's own rule (`RestartBudget.parse`)."""
    try:
        budget = RestartBudget.parse(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--restart-budget'") from None
    return str(budget) if budget.percent is not None else budget.count


def parse_timings(given: tuple[str, ...]) -> dict[str, float]:
    """`--scheduler-timing NAME=SECONDS`, repeatable; each at least 0."""
    timings = {}
    for text in given:
        name, _, value = text.partition("=")
        if name not in TIMINGS:
            raise click.BadParameter(
                f"no plan timing {name!r} (given {text!r}); the timings are "
                f"{', '.join(sorted(TIMINGS))}",
                param_hint="'--scheduler-timing'",
            )
        try:
            timings[name] = finite_seconds(value)
        except ValueError as exc:
            raise click.BadParameter(
                f"{exc} (given {text!r}; expected NAME=SECONDS)", param_hint="'--scheduler-timing'"
            ) from None
    return timings


def check_writable(path: Path) -> None:
    """Refuse `--json PATH` before a run of minutes whose figures it could not keep."""
    parent = path.parent
    problem = None
    if not parent.is_dir():
        problem = f"its directory {parent} does not exist"
    elif path.is_dir():
        problem = "it is a directory"
    elif not os.access(path if path.exists() else parent, os.W_OK):
        problem = f"{'it' if path.exists() else f'its directory {parent}'} is not writable"
    if problem:
        raise click.BadParameter(f"cannot write {str(path)!r}: {problem}", param_hint="'--json'")


def write_json(path: Path, document: dict) -> None:
    """The figures as JSON; after the table is out, so a failure loses nothing printed."""
    try:
        path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        click.echo(f"calico-dcos bench: --json: cannot write {path}: {exc.strerror}", err=True)
        raise SystemExit(1) from None


def row(run: dict) -> list[str]:
    n = run["agents"]

    def per(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
        return "-" if value is None else f"{value * scale / n:.{digits}f}"

    wall, ratio = run["wall_seconds"], run["ratio"]
    return [
        str(n),
        f"{wall:.1f}" if wall is not None else f"({run['agents_done']} done)",
        f"{run['lower_bound_seconds']:.1f}",
        f"{ratio:.2f}" if ratio is not None else "-",
        _scaled(run.get("plan_pace_seconds"), 1.0, 1),
        _scaled(run.get("cpu_floor_seconds"), 1.0, 1),
        _scaled(run.get("restart_slot_busy_share"), 100.0, 0),
        per(run["scheduler_cpu_seconds"], 1000.0, 1),
        *(per(run["calls"][t]) for t in CALL_TYPES),
        per(run["offers_received"]),
        per(run["store_writes"], digits=1),
        per(run["store_bytes"], digits=0),
        f"{run['scheduler_peak_rss_bytes'] / 2**20:.0f}",
        _scaled(run.get("ack_latency_median_seconds"), 1000.0, 1),
        _scaled(run.get("ack_latency_p99_seconds"), 1000.0, 1),
        _scaled(run.get("updates_resent"), 1.0, 0),
        _scaled(run.get("event_thread_busy_share"), 100.0, 0),
        _scaled(run.get("store_records_per_commit"), 1.0, 2),
        _scaled(run.get("devcluster_cpu_seconds"), 1.0, 1),
        per(run.get("devcluster_cpu_seconds"), 1000.0, 1),
        "/".join(f"{load:.1f}" for load in run.get("load_average", [])) or "-",
    ]


def _scaled(value: float | None, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def table(document: dict, wide: bool = False) -> str:
    """The runs' table (its main columns, or every one with `wide`), what limited each run,
    and the growth figures."""
    shown = [i for i, (_, _, main) in enumerate(COLUMNS) if wide or main]
    lines = [" ".join(COLUMNS[i][1].format(COLUMNS[i][0]) for i in shown)]
    for run in document["runs"]:
        cells = row(run)
        lines.append(" ".join(COLUMNS[i][1].format(cells[i]) for i in shown))
    lines.extend(limits_words(run) for run in document["runs"])
    lines.extend(revive_words(run) for run in document["runs"])
    learned = {run.get("scheduler_allocation_interval_seconds") for run in document["runs"]}
    if learned - {None}:
        words = ", ".join(f"{s:g} s" for s in sorted(learned - {None}))
        lines.append(f"allocation interval the scheduler learned from the master: {words}")
    exponent = document["cpu_growth_exponent"]
    rss = document["rss_growth_bytes_per_agent"]
    if exponent is not None:
        lines.append(f"scheduler CPU growth exponent: {exponent:.2f} (1.0 = linear)")
    if rss is not None:
        lines.append(f"scheduler peak RSS growth: {rss / 1024:.1f} KiB per agent")
    if not wide:
        lines.append("(--wide: every column; --json: every figure)")
    return "\n".join(lines)


def limits_words(run: dict) -> str:
    """One run's wall time against its three lower limits, and the highest of them:
    "1000 agents: 9.9 s; the bound 3.6 s (…), the plan's pace 4.0 s, the CPU floor 7.0 s:
    limited by CPU (…), 2.9 s beyond it (latency, contention)"."""
    n, wall = run["agents"], run["wall_seconds"]
    chain, slots = run.get("lower_bound_chain_seconds"), run.get("lower_bound_slots_seconds")
    turns = f"the other agents' turns through {run.get('restart_slots')} restart slots"
    parts = f" = one agent's chain {chain:.1f} s + {turns} {slots:.1f} s"
    bound = f"the bound {run['lower_bound_seconds']:.1f} s{parts if chain is not None else ''}"
    pace, floor = run.get("plan_pace_seconds"), run.get("cpu_floor_seconds")
    known = [bound]
    known += [f"the plan's pace {pace:.1f} s"] if pace is not None else []
    known += [f"the CPU floor {floor:.1f} s"] if floor is not None else []
    head = f"{n} agents: {wall:.1f} s" if wall is not None else f"{n} agents: not converged"
    limit = limited_by(run)
    if limit is None:
        return f"{head}; {', '.join(known)}"
    words, seconds = limit
    beyond = f", {wall - seconds:.1f} s beyond it (latency, contention)"
    return f"{head}; {', '.join(known)}: limited by {words}{beyond}"


def reasons_words(reasons: dict[str, int]) -> str:
    """ "slot_freed 4, subscribed 1" (most first), or "none"."""
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{reason} {count}" for reason, count in ordered) or "none"


def revive_words(run: dict) -> str:
    """ "1000 agents: 3 REVIVEs (each offers every agent again), by reason: slot_freed 2,
    subscribed 1" (a REVIVE counts under each reason it carries)."""
    revives = run["calls"].get("REVIVE", 0)
    return (
        f"{run['agents']} agents: {run['offers_received'] / run['agents']:.2f} offers per "
        f"agent ({roles_words(run)}); {revives} REVIVEs (each offers every agent again), "
        f"by reason: {reasons_words(run.get('revive_reasons') or {})}"
    )


def run_with_bar(settings: Settings, agents: int) -> dict:
    """One size, with the agents converged so far, time and an estimate on stderr (a bar on
    a terminal, a line at every tenth otherwise)."""
    with CountDisplay(sys.stderr, f"{agents} agents", agents) as display:
        return run_size(settings, agents, display)


@click.command()
@click.option("--agents", "sizes", default="100,1000,5000", show_default=True,
              help="Cluster sizes, comma-separated, each at least 1.")  # fmt: skip
@click.option("--restart-budget", default="10%", show_default=True,
              help="rollout.max_concurrent_restarts: a count or a percentage.")  # fmt: skip
@click.option("--step-seconds", default=0.1, show_default=True, type=Seconds(),
              help="Synthetic tasks: launch to RUNNING (at least 0).")  # fmt: skip
@click.option("--restart-seconds", default="0.2", show_default=True,
              help="One-shot steps RUNNING to FINISHED: seconds, or docker=S,cni=S "
              "(at least 0; only docker takes a restart slot, as cni.restart_agent is "
              "off).")  # fmt: skip
@click.option("--allocation-interval", default=1.0, show_default=True,
              type=Seconds(open_minimum=True),
              help="Seconds between the embedded master's offer rounds (Mesos' "
              "--allocation_interval; more than 0). The scheduler learns it from the "
              "master (GET_FLAGS), as on a real cluster.")  # fmt: skip
@click.option("--store", default="", help="zk://host:port/path (default: a file store).")
@click.option("--timeout", default=600.0, show_default=True, type=Seconds(open_minimum=True),
              help="Seconds per size before the run is reported as not converged.")  # fmt: skip
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Profile the scheduler with py-spy into this directory (every thread, "
              "waits included: wall time).")  # fmt: skip
@click.option("--profile-cpu", is_flag=True,
              help="With --profile: only samples holding the GIL (CPU).")  # fmt: skip
@click.option("--scheduler-timing", "timings", multiple=True, metavar="NAME=SECONDS",
              help="Experiment: a plan timing (wait_refuse_seconds, revive_interval_seconds, "
              "…) that `calico-dcos run` does not set. Repeatable.")  # fmt: skip
@click.option("--simulate", "simulate", type=click.IntRange(min=1), default=None,
              metavar="AGENTS",
              help="Instead: the plan alone on a virtual clock (no sockets, no store) for "
              "this many agents, with the same settings.")  # fmt: skip
@click.option("--simulate-latency", "latency", type=Seconds(), default=None, metavar="SECONDS",
              help="With --simulate: seconds from a decision to Mesos acting on it (the "
              "scheduler's group commit and sender; 0 by default).")  # fmt: skip
@click.option("--simulate-public", "public", type=click.IntRange(min=0), default=None,
              metavar="AGENTS",
              help="With --simulate: how many of the agents are public (their resources "
              "reserved to slave_public, as DC/OS reserves them, so offered under that "
              "role only); 0 by default, as in the bench.")  # fmt: skip
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the figures here.")  # fmt: skip
@click.option("--wide", is_flag=True,
              help="Every column of the table (calls, store, latency, the devcluster's "
              "CPU), not only the main ones.")  # fmt: skip
def bench(
    sizes: str,
    restart_budget: str,
    step_seconds: float,
    restart_seconds: str,
    allocation_interval: float,
    store: str,
    timeout: float,
    profile_dir: Path | None,
    profile_cpu: bool,
    timings: tuple[str, ...],
    simulate: int | None,
    latency: float | None,
    public: int | None,
    json_file: Path | None,
    wide: bool,
) -> None:
    """Measure convergence at cluster scale: the real scheduler against N synthetic agents."""
    # Every option is checked before a run that may take minutes.
    agent_counts = parse_sizes(sizes)
    budget = parse_budget(restart_budget)
    restarts = parse_restart_seconds(restart_seconds)
    plan_timings = parse_timings(timings)
    if json_file:
        check_writable(json_file)
    if latency is not None and simulate is None:
        raise click.BadParameter("only with --simulate AGENTS", param_hint="'--simulate-latency'")
    if public is not None and simulate is None:
        raise click.BadParameter("only with --simulate AGENTS", param_hint="'--simulate-public'")
    if public is not None and public > simulate:
        raise click.BadParameter(
            f"{public} public agents among the {simulate} of --simulate: at most {simulate}",
            param_hint="'--simulate-public'",
        )
    if simulate is not None:
        simulated(simulate, str(budget), step_seconds, restarts, allocation_interval,
                  json_file, plan_timings, latency or 0.0, public or 0)  # fmt: skip
        return
    if store and not store.startswith("zk://"):
        raise click.BadParameter(
            f"expected zk://host:port/path, not {store!r}", param_hint="'--store'"
        )
    settings = Settings(
        restart_budget=budget,
        step_seconds=step_seconds,
        restart_seconds=restarts,
        allocation_interval=allocation_interval,
        store=store,
        timeout=timeout,
        profile_dir=profile_dir,
        profile_cpu=profile_cpu,
        scheduler_timings=plan_timings,
    )
    runs = [run_with_bar(settings, agents) for agents in agent_counts]
    document = summarise(runs)
    click.echo(table(document, wide))
    if json_file:
        write_json(json_file, document)
    if not all(run["converged"] for run in runs):
        raise SystemExit(1)


def roles_words(result: dict) -> str:
    """ "4.1 under *, 1.6 under slave_public": offers per agent by the role they were
    allocated to (a run's or the simulation's `offers_by_role`)."""
    agents = result["agents"]
    by_role = sorted((result.get("offers_by_role") or {}).items())
    return ", ".join(f"{n / agents:.2f} under {role}" for role, n in by_role) or "roles unknown"


def simulated(
    agents: int,
    restart_budget: str,
    step_seconds: float,
    restarts: dict[str, float],
    allocation_interval: float,
    json_file: Path | None,
    timings: dict[str, float] | None = None,
    latency: float = 0.0,
    public: int = 0,
) -> None:
    """`--simulate N`: the decision core alone (`calico_dcos.simulate`); `timings`: the
    plan's, as `--scheduler-timing` gives them; `latency`: `--simulate-latency`; `public`:
    `--simulate-public`."""
    from calico_dcos.simulate import Simulation

    bench_settings = Settings(
        restart_budget=restart_budget,
        step_seconds=step_seconds,
        restart_seconds=restarts,
        allocation_interval=allocation_interval,
        scheduler_timings=timings or {},
    )
    settings = dataclasses.replace(
        sim_settings(bench_settings, agents, latency), public_agents=public
    )
    result = Simulation(settings).run().as_dict() | {"latency_seconds": latency}
    click.echo(
        f"{agents} agents (plan only, virtual clock"
        f"{f', {public} of them public' if public else ''}"
        f"{f', {latency:g} s decision-to-Mesos latency' if latency else ''}): "
        f"{'converged' if result['converged'] else 'NOT converged'} after "
        f"{result['virtual_seconds']:.1f} virtual s (bound {result['lower_bound_seconds']:.1f} s, "
        f"which counts no wait for an offer: the rest is offers waiting for allocation "
        f"rounds, every {allocation_interval:g} s{', and the latency' if latency else ''})\n"
        f"per agent: {result['offers'] / agents:.1f} offers ({roles_words(result)}), "
        f"{result['revives'] / agents:.3f} REVIVEs ({result['revives']} in all: "
        f"{reasons_words(result['revive_reasons'])}); "
        f"at most {result['held_peak']} offers held at once\n"
        f"core CPU {result['core_cpu_seconds']:.1f} s for {result['events']} events "
        f"({result['events_per_cpu_second']:.0f} events/s; {result['updates']} updates, "
        f"{result['offers']} offers, {result['decisions']} decisions)\n"
        f"largest single call: {result['largest_call_seconds'] * 1000:.0f} ms CPU, "
        f"{result['largest_call_event']} of {result['largest_call_size']} giving "
        f"{result['largest_call_decisions']} decisions\n"
        f"peak RSS growth {result['rss_growth_bytes'] / 2**20:.0f} MiB "
        f"({result['rss_bytes_per_agent'] / 1024:.1f} KiB per agent)"
    )
    if json_file:
        write_json(json_file, result)
    if not result["converged"]:
        raise SystemExit(1)
