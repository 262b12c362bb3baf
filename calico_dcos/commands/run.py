"""`calico-dcos run`: the scheduler against a real Mesos cluster (what Marathon starts).

With `SDK_UNINSTALL` set (DC/OS' package manager uninstalling the package) the scheduler runs
the uninstall instead, and stays up after the end: the package manager reads a COMPLETE plan,
and a healthy scheduler is one Marathon does not restart.

Options are checked before anything registers; `calico_dcos.service` assembles the rest.
The service's modules (aiohttp, pymesos, requests, the plan: most of a second to import on
a busy machine) are imported only once the options are valid, so that a wrong option is
reported at once (`tests/test_cli.py`).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

import click

from calico_dcos import logs
from calico_dcos.options import Options, OptionsError, load_options

if TYPE_CHECKING:
    from calico_dcos.plans import CoreFactory
    from calico_dcos.service import Service
    from calico_dcos.store import StoreError

LOG = logging.getLogger("calico_dcos.run")
EXIT_INVALID_OPTIONS = 2


def core_for(options: Mapping, environ: Mapping[str, str]) -> CoreFactory:
    """DC/OS' package manager asks for the uninstall by starting us with SDK_UNINSTALL set;
    there is no command line then, so `--revert-hosts` is `service.uninstall_revert_hosts`."""
    from calico_dcos.plans import deploy, uninstalling

    if not environ.get("SDK_UNINSTALL"):
        return deploy
    return uninstalling(bool(options["service"]["uninstall_revert_hosts"]))


def load_or_exit(path: str | None, master: str | None = None) -> Options:
    """Invalid options stop the program before it registers, naming each option's path;
    `master` (`--master`, which overrides service.master) is checked by the same rule."""
    try:
        options = load_options(path, os.environ)
        refuse_local_state_under_marathon(options, os.environ)
    except OptionsError as exc:
        _exit_invalid(exc)
    if master is not None:
        from calico_dcos.option_rules import mesos_master

        problem = mesos_master(options, master)
        if problem:
            click.echo(f"invalid --master (it overrides service.master): {problem}", err=True)
            raise SystemExit(EXIT_INVALID_OPTIONS)
    return options


def refuse_local_state_under_marathon(options: Mapping, environ: Mapping[str, str]) -> None:
    """Under Marathon (`MARATHON_APP_ID` is set in every task it starts: mesosphere/marathon
    `docs/docs/task-environment-vars.md`) each restart runs in a fresh sandbox, so a state
    directory there would be lost and the framework's tasks orphaned: take ZooKeeper only."""
    state, app = options["service"]["state"], environ.get("MARATHON_APP_ID")
    if app and not state.startswith("zk://"):
        raise OptionsError(
            [
                (
                    "service.state",
                    f"{state!r} is a directory inside the container of Marathon app {app}, "
                    "lost at every restart; use zk://host:port/path (the package's default is "
                    "zk://master.mesos:2181/dcos-service-<service.name>)",
                )
            ]
        )


def _exit_invalid(exc: OptionsError) -> NoReturn:
    for line in exc.lines():
        click.echo(line, err=True)
    raise SystemExit(EXIT_INVALID_OPTIONS) from None


def start_or_exit(options: Options, **kwargs) -> Service:
    """`start_service`, or exit with the reason on one line that names the option to change:
    2 for a secret file that cannot be read (an option) or a strict-mode login or TLS check
    that fails, 1 for a state store that cannot be reached or read and for an API port that
    cannot be bound (Marathon retries; a corrupt state is named, never replaced)."""
    from calico_dcos.dcos_auth import AuthError
    from calico_dcos.service import api_port, start_service
    from calico_dcos.store import StoreError

    try:
        return start_service(options, **kwargs)
    except OptionsError as exc:
        _exit_invalid(exc)
    except AuthError as exc:
        click.echo(f"calico-dcos: strict mode: {exc}", err=True)
        raise SystemExit(EXIT_INVALID_OPTIONS) from None
    except StoreError as exc:
        hint = store_hint(exc, options)
        click.echo(f"calico-dcos: {exc}{f'; {hint}' if hint else ''}", err=True)
        raise SystemExit(1) from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        port = kwargs.get("port")
        port = api_port(options, os.environ) if port is None else port
        click.echo(
            f"calico-dcos: cannot serve the API on port {port}: {exc.strerror}; set "
            f"service.api_port (or Marathon's $PORT0) to a free port",
            err=True,
        )
        raise SystemExit(1) from None


def store_hint(exc: StoreError, options: Options) -> str:
    """Which option chose the store that failed, and what it may be set to; "" for an error
    that is not about the option (it says what to do itself: a scheduler of an earlier
    version still running, leftovers of the old file layout, leadership lost)."""
    from calico_dcos.store import LeaderLockHeld, StateCorrupt, StoreAddressError

    state = options["service"]["state"]
    if isinstance(exc, LeaderLockHeld):
        return uninstall_while_running(state)
    if "service.zk_credentials_file" in str(exc):  # the words name the option themselves
        return ""
    if "credentials" in str(exc):
        return "check service.zk_credentials_file (a file holding user:password)"
    if isinstance(exc, StateCorrupt):
        return f"it is service.state ({state}): repair or move it aside, it is never replaced"
    if not isinstance(exc, StoreAddressError):
        return ""
    return (
        f"check service.state ({state}): a reachable ZooKeeper as zk://host:port[,…]/path, "
        "or a directory for a file store"
    )


def uninstall_while_running(state: str) -> str:
    """What to do when `calico-dcos uninstall` finds a scheduler running on its state (only
    it asks not to wait for the leader lock). The package's uninstall is driven through the
    app itself (README, "Uninstall": Cosmos restarts it with SDK_UNINSTALL=true, dcos/cosmos
    `UninstallHandler`), so on DC/OS the app is not stopped by hand. A ZooKeeper lock
    outlives its stopped holder until the session ends (its ephemeral node; ZooKeeper
    Programmer's Guide, "Ephemeral Nodes")."""
    words = (
        "an uninstall must be the only scheduler on its state: stop that one first (SIGTERM "
        "or Ctrl-C to `calico-dcos run` or `local --serve`; the framework stays registered for "
        "the uninstall to remove), then run `calico-dcos uninstall` again. On DC/OS do not "
        "stop the app: `dcos package uninstall calico-dcos` runs the uninstall in the app "
        "itself (service.uninstall_revert_hosts stands for --revert-hosts)"
    )
    if state.startswith("zk://"):
        words += (
            ". A scheduler killed just now (SIGTERM and Ctrl-C give the lock back) holds its "
            "ZooKeeper lock until its session ends (session_timeout in service.state, 10 s by "
            "default)"
        )
    return words


def log_warnings(options: Options) -> list[str]:
    """The warnings the status page and `calico-dcos status` show, in the log too, once at
    start (README: "The status page and the logs say so")."""
    from calico_dcos.operator_api import warnings_for

    warnings = warnings_for(options)
    for warning in warnings:
        LOG.warning("%s", warning)
    return warnings


@click.command()
@click.option(
    "--options", "options_file", type=click.Path(dir_okay=False),
    help="JSON or YAML. Optional: without it, each option is its CALICO_* environment "
    "variable or its default (`calico-dcos config schema`); with it, the variables still win.",
)  # fmt: skip
@click.option(
    "--master", default=None,
    help="Override service.master: host:port or zk://host:port[,…]/path (https://host:port "
    "with service.strict).",
)  # fmt: skip
def run(options_file: str | None, master: str | None) -> None:
    """Run the scheduler against a Mesos cluster."""
    options = load_or_exit(options_file, master)  # before the service's modules are imported
    from calico_dcos.service import wait_for_signal

    logs.configure(options["service"]["log_level"].upper())
    service = start_or_exit(options, master=master, core=core_for(options, os.environ))
    log_warnings(options)
    where = f"{master} (--master)" if master else options["service"]["master"]
    sys.exit(wait_for_signal(service, where))
