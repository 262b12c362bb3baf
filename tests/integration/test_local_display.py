"""`calico-dcos local`'s progress display (`commands.local.Progress`) on a terminal, following
the real scheduler on a DevCluster over sockets, while the devcluster's faults are armed over
its HTTP routes as a user would while `local --serve` runs (README, "Trying faults"). The
terminal is pyte, a VT100 emulator: what a person would see after each redraw."""

from __future__ import annotations

import io
import time

import pyte
import requests
from rich.console import Console

from calico_dcos.commands.local import Progress
from tests.integration.harness import running_cluster, scheduler_on, wait_until

WIDTH = 120


class Terminal:
    """A terminal `WIDTH` columns wide: rich writes to `out`, `lines()` is what it shows."""

    def __init__(self) -> None:
        self.out = io.StringIO()
        self.console = Console(
            file=self.out, width=WIDTH, height=40, force_terminal=True, color_system=None
        )
        self.screen = pyte.Screen(WIDTH, 40)
        self.stream = pyte.Stream(self.screen)

    def lines(self) -> list[str]:
        written = self.out.getvalue()
        self.out.seek(0)
        self.out.truncate()
        self.stream.feed(written.replace("\n", "\r\n"))
        return [line.rstrip() for line in self.screen.display if line.strip()]


def test_locals_display_shows_the_schedulers_warnings_and_a_removed_agent(tmp_path):
    """The scheduler's own warning (GET_FLAGS refused: the devcluster's `deny-view-flags`,
    heard at the next subscription) shows beside the options' as it comes; an agent the
    devcluster removes stays on screen as "unreachable since <when>" (its tasks were
    TASK_UNREACHABLE) or "removed from the cluster at <when>" (when the scheduler found it
    gone) instead of its row vanishing."""
    terminal = Terminal()
    with (
        running_cluster(agents=2, public_agents=0) as cluster,
        scheduler_on(cluster, tmp_path) as service,
    ):
        scheduler = service.scheduler
        progress = Progress(scheduler, terminal.out, ["an option's warning"], terminal.console)
        gone, stays = cluster.agents

        def shown(predicate) -> list[str] | None:
            progress.show()
            lines = terminal.lines()
            return lines if predicate(lines) else None

        def row(hostname: str, lines: list[str]) -> str:
            return next((line for line in lines if line.startswith(f"{hostname} ")), "")

        with progress.display:
            wait_until(
                lambda: shown(
                    lambda lines: row(gone.hostname, lines) and row(stays.hostname, lines)
                ),
                20,
                "a row per agent",
                interval=0.1,
            )
            framework_id = wait_until(scheduler.framework_id, 20, "a framework ID")
            asked = scheduler.master_flags.asked
            faults = f"{cluster.base_url}/devcluster"
            requests.post(f"{faults}/faults/deny-view-flags", timeout=5).raise_for_status()
            requests.post(
                f"{faults}/frameworks/{framework_id}/disconnect", timeout=5
            ).raise_for_status()
            warned = wait_until(
                lambda: shown(lambda lines: any("--allocation_interval" in x for x in lines)),
                20,
                "the scheduler's GET_FLAGS warning on screen",
                interval=0.1,
            )
            assert scheduler.master_flags.asked > asked
            requests.post(f"{faults}/agents/{gone.agent_id}/remove", timeout=5).raise_for_status()
            removed = wait_until(
                lambda: shown(
                    lambda lines: any(
                        w in row(gone.hostname, lines) for w in ("removed from", "unreachable")
                    )
                ),
                20,
                "the removed agent said so",
                interval=0.1,
            )
            lost_at = scheduler.lost_at(gone.agent_id)

    assert "warning: an option's warning" in warned
    flags = "warning: cannot learn the master's --allocation_interval (GET_FLAGS refused: 403)"
    assert any(line.startswith(flags) for line in warned)
    when = time.strftime("%H:%M:%S", time.localtime(lost_at))
    # the devcluster's `remove` is a machine that died: the master marks it unreachable, as
    # Mesos does (it cannot tell a dead machine from a partition), and its live tasks
    # TASK_UNREACHABLE; an agent with none live reads "removed from the cluster"
    words = row(gone.hostname, removed).split(None, 1)[1]
    assert words == f"removed from the cluster at {when}" or words.startswith(
        f"unreachable since {when}: Mesos lost contact with it"
    ), words
    assert row(stays.hostname, removed)  # the other agent's row is still there
    header = next(line for line in removed if line.startswith("agent "))
    first_step = header.split()[1]  # the removed agent's words start under the steps
    assert row(gone.hostname, removed).index(words) == header.index(first_step)
