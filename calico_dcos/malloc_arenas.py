"""glibc malloc settings for the scheduler's process (issue 17, peak RSS): fewer arenas, and
large chunks mmapped so that they go back to the system when freed.

Fewer arenas (`limit_arenas`). glibc gives threads that contend for malloc arenas of their
own, up to 8 per online CPU on 64-bit systems (glibc `malloc/arena.c`,
`NARENAS_FROM_NCORES`; mallopt(3), `M_ARENA_MAX`). Memory freed into one arena serves only
that arena's later requests, so every thread that once held a large buffer keeps its own
peak: here pymesos' event thread (256 KiB reads, event JSON of ~1 MB at 1,000 agents), the
group committer (SQLite), four libcurl sender lanes and the master-agents reader. With
`M_ARENA_MAX` 2 the scheduler's peak RSS grew ~21 KiB per agent between 100 and 1,000
agents instead of ~23-25 (README, Performance).

Large chunks mmapped (`mmap_large_chunks`). glibc serves a request of `M_MMAP_THRESHOLD`
bytes or more with its own mmap, unmapped when freed ("This way it is guaranteed that the
memory for these chunks can be returned to the system on free": the glibc manual, "Malloc
Tunable Parameters"). By default the threshold starts at 128 KiB and rises to the size of
every larger mmapped chunk freed, up to 32 MiB (glibc `malloc/malloc.c`, `__libc_free`),
so after a few large transient buffers (an event's text, the decoder's work space, a
SQLite statement's result) all later ones come from the heap, between long-lived objects,
and their pages stay with the process. Setting the threshold disables that adjustment (the
same manual page). 512 KiB keeps pymesos' 256 KiB reads (`driver.EVENT_RECV_BYTES`) in the
heap, where each read reuses the last one's pages rather than faulting in new ones.
Measured with `calico-dcos bench --agents 100,1000` (README, Performance).

Both are mallopt(3) calls (glibc >= 2.10 for `M_ARENA_MAX`), the call forms of the
`MALLOC_ARENA_MAX` and `MALLOC_MMAP_THRESHOLD_` environment variables (the
`glibc.malloc.arena_max` and `glibc.malloc.mmap_threshold` tunables in glibc >= 2.26). They
are made in the process rather than in Marathon's `env`, so that `calico-dcos run` behaves
the same wherever it is started (and the bench measures what runs on DC/OS); an operator's
own variable or `GLIBC_TUNABLES` wins. Nothing happens on another C library.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Mapping

LOG = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc malloc/malloc.h
M_ARENA_MAX = -8  # glibc malloc/malloc.h
ARENAS = 2  # the main arena and one for every other thread
MMAP_THRESHOLD = 512 * 1024  # bytes


def limit_arenas(environ: Mapping[str, str] = os.environ, arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas` (call before the scheduler's threads start).
    True when set; False on another C library, when the operator set the limit, or when
    glibc refuses (mallopt returns 0)."""
    return _mallopt(M_ARENA_MAX, "M_ARENA_MAX", arenas, environ, "MALLOC_ARENA_MAX", "arena_max")


def mmap_large_chunks(
    environ: Mapping[str, str] = os.environ, threshold: int = MMAP_THRESHOLD
) -> bool:
    """Have glibc mmap every request of `threshold` bytes or more, and unmap it when freed.
    True when set; False on another C library, when the operator set the threshold, or
    when glibc refuses (mallopt returns 0)."""
    return _mallopt(M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD", threshold, environ,
                    "MALLOC_MMAP_THRESHOLD_", "mmap_threshold")  # fmt: skip


def _mallopt(
    param: int, name: str, value: int, environ: Mapping[str, str], variable: str, tunable: str
) -> bool:
    if variable in environ or tunable in environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        done = libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1
    except (OSError, AttributeError):
        return False
    if not done:
        LOG.info("glibc refused %s %d; malloc keeps its default", name, value)
    return done
