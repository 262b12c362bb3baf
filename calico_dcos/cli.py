"""The `calico-dcos` command.

Sub-commands live in their own modules and are imported only when used, so that
`calico-dcos installer` or `calico-dcos config` start fast and a broken optional
dependency of one command never breaks the others.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from pathlib import Path

import click

from calico_dcos import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("calico_dcos.commands.run", "Run the scheduler against a Mesos cluster."),
    "local": ("calico_dcos.commands.local", "Try the framework on this machine (embedded Mesos)."),
    "devcluster": ("calico_dcos.devcluster.cli", "Run the embedded Mesos cluster alone."),
    "config": ("calico_dcos.commands.config", "Validate, show and describe options."),
    "status": ("calico_dcos.commands.operator", "Show the rollout of a running scheduler."),
    "plan": ("calico_dcos.commands.operator", "Show or steer the deploy plan."),
    "uninstall": ("calico_dcos.commands.uninstall", "Remove Calico and the framework."),
    "installer": ("calico_dcos.commands.installer", "Agent-side installer commands."),
    "units": ("calico_dcos.commands.units", "Write systemd units: Calico without the framework."),
    "bench": ("calico_dcos.commands.bench", "Measure convergence at cluster scale."),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are `click.Command` objects named like the command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        return getattr(module, cmd_name.replace("-", "_"))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def own_command() -> str:
    """How to run this very `calico-dcos` again from any shell, for the commands we print:
    the absolute path of the running executable (after `make`, `.venv/bin/calico-dcos` is
    not on PATH), else `python -m calico_dcos.cli` with this interpreter."""
    for candidate in (Path(sys.argv[0]), Path(sys.executable).with_name("calico-dcos")):
        if candidate.name == "calico-dcos" and os.access(candidate, os.X_OK):
            return shlex.quote(str(candidate.absolute()))
    return f"{shlex.quote(sys.executable)} -m calico_dcos.cli"


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="calico-dcos")
def main() -> None:
    """Install Calico networking on every agent of a DC/OS (Mesos) cluster."""


if __name__ == "__main__":
    main()
