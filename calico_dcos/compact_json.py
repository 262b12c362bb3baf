"""orjson's `dumps`, its bytes held in exactly their own size.

orjson builds its output in a `bytes` object it grows as it writes and, when done, sets that
object's length in place without giving the rest back (ijl/orjson
`src/serialize/writer/byteswriter.rs`, `BytesWriter::finish`). A 264-byte result measured
4,097 bytes of memory with orjson 3.13 (tracemalloc), a 265 KB one 2.0x its length. That is
harmless for JSON sent at once, but the scheduler holds thousands of results at a time: every
held offer (`core.engine.offer_json`) and every agent record waiting for its group commit
(`store.encode_document`), up to one or two per agent at 1,000 agents, which made the
scheduler's peak RSS grow ~26 KiB per agent instead of ~17 (issue 17; README, Performance).
"""

from __future__ import annotations

from typing import Any

import orjson


def exact(data: bytes) -> bytes:
    """A copy of `data` allocated at its length (`bytes(memoryview(...))`, ~0.4 us for 1 KB,
    against ~5 us for orjson to write it): for bytes that will be held, not sent at once."""
    return bytes(memoryview(data))


def dumps(obj: Any, option: int | None = None) -> bytes:
    """`orjson.dumps(obj, option=option)` as `exact` bytes; raises orjson.JSONEncodeError
    as orjson does."""
    return exact(orjson.dumps(obj, option=option))
