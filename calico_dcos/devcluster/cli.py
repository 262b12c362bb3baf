"""`calico-dcos devcluster`: run the embedded Mesos cluster in the foreground."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from calico_dcos.devcluster.cluster import DevCluster


@click.command("devcluster")
@click.option("--agents", default=3, show_default=True, help="Private agents.")
@click.option("--public-agents", default=1, show_default=True, help="Public agents.")
@click.option("--host", default="127.0.0.1", show_default=True)
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
@click.option("--allocation-interval", default=1.0, show_default=True, help="Seconds.")
@click.option("--zk", default=None, help="Publish the leader record, e.g. 127.0.0.1:2181/mesos.")
def devcluster(
    agents: int,
    public_agents: int,
    host: str,
    port: int,
    executor: str,
    workdir: Path | None,
    allocation_interval: float,
    zk: str | None,
) -> None:
    """Run the embedded Mesos master and agents until Ctrl-C."""
    cluster = DevCluster(
        agents=agents,
        public_agents=public_agents,
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
        click.echo(f"  {agent.hostname:<16} {agent.ip:<12} {agent.agent_id}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        cluster.stop()
