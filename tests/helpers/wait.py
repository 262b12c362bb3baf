"""The tests' one way to wait: poll a predicate until it holds, or fail saying for what.

Tests wait on events, never for a fixed time; `wait_until_async` is the same wait for code
running on an asyncio loop (the devcluster's executors), where blocking would stop the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


def _timed_out(timeout: float, what: str, predicate: Callable) -> AssertionError:
    """The failure; a predicate with an `explain()` adds what it saw at the timeout (e.g.
    the plan's own words on why it has not converged), so that a rare failure under load can
    be understood from CI's output alone."""
    explain = getattr(predicate, "explain", None)
    seen = f"; at the timeout: {explain()}" if explain is not None else ""
    return AssertionError(f"timed out after {timeout} s waiting for {what or predicate}{seen}")


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> Any:
    """Poll `predicate` every `interval` seconds until truthy and return its value; fail
    with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, predicate)
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "", interval: float = 0.02
) -> Any:
    """`wait_until` on an asyncio loop: the loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, predicate)
        await asyncio.sleep(interval)
