"""`calico-dcos config`: check an options file before deploying it, and see what will run.

`show` prints the effective options (file, then `CALICO_*` environment, then defaults) the
way the scheduler will see them. Secret options are file paths; their content is never read.
"""

from __future__ import annotations

import json
import os

import click

from calico_dcos.options import SCHEMA_PATH, OptionsError, load_options, redacted


def _load_or_exit(path: str | None) -> dict:
    try:
        return redacted(load_options(path, os.environ))
    except OptionsError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        raise SystemExit(1) from None


@click.group()
def config() -> None:
    """Validate, show and describe options."""


@config.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check FILE (JSON or YAML) with the environment's CALICO_* overrides; exit 1 if invalid."""
    _load_or_exit(file)
    click.echo(f"{file}: valid")


@config.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def show(file: str | None) -> None:
    """Print the effective options as JSON (FILE, then CALICO_* environment, then defaults)."""
    click.echo(json.dumps(_load_or_exit(file), indent=2, sort_keys=True))


@config.command()
def schema() -> None:
    """Print the options' JSON Schema (also Universe's config.json)."""
    click.echo(SCHEMA_PATH.read_text(), nl=False)
