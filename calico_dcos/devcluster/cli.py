"""`calico-dcos devcluster`: run the embedded Mesos cluster in the foreground."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from calico_dcos.devcluster.cluster import DevCluster
from calico_dcos.devcluster.hostroot import has_dcos_calico


@click.command("devcluster")
@click.option("--agents", default=3, show_default=True, help="Private agents.")
@click.option("--public-agents", default=1, show_default=True, help="Public agents.")
@click.option(
    "--dcos-calico-agents",
    default=0,
    show_default=True,
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
    help="Seconds between offer rounds (Mesos' --allocation_interval).",
)
@click.option("--zk", default=None, help="Publish the leader record, e.g. 127.0.0.1:2181/mesos.")
def devcluster(
    agents: int,
    public_agents: int,
    dcos_calico_agents: int,
    host: str,
    port: int,
    executor: str,
    workdir: Path | None,
    allocation_interval: float,
    zk: str | None,
) -> None:
    """Run the embedded Mesos master and agents until Ctrl-C (or SIGTERM)."""
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
        zk=zk,
    ).start()
    click.echo(f"Mesos master: {cluster.master_url}  (state: {cluster.base_url}/master/state)")
    click.echo(f"Work directory: {cluster.workdir}")
    for agent in cluster.agents:
        shipped = "  (DC/OS Calico)" if has_dcos_calico(agent.host_root) else ""
        click.echo(f"  {agent.hostname:<16} {agent.ip:<12} {agent.agent_id}{shipped}")
    try:
        stopping.wait()
        click.echo("Stopping.")
    finally:
        cluster.stop()


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, installed before anything starts, so that a signal
    at any moment stops the cluster cleanly (and removes a temporary workdir)."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    return stopping
