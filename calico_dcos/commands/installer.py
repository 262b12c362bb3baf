"""`calico-dcos installer <command> …`: the agent-side installer, run from the package.

The same code the scheduler serves as a zipapp; its own argparse parses every argument, so
`--help` and bad usage behave exactly as `python3 installer.pyz …` does, under this command's
own name.
"""

from __future__ import annotations

import sys

import click


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def installer(args: tuple[str, ...]) -> None:
    """Agent-side installer commands (docker, cni, ip, detect, uninstall)."""
    from calico_dcos.installer.cli import main

    sys.exit(main(list(args), prog="calico-dcos installer"))
