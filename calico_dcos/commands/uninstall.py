"""`calico-dcos uninstall`: remove the framework (and with --revert-hosts, Calico's changes).

The same mode runs when DC/OS' package manager starts the scheduler with `SDK_UNINSTALL` set
(`calico-dcos run` calls `start_uninstall`); then the scheduler stays up after the end, so
the package manager reads a COMPLETE plan and Marathon does not restart it.

`UninstallingScheduler` is an adapter: the scheduler holding an `uninstall.Uninstall` in
place of its `Plan`, and applying the core's three extra decisions. Its `_apply` belongs in
`scheduler.py`; it lives here until that module applies `SaveMeta`, `Teardown` and
`WipeState` itself.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import click
from aiohttp import web

from calico_dcos.api import ApiServer, build_app
from calico_dcos.artifacts import build_installer_zipapp
from calico_dcos.commands.run import Service, api_port, artifacts_url, load_or_exit
from calico_dcos.operator_api import add_operator_routes
from calico_dcos.options import Options, read_secret
from calico_dcos.scheduler import CalicoScheduler
from calico_dcos.store import open_store
from calico_dcos.uninstall import META_KEY, SaveMeta, Teardown, WipeState, uninstall_from_options

LOG = logging.getLogger("calico_dcos.uninstall")
REVERT_HOSTS_ENV = "CALICO_DCOS_REVERT_HOSTS"


def sdk_uninstall(environ: Mapping[str, str]) -> bool:
    """DC/OS' package manager asks for the uninstall by starting us with SDK_UNINSTALL set."""
    return bool(environ.get("SDK_UNINSTALL"))


def revert_hosts_from(environ: Mapping[str, str]) -> bool:
    """In SDK_UNINSTALL mode there is no command line: $CALICO_DCOS_REVERT_HOSTS=true."""
    return environ.get(REVERT_HOSTS_ENV, "").lower() == "true"


class UninstallingScheduler(CalicoScheduler):
    """The scheduler in uninstall mode: `uninstalled` is set once the state is wiped."""

    def __init__(self, options: Mapping, store, artifacts: str, revert_hosts: bool, **kwargs):
        super().__init__(options, store, artifacts, **kwargs)
        self.plan = uninstall_from_options(
            options,
            artifacts,
            revert_hosts,
            store.load_agents(),
            store.get_framework_id(),
            store.get_meta(META_KEY),
            **self.timings,
        )
        self.uninstalled = threading.Event()
        self._torn_down = None

    def _apply(self, decisions: list) -> None:
        """Progress first (store before calls, as for agent records), Teardown and the
        wipe last."""
        for decision in decisions:
            if isinstance(decision, SaveMeta):
                self.store.put_meta(decision.key, decision.value)
        super()._apply([d for d in decisions if not isinstance(d, SaveMeta | Teardown | WipeState)])
        for decision in decisions:
            if isinstance(decision, Teardown):
                self._teardown()
            elif isinstance(decision, WipeState):
                threading.Thread(target=self._wipe, name="wipe-state", daemon=True).start()

    def _teardown(self) -> None:
        """pymesos sends TEARDOWN from its IO thread once stopped without failover."""
        driver, self.driver = self.driver, None
        if driver is not None:
            LOG.info("tearing the framework down")
            driver.stop(failover=False)
            self._torn_down = driver

    def _wipe(self) -> None:
        """After the TEARDOWN has left (the driver's IO thread has ended), delete the state."""
        if self._torn_down is not None:
            self._torn_down.join()
        self.store.wipe()
        LOG.info("uninstalled: the framework is torn down and its state deleted")
        self.uninstalled.set()

    def health(self) -> tuple[bool, list[str]]:
        """Healthy once uninstalled, so that Marathon leaves the finished scheduler alone."""
        if self.uninstalled.is_set():
            return True, []
        return super().health()


def start_uninstall(
    options: Options,
    revert_hosts: bool,
    master: str | None = None,
    host: str = "",
    port: int | None = None,
    artifacts_dir: Path | None = None,
    **scheduler_kwargs,
) -> Service:
    """As `run.start_service`, with the uninstall in place of the deploy plan."""
    host = host or os.environ.get("HOST") or socket.getfqdn()
    store = open_store(options["service"]["state"], options["service"]["zk_credentials_file"])
    lost = threading.Event()
    store.acquire_leadership(lost.set)
    out_dir = Path(artifacts_dir or tempfile.mkdtemp(prefix="calico-dcos-artifacts-"))
    installer = build_installer_zipapp(out_dir)
    port = api_port(options, os.environ) if port is None else port
    holder: list[UninstallingScheduler] = []
    api = ApiServer(operator_app(_Late(holder), options), "0.0.0.0", port).start()
    scheduler = UninstallingScheduler(
        options,
        store,
        artifacts_url(options, host, api.port),
        revert_hosts,
        webui_url=f"http://{host}:{api.port}/",
        master=master,
        **scheduler_kwargs,
    )
    scheduler.artifacts = {"installer.pyz": installer.path}
    holder.append(scheduler)
    threading.Thread(target=_fail_on, args=(lost, scheduler), daemon=True).start()
    return Service(store, api, scheduler.start())


def operator_app(view, options: Options) -> web.Application:
    """`build_app` and the operator routes, with the token of `service.api_token_file`."""
    app = build_app(view)
    token_file = options["service"]["api_token_file"]
    token = read_secret(token_file, "service.api_token_file") if token_file else None
    add_operator_routes(app, view, token)
    return app


class _Late:
    """The API starts before the scheduler exists (its port is in the FrameworkInfo)."""

    def __init__(self, holder: list[UninstallingScheduler]) -> None:
        self._holder = holder

    def __getattr__(self, name: str):
        if not self._holder:
            raise RuntimeError("the scheduler is starting")
        return getattr(self._holder[0], name)


def _fail_on(lost: threading.Event, scheduler: CalicoScheduler) -> None:
    lost.wait()
    scheduler.fail("lost the leader lock: another scheduler may act now")


def wait_until_uninstalled(service: Service) -> int:
    """0 once uninstalled; 1 on a failure or when stopped (SIGTERM, ^C) before the end."""
    scheduler = service.scheduler
    signal.signal(signal.SIGTERM, lambda *_: scheduler.request_stop())
    try:
        while not scheduler.uninstalled.wait(1.0) and not scheduler.wait(0):
            pass
    except KeyboardInterrupt:
        LOG.info("interrupted: run `calico-dcos uninstall` again to go on")
    service.stop()
    return 0 if scheduler.uninstalled.is_set() else 1


@click.command()
@click.option(
    "--revert-hosts",
    is_flag=True,
    help="Also put back Docker's daemon.json and the CNI files on every agent "
    "(restarts Docker and the agents, within rollout.max_concurrent_restarts).",
)
@click.option("--options", "options_file", type=click.Path(dir_okay=False), help="JSON or YAML.")
@click.option("--master", default=None, help="Override service.master (zk://… or host:port).")
def uninstall(revert_hosts: bool, options_file: str | None, master: str | None) -> None:
    """Kill every task of the framework, optionally revert the hosts, then remove it."""
    options = load_or_exit(options_file)
    logging.basicConfig(
        level=options["service"]["log_level"].upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    service = start_uninstall(options, revert_hosts, master=master)
    sys.exit(wait_until_uninstalled(service))
