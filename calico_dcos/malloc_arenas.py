"""Fewer glibc malloc arenas for the scheduler's process (issue 17, peak RSS).

glibc gives threads that contend for malloc arenas of their own, up to 8 per online CPU on
64-bit systems (glibc `malloc/arena.c`, `NARENAS_FROM_NCORES`; mallopt(3), `M_ARENA_MAX`).
Memory freed into one arena serves only that arena's later requests, so every thread that
once held a large buffer keeps its own peak: here pymesos' event thread (256 KiB reads,
event JSON of ~1 MB at 1,000 agents), the group committer (SQLite), four libcurl sender
lanes and the master-agents reader. With `M_ARENA_MAX` 2 the scheduler's peak RSS grew
~21 KiB per agent between 100 and 1,000 agents instead of ~23-25 (README, Performance).

mallopt(3) `M_ARENA_MAX` (glibc >= 2.10) is the call form of the `MALLOC_ARENA_MAX`
environment variable (the `glibc.malloc.arena_max` tunable in glibc >= 2.26). It is set in
the process rather than in Marathon's `env`, so that `calico-dcos run` behaves the same
wherever it is started (and the bench measures what runs on DC/OS); an operator's own
`MALLOC_ARENA_MAX` or `GLIBC_TUNABLES` wins. Nothing happens on another C library.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Mapping

LOG = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc/malloc.h
ARENAS = 2  # the main arena and one for every other thread


def limit_arenas(environ: Mapping[str, str] = os.environ, arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas` (call before the scheduler's threads start).
    True when set; False on another C library, when the operator set the limit, or when
    glibc refuses (mallopt returns 0)."""
    if "MALLOC_ARENA_MAX" in environ or "arena_max" in environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        done = libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)) == 1
    except (OSError, AttributeError):
        return False
    if not done:
        LOG.info("glibc refused M_ARENA_MAX %d; malloc keeps its default arenas", arenas)
    return done
