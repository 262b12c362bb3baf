"""CPU per record of the file store's `put_many` (README, Performance: the file store's cost).

Writes 1,000 agents' records 13 times (an install's 13 writes per agent), ~2.1 KB each, in
groups of `--group` records, into a fresh state directory, and prints the process's user and
kernel CPU per record (os.times, so the figure is this process's own, whatever the machine's
load), the wall time per group and the store's counters.

    .venv/bin/python scripts/store_put_many_cpu.py --group 5 [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from calico_dcos.store import encode_document, open_store

STEPS = ("etcd", "docker", "cni", "node", "libnetwork")


def record(agent: int, attempt: int) -> bytes:
    """An agent record of the scheduler's shape and size (docs/CONTRACTS.md)."""
    steps = {
        step: {
            "task_id": f"calico-{step}__a1b2-S{agent}__4f2a0000__{attempt}",
            "state": "TASK_RUNNING",
            "fingerprint": "4f2a" * 16,
            "attempts": attempt,
            "updated": 1764357000.0 + attempt,
            "message": "x" * 200,
        }
        for step in STEPS
    }
    return encode_document({"agent_id": f"a1b2-S{agent}", "hostname": f"agent-{agent}",
                            "steps": steps})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", type=int, default=5, help="records per put_many")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=13, help="writes per agent")
    parser.add_argument("--dir", default=None, help="where the state directory is made")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="store-cpu-") as path:
        store = open_store(path)
        writes = [
            ("agent", f"a1b2-S{agent}", record(agent, attempt))
            for attempt in range(args.rounds)
            for agent in range(args.agents)
        ]
        size = sum(len(data) for _, _, data in writes) / len(writes)
        before, started = os.times(), time.monotonic()
        for start in range(0, len(writes), args.group):
            store.put_many(writes[start : start + args.group])
        after, wall = os.times(), time.monotonic() - started
        store.close()
    n = len(writes)
    user = (after.user - before.user) / n * 1e6
    kernel = (after.system - before.system) / n * 1e6
    print(
        f"{n} records of {size:.0f} B in groups of {args.group}: {user + kernel:.0f} us of CPU "
        f"per record (user {user:.0f}, kernel {kernel:.0f}); {wall / n * args.group * 1e3:.2f} "
        f"ms wall per group; writes {store.writes}, commits {store.commits}; "
        f"1-minute load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
