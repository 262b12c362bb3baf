"""`calico-dcos devcluster`: run the embedded Mesos cluster in the foreground.

It also writes the options a scheduler run by hand needs against it (`scheduler-options.yaml`
in its work directory: the master, a state directory, the CNI plugins' stand-ins, and with
Debian's etcd one etcd member on loopback for the etcd-proxy step), so that
`calico-dcos run --options FILE` in another terminal is the whole by-hand path.

Held offers and their RESCIND by hand: `--offer-timeout` is Mesos' `--offer_timeout` (none
by default, as in Mesos; DC/OS sets `MESOS_OFFER_TIMEOUT=2mins`, dcos/dcos
gen/dcos-config.yaml), and `--executor synthetic` with `--synthetic-step-seconds` and
`--synthetic-restart-seconds` makes steps slow enough to watch. `--strict` runs strict mode
and writes its CA bundle and a service account's credential into the options file, as
`calico-dcos local --strict` does (`commands.local.strict_options`).
"""

from __future__ import annotations

import contextlib
import math
import shlex
import signal
import threading
from pathlib import Path

import click
import yaml

from calico_dcos.cli import own_command
from calico_dcos.commands.bench import Seconds
from calico_dcos.devcluster.cluster import DevCluster
from calico_dcos.devcluster.hostroot import has_dcos_calico


@click.command("devcluster")
@click.option(
    "--agents", default=3, show_default=True, type=click.IntRange(min=0), help="Private agents."
)
@click.option(
    "--public-agents",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="Public agents.",
)
@click.option(
    "--dcos-calico-agents",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="More private agents, looking like DC/OS 2.x with Calico already shipped.",
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address the master listens on."
)
@click.option("--port", default=5050, show_default=True, help="Master port (0: any free one).")
@click.option(
    "--executor",
    type=click.Choice(["process", "synthetic"]),
    default="process",
    show_default=True,
    help="Run tasks as real processes, or move them through their states on a timer.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Host roots and sandboxes go here and stay; without it a temporary one is removed.",
)
@click.option(
    "--allocation-interval",
    default=1.0,
    show_default=True,
    type=Seconds(open_minimum=True),
    help="Seconds between offer rounds (Mesos' --allocation_interval; more than 0). The "
    "scheduler learns it from the master (GET_FLAGS).",
)
@click.option(
    "--allocation-seed",
    type=int,
    default=None,
    help="Seed the allocator's agent shuffle, so which role gets an agent is reproducible.",
)
@click.option(
    "--agent-ping-timeout",
    default=75.0,
    show_default=True,
    type=Seconds(),
    help="Seconds before a partitioned agent is marked unreachable (Mesos: 15 s x 5 pings; "
    "at least 0).",
)
@click.option("--zk", default=None, help="Publish the leader record, e.g. 127.0.0.1:2181/mesos.")
@click.option(
    "--offer-timeout",
    type=float,
    default=None,
    callback=lambda ctx, param, value: positive_seconds(param, value),
    help="Seconds before an offer neither accepted nor declined is rescinded (Mesos' "
    "--offer_timeout; none by default, as in Mesos; DC/OS sets 2 minutes).",
)
@click.option(
    "--synthetic-step-seconds",
    type=float,
    default=None,
    callback=lambda ctx, param, value: positive_seconds(param, value),
    help="--executor synthetic: seconds from launch to STARTING and again to RUNNING "
    "[default: 0.05].",
)
@click.option(
    "--synthetic-restart-seconds",
    default=None,
    callback=lambda ctx, param, value: restart_seconds(param, value),
    help="--executor synthetic: the one-shot steps' tasks, RUNNING to FINISHED: seconds, or "
    "per step docker=S,cni=S [default: 0.2].",
)
@click.option(
    "--strict",
    is_flag=True,
    help="DC/OS Enterprise strict mode: HTTPS with its own CA, and every scheduler call needs "
    "a service account's token; the options file written for `run` holds both.",
)
@click.option(
    "--deny-view-framework",
    is_flag=True,
    help="Fault: GET_FRAMEWORKS lists no framework, as for a principal without "
    "VIEW_FRAMEWORK (also POST /devcluster/faults/deny-view-framework).",
)
@click.option(
    "--deny-view-flags",
    is_flag=True,
    help="Fault: GET_FLAGS is refused 403, as for a principal without VIEW_FLAGS, so the "
    "scheduler cannot learn --allocation-interval (also POST "
    "/devcluster/faults/deny-view-flags).",
)
@click.option(
    "--etcd/--no-etcd",
    default=True,
    show_default=True,
    help="Run one etcd member on loopback for the etcd-proxy step (needs Debian's etcd-server).",
)
def devcluster(
    agents: int,
    public_agents: int,
    dcos_calico_agents: int,
    host: str,
    port: int,
    executor: str,
    workdir: Path | None,
    allocation_interval: float,
    allocation_seed: int | None,
    agent_ping_timeout: float,
    zk: str | None,
    offer_timeout: float | None,
    synthetic_step_seconds: float | None,
    synthetic_restart_seconds: dict[str, float] | None,
    strict: bool,
    deny_view_framework: bool,
    deny_view_flags: bool,
    etcd: bool,
) -> None:
    """Run the embedded Mesos master and agents until Ctrl-C (or SIGTERM), and write the
    options for `calico-dcos run` against them."""
    synthetic = {"--synthetic-step-seconds": synthetic_step_seconds,
                 "--synthetic-restart-seconds": synthetic_restart_seconds}  # fmt: skip
    for option, value in synthetic.items():
        if value is not None and executor != "synthetic":
            raise click.UsageError(
                f"{option} is for synthetic tasks: add --executor synthetic, or leave it out "
                "(real processes take the time they take)"
            )
    stopping = stop_on_signals()
    cluster = DevCluster(
        agents=agents,
        public_agents=public_agents,
        dcos_calico_agents=dcos_calico_agents,
        host=host,
        port=port,
        executor=executor,
        workdir=workdir,
        allocation_interval=allocation_interval,
        allocation_seed=allocation_seed,
        agent_ping_timeout=agent_ping_timeout,
        zk=zk,
        agent_network="free",
        offer_timeout=offer_timeout,
        synthetic_step=synthetic_step_seconds,
        synthetic_durations=synthetic_restart_seconds,
        strict=strict,
    ).start()
    with contextlib.ExitStack() as stack:
        stack.callback(cluster.stop)
        if deny_view_framework:  # before any scheduler can ask
            cluster.deny_view_framework()
        if deny_view_flags:
            cluster.deny_view_flags()
        # What `service.master` takes: strict mode talks to the master over TLS only.
        master = f"https://{cluster.master_url}" if strict else cluster.master_url
        click.echo(f"Mesos master: {master}  (state: {cluster.base_url}/master/state)")
        click.echo(f"Work directory: {cluster.workdir}")
        for agent in cluster.agents:
            shipped = "  (DC/OS Calico)" if has_dcos_calico(agent.host_root) else ""
            click.echo(f"  {agent.hostname:<16} {agent.ip:<12} {agent.agent_id}{shipped}")
        click.echo(
            f"Allocation interval: {allocation_interval:g} s (offer rounds; the scheduler "
            "learns it with GET_FLAGS)"
        )
        if offer_timeout:
            click.echo(f"Offer timeout: {offer_timeout:g} s (unused offers are rescinded)")
        if deny_view_framework:
            click.echo("Fault armed: GET_FRAMEWORKS lists no framework (no VIEW_FRAMEWORK)")
        if deny_view_flags:
            click.echo("Fault armed: GET_FLAGS is refused 403 (no VIEW_FLAGS)")
        member = stack.enter_context(maybe_etcd(cluster.workdir, etcd))
        path, api_port = write_scheduler_options(cluster, member)
        click.echo(f"etcd: {member.client if member else 'none (the etcd-proxy step is off)'}")
        if strict:
            from calico_dcos.commands.local import STRICT_UID

            click.echo(
                f"Strict mode: HTTPS, CA bundle {cluster.ca_bundle}; service account "
                f"{STRICT_UID!r} (login at {cluster.login_endpoint}), its credential in "
                f"{cluster.workdir / 'scheduler' / 'service-account.json'} (mode 0600); the "
                "options file names both (service.ca_bundle, "
                "service.service_account_credential_file)"
            )
        click.echo("To run the scheduler against this cluster, in another terminal:")
        click.echo(f"  {own_command()} run --options {shlex.quote(str(path))}")
        click.echo(f"  (status page: http://127.0.0.1:{api_port}/; Ctrl-C stops it)")
        click.echo("Ctrl-C here stops the cluster.")
        stopping.wait()
        click.echo("Stopping.")


@contextlib.contextmanager
def maybe_etcd(workdir: Path, wanted: bool):
    """One etcd member on loopback (`commands.local.LocalEtcd`), or None without Debian's etcd."""
    from calico_dcos.commands.local import ETCD_BINARY, LocalEtcd, free_port, real_etcd

    if not wanted or not ETCD_BINARY.exists():
        yield None
        return
    (workdir / "etcd").mkdir(parents=True, exist_ok=True)
    peer = f"http://127.0.0.1:{free_port()}"
    with real_etcd(workdir / "etcd", enable_v2=True, peer=peer) as client:
        yield LocalEtcd(client, peer)


def write_scheduler_options(cluster: DevCluster, etcd) -> tuple[Path, int]:
    """`scheduler-options.yaml` in the work directory, for `calico-dcos run --options`: what
    `calico-dcos local` gives its scheduler with the default profile
    (`commands.local.devcluster_options`), the master, and an API port free now, which agents
    fetch the installer from on loopback."""
    from calico_dcos.commands.local import (
        build_standins,
        devcluster_options,
        free_port,
        strict_options,
    )

    workdir = cluster.workdir
    scheduler = workdir / "scheduler"
    uris = build_standins(scheduler / "artifacts", etcd is not None)
    ips = [agent.ip for agent in cluster.agents]
    options = devcluster_options({}, scheduler, uris, etcd, ips)
    port = free_port()
    options["service"] = {
        "master": cluster.master_url,
        **options["service"],
        "api_port": port,
        "artifacts_url": f"http://127.0.0.1:{port}",
    }
    if cluster.pki is not None:  # strict: a service account made now, as `local --strict`
        for dotted, value in strict_options(scheduler, cluster).items():
            section, key = dotted.split(".", 1)
            options.setdefault(section, {})[key] = value
    path = workdir / "scheduler-options.yaml"
    header = "# Written by `calico-dcos devcluster` for `calico-dcos run --options` against it.\n"
    if etcd is not None:  # what `local` sets for calico-v3 (devcluster_options)
        v3 = devcluster_options({"calico": {"profile": "calico-v3"}}, scheduler, uris, etcd, ips)
        header += (
            "# For calico-v3 (Calico v3.14 as DC/OS 2.x runs it), set calico.profile: calico-v3,\n"
            f"# etcd.cluster_endpoints: {v3['etcd']['cluster_endpoints']} (the member's client "
            "URL, not its peer URL),\n"
            "# etcd.cluster_serves_v2: true and libnetwork.binary_uri: "
            f"{v3['libnetwork']['binary_uri']}\n"
        )
    path.write_text(header + yaml.safe_dump(options, sort_keys=False))
    return path, port


def positive_seconds(param: click.Parameter, value: float | None) -> float | None:
    """A duration that must be more than zero when given (apache/mesos src/master/master.cpp
    refuses `--offer_timeout` <= 0: "Must be greater than zero")."""
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise click.BadParameter(
            f"must be a number of seconds greater than zero, not {value:g}; leave it out "
            "for the default",
            param=param,
        )
    return value


def restart_seconds(param: click.Parameter, text: str | None) -> dict[str, float] | None:
    """`--synthetic-restart-seconds`, read as the bench reads its `--restart-seconds`
    (`commands.bench.parse_restart_seconds`: finite, at least 0): the synthetic executor's
    durations by task name; an error names this option, not the bench's."""
    if text is None:
        return None
    from calico_dcos.commands.bench import parse_restart_seconds

    try:
        return parse_restart_seconds(text)
    except click.BadParameter as exc:
        exc.param, exc.param_hint = param, None
        raise


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, installed before anything starts, so that a signal
    at any moment stops the cluster cleanly (and removes a temporary workdir)."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    return stopping
