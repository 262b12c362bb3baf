"""The terminal display of long runs (`calico_dcos.display`): it fits any width, follows a
resize, shows counts and an estimate, and stays line-per-change when not on a terminal.

The block is rendered by rich at 60, 80 and 200 columns and compared with the expected text
in `tests/unit/display/` (regenerate with `UPDATE_DISPLAY=1 pytest tests/unit/test_display.py`
and read the diff). Redraws on a terminal go through pyte, a VT100 emulator, to see what a
person would see after them.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pyte
import pytest
from rich.console import Console

from calico_dcos.display import (
    GONE_WORDS,
    CountDisplay,
    PlanDisplay,
    PlanView,
    departure_words,
    duration,
    estimate_seconds,
    headline,
    holder_labels,
)

EXPECTED = Path(__file__).with_name("display")
STEPS = ("etcd-proxy", "docker", "cni", "libnetwork", "node")
WARNING = (
    "node.ignore_loose_rpf is on: Felix runs although DC/OS sets rp_filter to loose, so a "
    "container with CAP_NET_RAW can spoof its source IP."
)


def phase(agent_id: str, name: str, statuses: list[str], message: str = "") -> dict:
    steps = [
        {"id": f"{agent_id}:{step}", "name": step, "status": status,
         "message": message if status not in ("COMPLETE", "PENDING") else ""}
        for step, status in zip(STEPS, statuses, strict=True)
    ]  # fmt: skip
    done = all(s == "COMPLETE" for s in statuses)
    return {"id": agent_id, "name": name, "status": "COMPLETE" if done else "IN_PROGRESS",
            "steps": steps}  # fmt: skip


def rollout() -> tuple[dict, dict]:
    plan = {"phases": [
        phase("S0", "agent-1.example", ["COMPLETE"] * 5),
        phase("S1", "agent-2", ["COMPLETE", "COMPLETE", "STARTED", "PENDING", "PENDING"],
              "restarting dcos-mesos-slave"),
        phase("S2", "agent-3", ["COMPLETE", "WAITING", "PENDING", "PENDING", "PENDING"],
              "waiting for a restart slot (1 at a time)"),
        phase("S3", "public-agent-1", ["DELAYED", "PENDING", "PENDING", "PENDING", "PENDING"],
              "etcd exited with 1; retry in 4 s"),
    ]}  # fmt: skip
    summary = {"message": "1 of 4 agents done", "degraded": False, "problems": [],
               "restarting": ["S1"], "budget": 1, "interrupted": False}  # fmt: skip
    return plan, summary


def render(width: int) -> str:
    plan, summary = rollout()
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(PlanView(plan, summary, [WARNING], elapsed=65.2))
    return console.file.getvalue()


@pytest.mark.parametrize("width", [60, 80, 200])
def test_the_block_fits_the_width_and_reads_as_expected(width):
    text = render(width)

    assert all(len(line) <= width for line in text.splitlines())
    expected = EXPECTED / f"rollout-{width}.txt"
    if os.environ.get("UPDATE_DISPLAY"):
        expected.write_text(text)
    assert text == expected.read_text()


def test_a_wide_terminal_gets_a_column_per_step_and_a_narrow_one_a_line_per_agent():
    wide, narrow = render(200).splitlines(), render(60).splitlines()

    assert wide[2].split() == ["agent", *STEPS]
    assert wide[4].split()[:6] == ["agent-2", "done", "done", "running", "pending", "pending"]
    assert narrow[4].startswith("agent-2         2/5 cni running: restarting")


def test_counts_and_an_estimate_at_the_pace_so_far():
    plan, summary = rollout()

    # 8 of 20 steps in 65.2 s: 12 more at the same pace take 97.8 s.
    assert headline(plan, summary, 65.2) == (
        "1 of 4 agents done · 8 of 20 steps · 1 min 06 s, about 1 min 38 s to go"
    )
    assert estimate_seconds(0, 20, 10.0) is None
    assert estimate_seconds(20, 20, 10.0) is None
    assert [duration(s) for s in (0.2, 59, 61, 3725)] == ["1 s", "59 s", "1 min 01 s", "1 h 02 min"]


def test_the_slot_holder_is_shown_by_hostname_with_the_id_only_when_names_clash():
    plan, _ = rollout()
    assert holder_labels(["S1"], plan) == ["agent-2"]
    plan["phases"][2]["name"] = "agent-2"
    assert holder_labels(["S1"], plan) == ["agent-2 (S1)"]
    assert holder_labels(["S9"], plan) == ["S9"]  # an agent no longer in the plan
    assert "Restart slots: 1 of 1 in use (agent-2)" in render(80)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _terminal(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=width, height=40, force_terminal=True, color_system=None)
    return console, out


def _screen_after(chunks: list[tuple[int, str]]) -> list[str]:
    """What a terminal shows after each chunk of output, written at each width in turn."""
    screen = pyte.Screen(chunks[0][0], 40)
    stream = pyte.Stream(screen)
    for width, text in chunks:
        screen.resize(40, width)
        stream.feed(text.replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display if line.strip()]


def test_redraws_in_place_and_follows_a_resize_without_leaving_copies():
    plan, summary = rollout()
    console, out = _terminal(200)
    clock = _Clock()
    display = PlanDisplay(out, console=console, clock=clock)
    chunks = []
    with display:
        for width, elapsed in ((200, 10.0), (200, 20.0), (60, 30.0), (80, 40.0)):
            console.width = width
            clock.now = elapsed
            display.update(plan, summary, [WARNING])
            chunks.append((width, out.getvalue()))
            out.seek(0)
            out.truncate()

    shown = _screen_after(chunks)

    assert sum("agents done" in line for line in shown) == 1, shown
    assert shown[0].startswith("1 of 4 agents done · 8 of 20 steps · 40 s")
    assert sum("agent-2 " in line for line in shown) == 1
    assert all(len(line) <= 80 for line in shown)


def test_not_on_a_terminal_one_line_per_change_and_each_warning_once():
    plan, summary = rollout()
    out = io.StringIO()
    display = PlanDisplay(out)
    with display:
        display.update(plan, summary, [WARNING])
        display.update(plan, summary, [WARNING])
        plan["phases"][1]["steps"][2]["status"] = "COMPLETE"
        plan["phases"][1]["steps"][2]["message"] = "Command exited with status 0"
        display.update(plan, summary, [WARNING])
    lines = out.getvalue().splitlines()

    assert lines[0] == f"warning: {WARNING}"
    assert len(lines) == 1 + 20 + 1
    # Mesos' command executor's words for every task that ends well: no news on a done step.
    assert lines[-1] == "agent-2          cni         done"
    assert "\x1b" not in out.getvalue()


def test_not_on_a_terminal_an_agent_that_leaves_the_plan_is_said_once():
    """`POST /devcluster/agents/<id>/remove` under `local`: the agent's rows go from the plan;
    one line says why instead of nothing."""
    plan, summary = rollout()
    out = io.StringIO()
    display = PlanDisplay(out)
    display.update(plan, summary)
    del plan["phases"][2]
    display.update(plan, summary)
    display.update(plan, summary)

    assert out.getvalue().splitlines()[-1] == (
        "agent-3          no longer in the plan: the agent left the cluster (or "
        "agents.constraints changed)"
    )
    assert out.getvalue().count("no longer in the plan") == 1


def test_a_done_step_keeps_words_other_than_the_executors_success():
    plan, summary = rollout()
    out = io.StringIO()
    display = PlanDisplay(out)
    display.update(plan, summary)
    plan["phases"][1]["steps"][2].update(status="COMPLETE", message="force-completed")
    display.update(plan, summary)

    assert out.getvalue().splitlines()[-1] == "agent-2          cni         done  force-completed"


def test_a_count_not_on_a_terminal_says_each_tenth_with_an_estimate():
    out, clock = io.StringIO(), _Clock()
    with CountDisplay(out, "100 agents", 100, clock=clock) as bar:
        for done in range(0, 101, 5):
            clock.now = done / 5  # one second per 5 agents
            bar.update(done)
    lines = out.getvalue().splitlines()

    assert len(lines) == 11
    assert lines[0] == "100 agents: 0 of 100 (0 s)"
    assert lines[5] == "100 agents: 50 of 100 (10 s, about 10 s to go)"
    assert lines[-1] == "100 agents: 100 of 100 (20 s)"


def test_the_bench_count_runs_from_subscribe_and_ends_on_the_runs_wall_time():
    """The trial's case: the progress line said "100 of 100 (7 s)" (since the size's start:
    the devcluster and the scheduler starting) while the result said 4.3 s (SUBSCRIBE to
    convergence). The count now starts at SUBSCRIBE, says so, and its last line is the run's
    own wall time."""
    out, clock = io.StringIO(), _Clock()
    with CountDisplay(out, "100 agents", 100, clock=clock) as bar:
        clock.now = 2.7  # the devcluster and the scheduler start
        bar.start_clock()
        for done in range(0, 100, 10):  # the bench's last count comes with the wall time
            clock.now = 2.7 + done / 25
            bar.update(done)
        clock.now = 7.05  # the parent reads the devcluster's last line a little later
        bar.update(100, 4.3)
    lines = out.getvalue().splitlines()

    assert lines[0] == "100 agents: 0 of 100 (0 s since SUBSCRIBE)"
    assert lines[5] == "100 agents: 50 of 100 (2 s since SUBSCRIBE, about 2 s to go)"
    assert lines[-1] == "100 agents: 100 of 100 (4.3 s since SUBSCRIBE)"


def test_calico_dcos_status_names_the_slot_holder_by_hostname():
    from calico_dcos.commands.operator import summary_lines

    plan, summary = rollout()
    doc = {"service": "calico", "summary": summary | {"available": False, "progressing": True},
           "plan": plan, "warnings": []}  # fmt: skip

    assert "Restart slots: 1 of 1 in use (agent-2)" in summary_lines(doc)


def test_not_on_a_terminal_a_step_flipping_between_pending_and_prepared_is_no_news():
    plan, summary = rollout()
    out = io.StringIO()
    display = PlanDisplay(out)
    display.update(plan, summary)
    first = len(out.getvalue().splitlines())
    for status in ("PREPARED", "PENDING", "PREPARED"):
        plan["phases"][2]["steps"][2]["status"] = status
        display.update(plan, summary)

    assert len(out.getvalue().splitlines()) == first


def test_a_counts_estimate_leaves_out_the_set_up_before_the_first_count():
    """The bench's first agents converge ~6 s after its start (devcluster, agents, the first
    chain), the rest at a steady pace: the estimate is that pace, not 6 s per 10 agents."""
    out, clock = io.StringIO(), _Clock()
    with CountDisplay(out, "100 agents", 100, clock=clock) as bar:
        for now, done in ((0.0, 0), (6.0, 10), (7.0, 20), (8.0, 30)):
            clock.now = now
            bar.update(done)
    lines = out.getvalue().splitlines()

    assert lines[1] == "100 agents: 10 of 100 (6 s)"  # no pace known yet
    assert lines[2] == "100 agents: 20 of 100 (7 s, about 8 s to go)"  # 10 a second
    assert lines[3] == "100 agents: 30 of 100 (8 s, about 7 s to go)"


LOST_AT = 1_800_000_000.0  # when the scheduler found agent-3 gone (seconds since the epoch)


def _at(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def test_on_a_terminal_a_removed_agent_stays_as_a_line_saying_so_until_it_is_back():
    """`POST /devcluster/agents/<id>/remove` under `local`: the plan drops the agent's phase;
    the block keeps a line for it, in words, with when the scheduler found it gone
    (`Scheduler.lost_at`), so that whoever watches sees what happened to the row."""
    plan, summary = rollout()
    console, out = _terminal(80)
    lost = {"S2": LOST_AT}
    display = PlanDisplay(out, console=console, lost_at=lost.get)
    with display:
        display.update(plan, summary)
        agent_3 = plan["phases"].pop(2)
        display.update(plan, summary)
        removed = _screen_after([(80, out.getvalue())])
        plan["phases"].insert(2, agent_3)  # the agent joins again under its ID
        out.seek(0)
        out.truncate()
        display.update(plan, summary)
        back = _screen_after([(80, out.getvalue())])

    (row,) = [line for line in removed if line.startswith("agent-3")]
    assert row.split(None, 1) == ["agent-3", f"removed from the cluster at {_at(LOST_AT)}"]
    header = next(line for line in removed if line.startswith("agent "))
    assert row.index("removed") == header.index("etcd-proxy")  # under the step columns
    assert removed.index(row) > max(removed.index(x) for x in removed if "public-agent" in x)
    assert not any("removed" in line for line in back)
    assert sum(line.startswith("agent-3") for line in back) == 1


def test_left_agents_read_in_words_at_any_width_the_latest_ten_shown():
    plan, summary = rollout()
    departed = [(f"gone-{n}", "removed from the cluster at 14:02:31") for n in range(12)]
    departed.append(("a-very-long-hostname-of-an-agent.example.com", departure_words(None)))

    for width in (60, 200):
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(PlanView(plan, summary, [], 1.0, departed))
        lines = console.file.getvalue().splitlines()
        assert all(len(line) <= width for line in lines)
        assert "… and 3 more agents left the plan before these" in lines
        assert sum("removed from the cluster at 14:02:31" in line for line in lines) == 9
        assert not any(line.startswith(("gone-0 ", "gone-2 ")) for line in lines)
        assert any(line.startswith("gone-3 ") for line in lines)
    assert lines[-1].endswith(f"  {GONE_WORDS}")  # at 200 columns, whole
    assert departure_words(0.0) == "removed from the cluster"  # gone, when unknown


def test_not_on_a_terminal_a_removed_agent_is_said_with_when():
    plan, summary = rollout()
    out = io.StringIO()
    display = PlanDisplay(out, lost_at={"S2": LOST_AT}.get)
    display.update(plan, summary)
    del plan["phases"][2]
    display.update(plan, summary)

    assert out.getvalue().splitlines()[-1] == (
        f"agent-3          removed from the cluster at {_at(LOST_AT)}"
    )


def test_an_unreachable_agent_that_left_the_plan_is_said_unreachable_not_removed():
    """The plan lists it under `gone` (`core.views.gone_doc`): Mesos lost contact with it,
    its tasks may still run, and it comes back if the partition heals."""
    plan, summary = rollout()
    out = io.StringIO()
    display = PlanDisplay(out, lost_at={"S2": LOST_AT}.get)
    display.update(plan, summary)
    del plan["phases"][2]
    plan["gone"] = [{"id": "S2", "name": "agent-3", "unreachable": True, "message": "…"}]
    display.update(plan, summary)

    assert out.getvalue().splitlines()[-1] == (
        f"agent-3          unreachable since {_at(LOST_AT)}: Mesos lost contact with it (its "
        "tasks may still run); back in the plan when Mesos offers it again"
    )


def test_not_on_a_terminal_a_warning_is_said_as_it_comes_and_as_it_goes():
    """The scheduler's own warnings come and go (`Scheduler.warnings`: GET_FLAGS refused
    until a subscription learns the interval): each is said when it comes, and said over
    when it no longer holds; one that comes back is said again."""
    plan, summary = rollout()
    flags = "cannot learn the master's --allocation_interval (GET_FLAGS refused: 403), [sic]"
    out = io.StringIO()
    display = PlanDisplay(out)
    for warnings in ([WARNING], [WARNING, flags], [WARNING, flags], [WARNING], [WARNING, flags]):
        display.update(plan, summary, warnings)
    said = [line for line in out.getvalue().splitlines() if "warning" in line]

    assert said == [
        f"warning: {WARNING}",
        f"warning: {flags}",  # "[sic]" printed as is, not read as rich markup
        f"warning no longer holds: {flags}",
        f"warning: {flags}",
    ]


def test_on_a_terminal_the_block_shows_the_warnings_that_hold_now():
    plan, summary = rollout()
    flags = "cannot learn the master's --allocation_interval (GET_FLAGS refused: 403)"
    console, out = _terminal(200)
    display = PlanDisplay(out, console=console)
    shown = []
    with display:
        for warnings in ([WARNING, flags], [WARNING]):
            out.seek(0)
            out.truncate()
            display.update(plan, summary, warnings)
            shown.append(_screen_after([(200, out.getvalue())]))

    assert f"warning: {flags}" in shown[0] and f"warning: {flags}" not in shown[1]
    assert any(line.startswith("warning: node.ignore_loose_rpf") for line in shown[1])
