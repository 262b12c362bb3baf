"""Shutting down an asyncio loop that runs on its own thread (the API's, the devcluster's)."""

from __future__ import annotations

import asyncio


async def cancel_the_rest() -> None:
    """Cancel every other task of the running loop and wait until each has ended, as
    `asyncio.run` does before it closes its loop: a loop stopped with a task still pending
    (a health check cancelled but not yet run, a heartbeat) logs "Task was destroyed but it
    is pending!" when that task is collected."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
