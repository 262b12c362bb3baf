"""`calico-dcos uninstall`: remove the framework (and with --revert-hosts, Calico's changes).

The scheduler runs with the uninstall as its core (`plans.uninstalling`) and this command
exits once the framework is torn down and the state wiped. The same mode runs when DC/OS'
package manager starts `calico-dcos run` with `SDK_UNINSTALL` set; then the scheduler stays
up after the end (see `commands/run.py`). As there, the service's modules are imported only
once the options are valid, so that a wrong option is reported at once. Unlike `run`, it
never waits for the leader lock: a scheduler still running on the same state is named at
once, with what to do (`commands/run.py` `uninstall_while_running`).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click

from calico_dcos import logs
from calico_dcos.commands.run import load_or_exit, start_or_exit

if TYPE_CHECKING:
    from calico_dcos.display import PlanDisplay
    from calico_dcos.service import Service

LOG = logging.getLogger("calico_dcos.uninstall")


def wait_until_uninstalled(service: Service, display: PlanDisplay | None = None) -> int:
    """0 once uninstalled; 1 on a failure or when stopped (SIGTERM, ^C) before the end.
    `display` shows the uninstall plan meanwhile: tasks killed and hosts reverted, with an
    estimate."""
    from calico_dcos.display import REFRESH_SECONDS, PlanDisplay
    from calico_dcos.signals import StopSignals

    scheduler = service.scheduler
    signals = StopSignals(scheduler.request_stop, raise_interrupt=False).install()
    display = display or PlanDisplay(sys.stdout)
    with display:
        while not scheduler.uninstalled.wait(REFRESH_SECONDS) and not scheduler.wait(0):
            display.update(scheduler.plan_view(), scheduler.summary())
        display.update(scheduler.plan_view(), scheduler.summary())
    signals.shield()
    if signals.received is not None and not scheduler.uninstalled.is_set():
        LOG.info("interrupted: run `calico-dcos uninstall` again to go on")
    service.stop()
    done = scheduler.uninstalled.is_set()
    display.print(scheduler.summary()["message"] if done else "uninstall stopped before the end")
    return 0 if done else 1


@click.command()
@click.option(
    "--revert-hosts",
    is_flag=True,
    help="Also put back Docker's daemon.json and the CNI files on every agent "
    "(restarts Docker and the agents, within rollout.max_concurrent_restarts). This flag "
    "alone decides it here; service.uninstall_revert_hosts is its counterpart for DC/OS' "
    "package manager (`dcos package uninstall`), which has no command line.",
)
@click.option(
    "--options", "options_file", type=click.Path(dir_okay=False),
    help="JSON or YAML: the same options `calico-dcos run` used (with the same CALICO_* "
    "variables), since service.name, service.state and service.master find the framework "
    "and its state.",
)  # fmt: skip
@click.option(
    "--master", default=None,
    help="Override service.master: host:port or zk://host:port[,…]/path (https://host:port "
    "with service.strict).",
)  # fmt: skip
def uninstall(revert_hosts: bool, options_file: str | None, master: str | None) -> None:
    """Kill every task of the framework, optionally revert the hosts, then remove it (its
    state too). Give it the options `run` was given, once that scheduler is stopped (on
    DC/OS use `dcos package uninstall` instead)."""
    options = load_or_exit(options_file, master)  # before the service's modules are imported
    from calico_dcos.display import PlanDisplay
    from calico_dcos.plans import uninstalling

    display = PlanDisplay(sys.stdout)
    logs.configure(options["service"]["log_level"].upper(), handlers=[display.log_handler()])
    service = start_or_exit(
        options, master=master, core=uninstalling(revert_hosts), wait_for_leader=False
    )
    sys.exit(wait_until_uninstalled(service, display))
