"""Measure the devcluster's allocator at scale: N synthetic agents, one pymesos scheduler
that declines every batch of offers with one DECLINE call.

    .venv/bin/python scripts/devcluster_scale.py --agents 2000 --seconds 30 --refuse-seconds 0

Prints offers/s seen by the scheduler and whether each allocation round finished within the
allocation interval. Not a test: it takes as long as you ask.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

from pymesos import MesosSchedulerDriver, Scheduler

from calico_dcos.devcluster import DevCluster


class Decliner(Scheduler):
    def __init__(self, refuse_seconds: float) -> None:
        self.filters = {"refuse_seconds": refuse_seconds}
        self.offers = 0
        self.batches = 0
        self.lock = threading.Lock()

    def resourceOffers(self, driver, offers) -> None:  # noqa: N802 (pymesos' name)
        driver.declineOffer([o["id"] for o in offers], self.filters)
        with self.lock:
            self.offers += len(offers)
            self.batches += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--refuse-seconds", type=float, default=0.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    started = time.monotonic()
    cluster = DevCluster(
        agents=args.agents, public_agents=0, executor="synthetic",
        allocation_interval=args.interval, port=0,
    ).start()  # fmt: skip
    print(f"{args.agents} agents up in {time.monotonic() - started:.1f} s")
    decliner = Decliner(args.refuse_seconds)
    info = {"user": "nobody", "name": "decliner", "failover_timeout": 60}
    driver = MesosSchedulerDriver(decliner, info, cluster.master_url)
    driver.start()
    try:
        time.sleep(2 * args.interval)
        with decliner.lock:
            offers0, batches0 = decliner.offers, decliner.batches
        rounds0 = cluster.allocator_stats()["rounds"]
        time.sleep(args.seconds)
        with decliner.lock:
            offers, batches = decliner.offers - offers0, decliner.batches - batches0
        stats = cluster.allocator_stats()
    finally:
        driver.stop()
        driver.join()
        cluster.stop()
    print(f"scheduler saw {offers / args.seconds:.0f} offers/s in {batches} batches")
    print(
        f"allocator: {stats['rounds'] - rounds0} rounds in {args.seconds:.0f} s at "
        f"{args.interval} s interval; mean round {stats['mean_round_seconds'] * 1000:.1f} ms, "
        f"max {stats['max_round_seconds'] * 1000:.1f} ms, {stats['late_rounds']} rounds "
        f"longer than the interval"
    )


if __name__ == "__main__":
    main()
