"""`calico-dcos local`: the whole framework on this machine, on the embedded Mesos cluster.

The devcluster runs each step as a real process against a simulated host root per agent.
What a laptop cannot have is replaced by stand-ins, and the screen says so: the `calico` and
`calico-ipam` CNI plugins (small scripts, served as file:// URIs) and the Docker images
(container stand-ins of the devcluster). etcd is real whenever `/usr/bin/etcd` exists: one
member on loopback, and the etcd-proxy step runs the same binary on every agent. The agents'
Python is this one; the devcluster points the installer at each agent's host root.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import click
import requests

from calico_dcos.artifacts import (
    build_cni_standins,
    build_etcd_tarball,
    build_libnetwork_standin,
    etcd_version,
)
from calico_dcos.commands.run import load_or_exit, log_warnings
from calico_dcos.display import REFRESH_SECONDS, PlanDisplay, duration
from calico_dcos.options import env_name, format_env_value, load_options
from calico_dcos.service import start_service
from calico_dcos.signals import StopSignals

LOG = logging.getLogger("calico_dcos.local")
ETCD_BINARY = Path("/usr/bin/etcd")
TIMINGS = {"wait_refuse_seconds": 1.0, "revive_interval_seconds": 0.5}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def real_etcd(data_dir: Path, enable_v2: bool = False, peer: str = "") -> Iterator[str]:
    """One etcd member on loopback for the agents' proxies to reach; its client URL.

    `enable_v2` serves the v2 API too (`--enable-v2`, off by default since etcd 3.4), as the
    etcd Calico 2.6 and Docker's cluster store need. `peer`: its peer URL (default: a free
    port), which etcd's v2 proxy asks for the members.
    """
    client = f"http://127.0.0.1:{free_port()}"
    peer = peer or f"http://127.0.0.1:{free_port()}"
    argv = [
        str(ETCD_BINARY), "--name", "local", "--data-dir", str(data_dir),
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"local={peer}", f"--enable-v2={'true' if enable_v2 else 'false'}",
    ]  # fmt: skip
    log = open(data_dir.parent / "etcd.log", "ab")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_etcd(client, process)
        yield client
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def wait_for_etcd(client: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"etcd exited with {process.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{client}/health", timeout=1).ok:
                return
        time.sleep(0.1)
    raise click.ClickException(f"etcd did not answer on {client} within {timeout:.0f} s")


def devcluster_options(
    workdir: Path, master_url: str, artifacts: Path, etcd_client: str | None
) -> dict[str, dict]:
    """The options a scheduler needs on this machine, against the embedded cluster at
    `master_url`: the master, a state directory, the agents' Python (this one), the CNI
    plugins' stand-ins and, with a real etcd, the etcd binary the proxies fetch; short
    waits so that a rollout takes seconds. `local` passes them as CALICO_* variables
    (`local_environment`); `calico-dcos devcluster` writes them to a file for `run`."""
    standins = build_cni_standins(artifacts / "cni")
    options: dict[str, dict] = {
        "service": {
            "master": master_url,
            "state": str(workdir / "state"),
            "agent_python": sys.executable,
            "user": getpass.getuser(),
        },
        "rollout": {"stability_seconds": 1, "retry_backoff_seconds": 1},
        "cni": {
            "calico_uri": standins["calico"].as_uri(),
            "calico_ipam_uri": standins["calico-ipam"].as_uri(),
        },
        "etcd": {"run_proxy": False},
        "node": {"health_check_interval_seconds": 1},
        # Without etcd nothing can hold the network's profile.
        "calico": {"default_profile_policy": "plugin-default"},
    }
    if etcd_client:
        tarball = build_etcd_tarball(ETCD_BINARY, artifacts, etcd_version(ETCD_BINARY))
        # calico-v3 on a real etcd 3.4 that also serves v2 (real_etcd(enable_v2=True)), as
        # DC/OS 2.x runs its own: the agents' grpc-proxies for Calico, the etcd itself for
        # Docker's cluster store, and D2iQ's libnetwork binary stood in for.
        options["calico"] = {"profile": "calico-v3", "default_profile_policy": "allow-all"}
        options["etcd"] = {
            "run_proxy": True,
            "cluster_endpoints": etcd_client,
            "cluster_serves_v2": True,
            "binary_uri": tarball.as_uri(),
            "listen_address": "agent-ip",
        }
        options["libnetwork"] = {"binary_uri": build_libnetwork_standin(artifacts).as_uri()}
    return options


def local_environment(
    workdir: Path, master_url: str, artifacts: Path, etcd_client: str | None
) -> dict[str, str]:
    """What `local` sets; the caller's own CALICO_* variables still win."""
    options = devcluster_options(workdir, master_url, artifacts, etcd_client)
    return {
        env_name(f"{section}.{key}"): format_env_value(value)
        for section, values in options.items()
        for key, value in values.items()
    }


def say_what_is_real(env: Mapping[str, str], etcd_client: str | None) -> None:
    click.echo("calico-dcos local: the embedded Mesos cluster runs every step as a real process.")
    click.echo("  stand-ins (a laptop cannot have them):")
    click.echo(f"    calico CNI plugin      {env['CALICO_CNI_CALICO_URI']}")
    click.echo(f"    calico-ipam CNI plugin {env['CALICO_CNI_CALICO_IPAM_URI']}")
    click.echo("    Docker images          container stand-ins (calico/node, libnetwork-plugin)")
    if env.get("CALICO_LIBNETWORK_BINARY_URI"):
        click.echo(f"    libnetwork binary      {env['CALICO_LIBNETWORK_BINARY_URI']}")
    click.echo("    systemctl, docker      host stand-ins acting on each agent's host root")
    if etcd_client:
        click.echo(
            f"  real etcd: {etcd_client} (v3, and v2 for Docker), proxied on every agent by the "
            "etcd-proxy step; profile calico-v3"
        )
    else:
        click.echo(f"  no {ETCD_BINARY}: the etcd-proxy step is disabled")


@click.command()
@click.option(
    "--agents", default=3, show_default=True, type=click.IntRange(min=1), help="Private agents."
)
@click.option(
    "--public-agents", default=1, show_default=True, type=click.IntRange(min=0),
    help="Public agents.",
)  # fmt: skip
@click.option("--options", "options_file", type=click.Path(dir_okay=False), help="JSON or YAML.")
@click.option(
    "--serve", is_flag=True,
    help="Keep the scheduler and its status page up after every agent is done, until Ctrl-C.",
)  # fmt: skip
@click.option(
    "--workdir", type=click.Path(file_okay=False),
    help="Where the agents' host roots, sandboxes, etcd and the log go (it stays). "
    "Default: a new temp dir, removed at the end unless --keep.",
)  # fmt: skip
@click.option(
    "--keep", is_flag=True,
    help="Keep the temp work dir (~200 MB: the agents' host roots and sandboxes, the log).",
)  # fmt: skip
@click.option(
    "--strict", is_flag=True,
    help="DC/OS Enterprise strict mode: the embedded master speaks HTTPS (its own CA) and "
    "wants a DC/OS token; the scheduler logs in as a service account made for the run.",
)  # fmt: skip
def local(
    agents: int,
    public_agents: int,
    options_file: str | None,
    serve: bool,
    workdir: str | None,
    keep: bool,
    strict: bool,
) -> None:
    """Try the framework on this machine (embedded Mesos)."""
    load_or_exit(options_file)  # invalid options stop here, before anything starts
    # Before anything starts: Ctrl-C or SIGTERM at any moment stops every process started.
    signals = StopSignals().install()
    root = Path(workdir or tempfile.mkdtemp(prefix="calico-dcos-local-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        filename=str(root / "scheduler.log"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = run_local(root, agents, public_agents, options_file, serve, strict, signals)
    except KeyboardInterrupt:  # before the progress display, which says so itself
        code = 130
    signals.shield()
    remove = workdir is None and not keep
    click.echo(work_dir_words(root, remove))
    if remove:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(code)


def work_dir_words(root: Path, removed: bool) -> str:
    if removed:
        return f"work dir {root} removed (--keep keeps it: host roots, sandboxes, logs)"
    return f"work dir kept: {root} (host roots, sandboxes, scheduler.log)"


STRICT_UID = "calico-dcos-principal"


def strict_environment(root: Path, cluster) -> dict[str, str]:
    """Strict mode on the embedded cluster: a service account made for this run, its
    credential in a file only this user can read, the master's https:// URL and its CA."""
    credential = root / "service-account.json"
    fd = os.open(credential, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(cluster.create_service_account(STRICT_UID)))
    return {
        "CALICO_SERVICE_STRICT": "true",
        "CALICO_SERVICE_MASTER": cluster.base_url,
        "CALICO_SERVICE_CA_BUNDLE": str(cluster.ca_bundle),
        "CALICO_SERVICE_SERVICE_ACCOUNT_CREDENTIAL_FILE": str(credential),
    }


def run_local(
    root: Path,
    agents: int,
    public_agents: int,
    options_file: str | None,
    serve: bool,
    strict: bool = False,
    signals: StopSignals | None = None,
) -> int:
    """The exit code: see `Progress.follow`. A `KeyboardInterrupt` (the first SIGINT or
    SIGTERM, see `calico_dcos.signals`) may come at any moment; the scheduler, the embedded
    cluster (every task process) and etcd are stopped whatever happens, with `signals`
    shielded so that a second Ctrl-C cannot cut that short."""
    from calico_dcos.devcluster import DevCluster

    (root / "etcd").mkdir(parents=True, exist_ok=True)
    cluster = DevCluster(
        agents=agents, public_agents=public_agents, executor="process",
        workdir=root / "devcluster", allocation_interval=0.2, agent_restart_delay=0.5,
        strict=strict, agent_network="free",
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        try:
            etcd_client = None
            if ETCD_BINARY.exists():
                etcd_client = stack.enter_context(real_etcd(root / "etcd", enable_v2=True))
            stack.callback(cluster.stop)  # before start(): a start cut short is stopped too
            cluster.start()
            env = local_environment(root, cluster.master_url, root / "artifacts", etcd_client)
            if strict:
                env.update(strict_environment(root, cluster))
            say_what_is_real(env, etcd_client)
            if strict:
                click.echo(
                    f"  strict mode: master {cluster.base_url} over HTTPS "
                    f"(CA {cluster.ca_bundle}), "
                    f"logging in as service account {STRICT_UID!r} at {cluster.login_endpoint}"
                )
            options = load_options(options_file, {**env, **os.environ})
            service = start_service(
                options, host="127.0.0.1", port=0, artifacts_dir=root / "artifacts", timings=TIMINGS
            )
            stack.callback(service.stop)
            url = f"http://127.0.0.1:{service.api.port}/"
            click.echo(f"  status page: {url}   work dir: {root}")
            click.echo(f"  scheduler log: {root / 'scheduler.log'}")
            if serve:
                click.echo(
                    "  --serve: the scheduler and the status page stay up after every agent is "
                    "done; Ctrl-C stops them, the embedded cluster and etcd."
                )
            click.echo()
            progress = Progress(service.scheduler, sys.stdout, log_warnings(options))
            code = progress.follow(until_done=not serve, serving=url if serve else "")
        finally:
            if signals is not None:
                signals.shield()  # nothing cuts the clean-up short
    click.echo(stopped_words(url, serve))
    return code


def stopped_words(url: str, serve: bool) -> str:
    """The last words of a run: what stopped (the status page's URL is at the top too)."""
    keep = "" if serve else " (--serve keeps them up until Ctrl-C)"
    return (
        f"stopped: the scheduler and its status page {url}{keep}, the embedded cluster's "
        "task processes and etcd"
    )


class Progress:
    """Each agent's steps on the terminal, with counts and an estimate (`display.PlanDisplay`:
    redrawn in place on a TTY, one line per change otherwise: logs, CI, never a flood)."""

    def __init__(self, scheduler, out, warnings: Sequence[str] = (), console=None) -> None:
        self.scheduler = scheduler
        self.warnings = list(warnings)
        self.display = PlanDisplay(out, console)

    def follow(self, until_done: bool, serving: str = "") -> int:
        """0 when every agent is done (or on Ctrl-C with --serve), 1 if the scheduler failed,
        130 on Ctrl-C before the end. `serving` (the status page's URL, with --serve) is said
        again once every agent is done."""
        with self.display:
            outcome = self._watch(until_done, serving)
        if outcome == "done":
            self.display.print(self.summary_line())
            return 0
        if outcome == "interrupted":
            return 0 if not until_done else 130
        self.display.print(f"scheduler stopped: {self.scheduler.failure or 'interrupted'}")
        return 1 if self.scheduler.failure else 0

    def _watch(self, until_done: bool, serving: str) -> str:
        try:
            while not self.scheduler.wait(REFRESH_SECONDS):
                self.show()
                if not self.scheduler.plan.complete:
                    continue
                if until_done:
                    return "done"
                if serving:
                    self.display.print(done_but_serving(self.summary_line(), serving))
                    serving = ""
        except KeyboardInterrupt:
            return "interrupted"
        self.show()
        return "stopped"

    def summary_line(self) -> str:
        return f"{self.scheduler.summary()['message']} in {duration(self.display.elapsed)}"

    def show(self) -> None:
        self.display.update(self.scheduler.plan_view(), self.scheduler.summary(), self.warnings)


def done_but_serving(summary_line: str, url: str) -> str:
    return f"{summary_line}; still serving the status page at {url} (Ctrl-C stops)"
