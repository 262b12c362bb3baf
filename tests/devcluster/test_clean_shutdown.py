"""Stopping a loop on its own thread leaves no task pending (issue 20: `scheduler.log` ended
with asyncio's "Task was destroyed but it is pending!" after every `calico-dcos local`).

A subscribed framework (its heartbeat task) and a task that never ends stand for what is still
running at the moment the devcluster or the API stops; collecting the stopped loops' tasks
must log nothing.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from aiohttp import web

from calico_dcos.api import ApiServer
from tests.helpers.devcluster import Framework, running_cluster, wait_until


async def _forever() -> None:
    await asyncio.sleep(3600)


def _destroyed_pending(caplog) -> list[str]:
    gc.collect()
    return [r.getMessage() for r in caplog.records if "destroyed" in r.getMessage()]


def test_a_stopped_devcluster_leaves_no_pending_task(caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    with running_cluster() as cluster, Framework(cluster):
        state = cluster.state
        wait_until(lambda: state()["frameworks"], 10, "a subscribed framework")
        cluster.call(cluster.master.spawn, _forever())
        loop = cluster._loop  # the one object that can tell what is left on it
    assert asyncio.all_tasks(loop) == set()
    del cluster, loop
    assert _destroyed_pending(caplog) == []


def test_a_stopped_api_server_leaves_no_pending_task(caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    server = ApiServer(web.Application(), "127.0.0.1", 0).start()
    asyncio.run_coroutine_threadsafe(_spawn_forever(), server._loop).result(5)
    server.stop()
    assert asyncio.all_tasks(server._loop) == set()
    del server
    assert _destroyed_pending(caplog) == []


async def _spawn_forever() -> None:
    asyncio.get_running_loop().create_task(_forever())
