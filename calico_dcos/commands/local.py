"""`calico-dcos local`: the whole framework on this machine, on the embedded Mesos cluster.

The devcluster runs each step as a real process against a simulated host root per agent.
What a laptop cannot have is replaced by stand-ins, and the screen says so: the `calico` and
`calico-ipam` CNI plugins (small scripts, served as file:// URIs) and the Docker images
(container stand-ins of the devcluster). etcd is real whenever `/usr/bin/etcd` exists: one
member on loopback, and the etcd-proxy step runs the same binary on every agent. The agents'
Python is this one; the devcluster points the installer at each agent's host root.

Options: what `local` picks for this machine (`devcluster_options`) lies under the user's
own (`--options FILE`, then CALICO_* variables), which always win; only the embedded master
(and --strict's settings) is `local`'s (`local_owned`), and a user's value for it is an
error naming it. The banner is built from the options the scheduler then runs with.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import click
import requests

from calico_dcos import logs, matrix
from calico_dcos.artifacts import (
    build_cni_standins,
    build_etcd_tarball,
    build_libnetwork_standin,
    etcd_version,
)
from calico_dcos.commands.bench import Seconds
from calico_dcos.commands.run import EXIT_INVALID_OPTIONS, log_warnings
from calico_dcos.display import REFRESH_SECONDS, PlanDisplay, duration
from calico_dcos.options import Options, OptionsError, load_options, option_spec
from calico_dcos.service import start_service
from calico_dcos.signals import StopSignals
from calico_dcos.store import StoreError, open_store

LOG = logging.getLogger("calico_dcos.local")
ETCD_BINARY = Path("/usr/bin/etcd")
TIMINGS = {"wait_refuse_seconds": 1.0, "revive_interval_seconds": 0.5}
# The embedded master's offer rounds, in seconds (`--allocation-interval`): 5 times Mesos'
# 1 s (apache/mesos src/master/constants.hpp, DEFAULT_ALLOCATION_INTERVAL), so that a declined
# or unused offer comes back within 0.2 s and a laptop run is not paced by a real cluster's
# rounds; the scheduler learns it from the master (GET_FLAGS) as on a real cluster.
ALLOCATION_INTERVAL = 0.2


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


class LocalEtcd(NamedTuple):
    """The etcd member on loopback (`real_etcd`): its client URL, and its peer URL, which is
    what etcd's v2 proxy is given (`--initial-cluster`: the members' peer URLs)."""

    client: str
    peer: str


def build_standins(artifacts: Path, with_etcd: bool) -> dict[str, str]:
    """The stand-ins agents fetch, as `{option: file:// URI}`: the CNI plugins, D2iQ's
    libnetwork binary (calico-v3's) and, with a real etcd, the tarball the etcd-proxy step
    unpacks, packed from this machine's etcd and named after its version."""
    cni = build_cni_standins(artifacts / "cni")
    uris = {
        "cni.calico_uri": cni["calico"].as_uri(),
        "cni.calico_ipam_uri": cni["calico-ipam"].as_uri(),
        "libnetwork.binary_uri": build_libnetwork_standin(artifacts).as_uri(),
    }
    if with_etcd:
        tarball = build_etcd_tarball(ETCD_BINARY, artifacts, etcd_version(ETCD_BINARY))
        uris["etcd.binary_uri"] = tarball.as_uri()
    return uris


def _given(given: Mapping, option: str) -> Any:
    """The user's value of `option` (file or CALICO_* variable), else the schema's default."""
    section, key = option.split(".", 1)
    values = given.get(section)
    if isinstance(values, dict) and key in values:
        return values[key]
    return option_spec(option)["default"]


def devcluster_options(
    given: Mapping,
    workdir: Path,
    uris: Mapping[str, str],
    etcd: LocalEtcd | None,
    agent_ips: Sequence[str],
) -> dict[str, dict]:
    """What a scheduler on this machine needs against the embedded cluster, for the options
    the user leaves out (`given`: what they set, in a file or CALICO_* variables, which wins
    over all of this; `options.load_options`' `defaults`): a state directory, the agents'
    Python (this one), the stand-ins (`build_standins`), short waits so that a rollout takes
    seconds, and with a real etcd (`etcd`) the etcd-proxy step and the network's allow-all
    profile. The master is not here: `local_owned` (the embedded cluster's, whatever the
    user says); `calico-dcos devcluster` adds it to the file it writes for `run`.

    The etcd settings follow the profile the user picks (calico.profile; its default,
    calico-2.6, when they pick none) and etcd.run_proxy:
    - calico-2.6: etcd's v2 proxy on each agent, given the member's peer URL (etcd 3.4's v2
      proxy cannot find members by DNS SRV, the package's default: matrix.ETCD_SRV_BUG).
    - calico-v3: grpc-proxy on each agent, given the member's client URL; the member serves
      v2 too (as DC/OS 2.x's etcd does) for Docker's cluster store; D2iQ's libnetwork binary.
    - Every agent's proxy listens on its own loopback address (they share this machine), so
      Calico's etcd.endpoints lists every agent's proxy, each of which reaches the member;
      without the proxy step, the member itself.
    """
    options: dict[str, dict] = {
        "service": {
            "state": str(workdir / "state"),
            "agent_python": sys.executable,
            "user": getpass.getuser(),
        },
        "rollout": {"stability_seconds": 1, "retry_backoff_seconds": 1},
        "cni": {
            "calico_uri": uris["cni.calico_uri"],
            "calico_ipam_uri": uris["cni.calico_ipam_uri"],
        },
        "etcd": {"run_proxy": False},
        "node": {"health_check_interval_seconds": 1},
        # Without etcd nothing can hold the network's profile.
        "calico": {"default_profile_policy": "plugin-default"},
    }
    if etcd is None:
        return options
    v3 = _given(given, "calico.profile") == "calico-v3"
    run_proxy = _given(given, "etcd.run_proxy") is not False
    port = _given(given, "etcd.listen_port")
    proxies = ",".join(f"http://{ip}:{port}" for ip in agent_ips)
    options["calico"]["default_profile_policy"] = "allow-all"
    options["etcd"] = {
        "run_proxy": True,
        "binary_uri": uris["etcd.binary_uri"],
        "listen_address": "agent-ip",
        "cluster_endpoints": etcd.client if v3 else etcd.peer,
        "endpoints": proxies if run_proxy else etcd.client,
    }
    if v3:
        options["etcd"]["cluster_serves_v2"] = True
        options["libnetwork"] = {"binary_uri": uris["libnetwork.binary_uri"]}
    return options


def local_owned(master_url: str, strict: dict[str, str] | None) -> dict[str, tuple[Any, str]]:
    """The options `local` must set itself (`options.load_options`' `owned`): the embedded
    cluster's master, and strict mode only with --strict (its service account and CA are
    made for the run). A user's value for one is an error naming it."""
    why = (
        "calico-dcos local runs the scheduler against its own embedded Mesos master; leave "
        "it out (`calico-dcos run` runs against another master)"
    )
    owned: dict[str, tuple[Any, str]] = {"service.master": (master_url, why)}
    if strict is None:
        owned["service.strict"] = (
            False,
            "calico-dcos local's embedded master is strict only with --strict; use that flag",
        )
        return owned
    made = "calico-dcos local --strict makes it for the run; leave it out"
    for option, value in strict.items():
        owned[option] = (value, made)
    return owned


def local_options(
    options_file: str | None,
    environ: Mapping[str, str],
    root: Path,
    uris: Mapping[str, str],
    master_url: str,
    etcd: LocalEtcd | None,
    agent_ips: Sequence[str],
    strict: dict[str, str] | None = None,
) -> Options:
    """The scheduler's options: the user's (file, then CALICO_* variables) over `local`'s
    (`devcluster_options`), with the master (and strict mode's settings) `local`'s own."""
    return load_options(
        options_file,
        environ,
        defaults=lambda given: devcluster_options(given, root, uris, etcd, agent_ips),
        owned=local_owned(master_url, strict),
    )


def say_what_is_real(
    options: Options,
    cluster_url: str,
    agents: Sequence,
    etcd: LocalEtcd | None,
    allocation_interval: float = ALLOCATION_INTERVAL,
) -> None:
    """The banner, from the options the scheduler runs with (the user's overrides included):
    what is real, what stands in for what, and where the embedded master is."""
    profile = matrix.profile_of(options)
    default = option_spec("calico.profile")["default"]
    click.echo("calico-dcos local: the embedded Mesos cluster runs every step as a real process.")
    click.echo(
        f"  profile {profile.name} (Calico {'.'.join(map(str, profile.calico))})"
        + (", the default" if profile.name == default else "")
    )
    click.echo("  stand-ins (a laptop cannot have them):")
    click.echo(f"    calico CNI plugin      {options['cni']['calico_uri']}")
    click.echo(f"    calico-ipam CNI plugin {options['cni']['calico_ipam_uri']}")
    binary = options["libnetwork"]["enable"] and not matrix.libnetwork_image(options)
    images = "calico/node" if binary else "calico/node, libnetwork-plugin"
    click.echo(f"    Docker images          container stand-ins ({images})")
    if binary:
        click.echo(f"    libnetwork binary      {matrix.libnetwork_binary(options).uri}")
    click.echo("    systemctl, docker      host stand-ins acting on each agent's host root")
    etcd_options = options["etcd"]
    if etcd is None:
        click.echo(f"  no {ETCD_BINARY}: the etcd-proxy step is off")
    elif etcd_options["run_proxy"]:
        click.echo(
            f"  real etcd: {etcd.client} (v2 and v3 APIs), proxied on every agent by the "
            f"etcd-proxy step ({matrix.proxy_mode(options)} proxy to "
            f"{etcd_options['cluster_endpoints']})"
        )
    else:
        click.echo(f"  real etcd: {etcd.client}; the etcd-proxy step is off (etcd.run_proxy)")
    click.echo(f"  Calico's etcd.endpoints: {etcd_options['endpoints']}")
    click.echo(
        f"  Mesos master: {options['service']['master']}  (state: {cluster_url}/master/state)"
    )
    click.echo(
        f"  allocation interval: {allocation_interval:g} s (the master's offer rounds, "
        "--allocation-interval; Mesos' default is 1 s; the scheduler learns it with GET_FLAGS)"
    )
    for agent in agents:
        click.echo(f"    {agent.hostname:<16} {agent.ip:<15} {agent.agent_id}")
    click.echo(
        f"  agent faults: POST {cluster_url}/devcluster/agents/<agent id>/"
        'remove|restart|partition|heal (README: "Trying faults")'
    )


@click.command()
@click.option(
    "--agents", default=3, show_default=True, type=click.IntRange(min=1), help="Private agents."
)
@click.option(
    "--public-agents", default=1, show_default=True, type=click.IntRange(min=0),
    help="Public agents.",
)  # fmt: skip
@click.option(
    "--options", "options_file", type=click.Path(dir_okay=False),
    help="JSON or YAML. Its options, and your CALICO_* variables (which beat it), win over "
    "what local picks for this machine; service.master is the embedded master's.",
)  # fmt: skip
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
@click.option(
    "--allocation-interval", type=Seconds(open_minimum=True), default=ALLOCATION_INTERVAL,
    show_default=True,
    help="Seconds between the embedded master's offer rounds (Mesos' --allocation_interval; "
    "more than 0). The default is shorter than Mesos' 1 s so that declined or unused offers "
    "come back quickly on a laptop; give 1 to see a real cluster's pace. The scheduler "
    "learns it from the master (GET_FLAGS).",
)  # fmt: skip
def local(
    agents: int,
    public_agents: int,
    options_file: str | None,
    serve: bool,
    workdir: str | None,
    keep: bool,
    strict: bool,
    allocation_interval: float,
) -> None:
    """Try the framework on this machine (embedded Mesos)."""
    # Before anything starts: Ctrl-C or SIGTERM at any moment stops every process started.
    signals = StopSignals().install()
    root: Path | None = None  # until the work dir exists, a stop has nothing to clean up
    remove = workdir is None and not keep
    try:
        root = Path(workdir or tempfile.mkdtemp(prefix="calico-dcos-local-")).resolve()
        root.mkdir(parents=True, exist_ok=True)
        logs.configure(logging.INFO, filename=str(root / "scheduler.log"))
        uris = build_standins(root / "artifacts", ETCD_BINARY.exists())
        check_options_first(options_file, root, uris, strict)
        code = run_local(
            root, agents, public_agents, options_file, serve, strict, signals, uris=uris,
            allocation_interval=allocation_interval,
        )  # fmt: skip
    except OptionsError as exc:  # before anything started
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
        for line in exc.lines():
            click.echo(line, err=True)
        sys.exit(EXIT_INVALID_OPTIONS)
    except KeyboardInterrupt:  # before anything started (run_local handles its own)
        signals.shield()
        code = interrupted_code(serve, signals)
        click.echo(stopped_words("", serve))
        if root is None:  # stopped before the work dir was made: nothing to say of it
            sys.exit(code)
    signals.shield()
    click.echo(work_dir_words(root, remove))
    if remove:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(code)


def check_options_first(
    options_file: str | None, root: Path, uris: Mapping[str, str], strict: bool
) -> None:
    """Invalid options stop `local` before anything starts: the same options as the run's
    (`local_options`), with stand-in values for what is known only once the cluster and
    etcd are up (their addresses: what `local` sets there is never the user's)."""
    etcd = (
        LocalEtcd("http://127.0.0.1:2379", "http://127.0.0.1:2380")
        if "etcd.binary_uri" in uris
        else None
    )
    master = "https://127.0.0.1:5050" if strict else "127.0.0.1:5050"
    strict_options = strict_settings(root, master, root / "ca.crt") if strict else None
    local_options(options_file, os.environ, root, uris, master, etcd, ["127.0.0.1"], strict_options)


def work_dir_words(root: Path, removed: bool) -> str:
    if removed:
        return f"work dir {root} removed (--keep keeps it: host roots, sandboxes, logs)"
    return f"work dir kept: {root} (host roots, sandboxes, scheduler.log)"


STRICT_UID = "calico-dcos-principal"


def strict_settings(root: Path, master: str, ca_bundle: Path) -> dict[str, Any]:
    """Strict mode's options on the embedded cluster (`local_owned`)."""
    return {
        "service.strict": True,
        "service.master": master,
        "service.ca_bundle": str(ca_bundle),
        "service.service_account_credential_file": str(root / "service-account.json"),
    }


def strict_options(root: Path, cluster) -> dict[str, Any]:
    """Strict mode on the embedded cluster: a service account made for this run, its
    credential in a file only this user can read, the master's https:// URL and its CA."""
    settings = strict_settings(root, cluster.base_url, cluster.ca_bundle)
    credential = settings["service.service_account_credential_file"]
    fd = os.open(credential, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(cluster.create_service_account(STRICT_UID)))
    return settings


def run_local(
    root: Path,
    agents: int,
    public_agents: int,
    options_file: str | None,
    serve: bool,
    strict: bool = False,
    signals: StopSignals | None = None,
    uris: Mapping[str, str] | None = None,
    allocation_interval: float = ALLOCATION_INTERVAL,
) -> int:
    """The exit code: see `Progress.follow`. `allocation_interval`: the embedded master's
    seconds between offer rounds (`ALLOCATION_INTERVAL`). A `KeyboardInterrupt` (the first SIGINT or
    SIGTERM, see `calico_dcos.signals`) may come at any moment; the scheduler, the embedded
    cluster (every task process) and etcd are stopped whatever happens, with `signals`
    shielded so that a second Ctrl-C cannot cut that short, and the run ends as
    `Progress.follow` ends an interrupted one (`interrupted_code`), with the "stopped:" line:
    not only while the progress display follows the plan, but also while the cluster, etcd
    or the scheduler start, between the banner and the display, or as the clean-up begins."""
    from calico_dcos.devcluster import DevCluster

    if uris is None:
        uris = build_standins(root / "artifacts", ETCD_BINARY.exists())
    (root / "etcd").mkdir(parents=True, exist_ok=True)
    cluster = DevCluster(
        agents=agents, public_agents=public_agents, executor="process",
        workdir=root / "devcluster", allocation_interval=allocation_interval,
        agent_restart_delay=0.5,
        strict=strict, agent_network="free",
    )  # fmt: skip
    url = ""  # the status page's, once the scheduler is up
    try:
        with contextlib.ExitStack() as stack:
            try:
                etcd = None
                if "etcd.binary_uri" in uris:
                    peer = f"http://127.0.0.1:{free_port()}"
                    client = stack.enter_context(
                        real_etcd(root / "etcd", enable_v2=True, peer=peer)
                    )
                    etcd = LocalEtcd(client, peer)
                stack.callback(cluster.stop)  # before start(): a start cut short is stopped too
                cluster.start()
                settings = strict_options(root, cluster) if strict else None
                master = cluster.base_url if strict else cluster.master_url
                ips = [agent.ip for agent in cluster.agents]
                options = local_options(
                    options_file, os.environ, root, uris, master, etcd, ips, settings
                )
                say_what_is_real(
                    options, cluster.base_url, cluster.agents, etcd, allocation_interval
                )
                if strict:
                    click.echo(
                        f"  strict mode: master {cluster.base_url} over HTTPS "
                        f"(CA {cluster.ca_bundle}), "
                        f"logging in as service account {STRICT_UID!r} at "
                        f"{cluster.login_endpoint}"
                    )
                try:
                    earlier = set_aside_earlier_state(
                        options["service"]["state"], root, [a.agent_id for a in cluster.agents]
                    )
                    if earlier:
                        click.echo(earlier)
                    service = start_service(
                        options, host="127.0.0.1", port=options["service"]["api_port"],
                        artifacts_dir=root / "artifacts", timings=TIMINGS,
                    )  # fmt: skip
                except StoreError as exc:  # it says what to do; everything started stops
                    click.echo(f"calico-dcos local: {exc}", err=True)
                    return 1
                stack.callback(service.stop)
                if getattr(service.store, "migrated", ""):
                    click.echo(f"  state: {service.store.migrated}")
                url = f"http://127.0.0.1:{service.api.port}/"
                click.echo(f"  status page: {url}   work dir: {root}")
                click.echo(f"  scheduler log: {root / 'scheduler.log'}")
                if serve:
                    click.echo(
                        "  --serve: the scheduler and the status page stay up after every agent "
                        "is done; Ctrl-C stops them, the embedded cluster and etcd."
                    )
                click.echo()
                progress = Progress(
                    service.scheduler, sys.stdout, log_warnings(options), signals=signals
                )
                code = progress.follow(until_done=not serve, serving=url if serve else "")
            except KeyboardInterrupt:  # outside the display's own watch (which says so itself)
                code = interrupted_code(serve, signals)
            finally:
                if signals is not None:
                    signals.shield()  # nothing cuts the clean-up short
    except KeyboardInterrupt:
        # The first stop signal landed as the clean-up began (after `follow` returned, before
        # the shield): every callback still ran, as `ExitStack` runs them all for an exception.
        code = interrupted_code(serve, signals)
    click.echo(stopped_words(url, serve))
    return code


def earlier_cluster(stored: Iterable[str], current: Iterable[str]) -> bool:
    """Whether a state's agents (their agent IDs) are another cluster's than the running
    one's: it holds agents and none of them is in this cluster. A Mesos agent ID is the
    master's ID, `-S` and a number (apache/mesos src/master/master.cpp, `newSlaveId`), and
    the embedded master's ID is new at every start (`devcluster.master.Master`), so the
    state of an earlier `local` on the same --workdir names agents with the same names under
    IDs no agent has any more: resumed, its plan would list each name twice, once waiting
    and once gone."""
    stored = set(stored)
    return bool(stored) and not stored & set(current)


def set_aside_earlier_state(state: str, root: Path, agent_ids: Sequence[str]) -> str:
    """Before the scheduler starts: when `state` is `local`'s own state directory
    (`devcluster_options`; a state the user chose is left as it is) and it holds an earlier
    embedded cluster's agents (`earlier_cluster`), move it aside, next to it, and start a
    fresh plan; the line to print then ("" when there was nothing to do). StoreError as
    `open_store` raises it."""
    own = root / "state"
    if Path(state) != own or not own.exists():
        return ""
    store = open_store(str(own))
    try:
        # a scheduler still running on it (another `local` on this --workdir) keeps it:
        # the scheduler's own start then says who holds it
        if not store.try_acquire_leadership(lambda: None):
            return ""
        stored = store.load_agents()
        store.release_leadership()
    finally:
        store.close()
    if not earlier_cluster(stored, agent_ids):
        return ""
    aside = own.with_name(f"state.earlier-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    n = 1
    while aside.exists():  # two restarts within a second
        n += 1
        aside = aside.with_name(f"{aside.name.split('~')[0]}~{n}")
    own.rename(aside)
    agents = "1 agent" if len(stored) == 1 else f"{len(stored)} agents"
    return (
        f"  state: {own} held the plan of an earlier embedded cluster ({agents}, none in this "
        f"one: every start makes a new cluster, with new agent IDs); moved to {aside.name}, "
        "and this run starts a fresh plan"
    )


def interrupted_code(serve: bool, signals: StopSignals | None = None) -> int:
    """The exit code of a run a stop signal ended: 0 with --serve (Ctrl-C is how it ends),
    else 128 + the signal's number (stopped before every agent was done): 130 for SIGINT
    (Ctrl-C), 143 for SIGTERM, as a shell reports a command a signal ended (POSIX, "Shell
    Command Language" 2.8.2: "greater than 128"; bash and dash use 128 + n). SIGINT when no
    signal was recorded (a KeyboardInterrupt of Python's own)."""
    if serve:
        return 0
    received = signals.received if signals is not None else None
    return 128 + (received or signal.SIGINT)


def stopped_words(url: str, serve: bool) -> str:
    """The last words of a run: what stopped (the status page's URL is at the top too).
    `url` is "" when a stop signal came before the scheduler was up."""
    if not url:
        return (
            "stopped: before the scheduler started; the embedded cluster's task processes and "
            "etcd, if any"
        )
    keep = "" if serve else " (--serve keeps them up until Ctrl-C)"
    return (
        f"stopped: the scheduler and its status page {url}{keep}, the embedded cluster's "
        "task processes and etcd"
    )


class Progress:
    """Each agent's steps on the terminal, with counts and an estimate (`display.PlanDisplay`:
    redrawn in place on a TTY, one line per change otherwise: logs, CI, never a flood).
    Warnings: the options' (`warnings`, fixed for the run) and the scheduler's own as they
    come and go (`Scheduler.warnings`, as `/v1/status` has them: e.g. the master's
    --allocation_interval not learned); an agent that leaves the cluster is shown removed,
    with when (`Scheduler.lost_at`)."""

    def __init__(
        self,
        scheduler,
        out,
        warnings: Sequence[str] = (),
        console=None,
        signals: StopSignals | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.signals = signals  # which stop signal ended the run, for its exit code
        self.warnings = list(warnings)
        self.display = PlanDisplay(out, console, lost_at=scheduler.lost_at)

    def follow(self, until_done: bool, serving: str = "") -> int:
        """0 when every agent is done (or on Ctrl-C with --serve), 1 if the scheduler failed,
        130 on Ctrl-C (143 on SIGTERM) before the end. `serving` (the status page's URL, with
        --serve) is said again once every agent is done."""
        with self.display:
            outcome = self._watch(until_done, serving)
        if outcome == "done":
            self.display.print(self.summary_line())
            return 0
        if outcome == "interrupted":
            return interrupted_code(not until_done, self.signals)
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
        warnings = self.warnings + [w for w in self.scheduler.warnings() if w not in self.warnings]
        self.display.update(self.scheduler.plan_view(), self.scheduler.summary(), warnings)


def done_but_serving(summary_line: str, url: str) -> str:
    return f"{summary_line}; still serving the status page at {url} (Ctrl-C stops)"
