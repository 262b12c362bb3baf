"""`calico_dcos_offers_declined_total` is a Prometheus counter: it counts the offer IDs of
the DECLINE calls the master took, so it never goes down, whatever a scrape falls between.

The snapshots are what `/metrics` reads (`ViewCollector`: the scheduler's counters, then the
plan's held offers) at each moment of an offer held then released, and of one held then
used, in the order the scheduler makes them (scheduler.py: `offers` counted on OFFERS
before the plan decides; a hold is the plan's; ACCEPT/DECLINE counted by the sender)."""

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from calico_dcos.metrics import DECLINED, offer_metrics


class Snapshot(Collector):
    def __init__(self, counters: dict, held: int) -> None:
        self.counters, self.held = counters, held

    def collect(self):
        yield from offer_metrics(self.counters, self.held)


def declined(counters: dict, held: int) -> float:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(counters, held))
    return registry.get_sample_value("calico_dcos_offers_declined_total")


def test_offers_declined_never_goes_down_across_a_hold_its_release_and_a_held_offer_used():
    moments = [
        ({"offers": 1}, 0),  # o1 arrived, the plan has not decided yet
        ({"offers": 1}, 1),  # held
        ({"offers": 1}, 0),  # released: its DECLINE queued, not sent yet
        ({"offers": 1, "DECLINE": 1, DECLINED: 1}, 0),  # the DECLINE taken by the master
        ({"offers": 2, "DECLINE": 1, DECLINED: 1}, 0),  # o2 arrived
        ({"offers": 2, "DECLINE": 1, DECLINED: 1}, 1),  # held
        ({"offers": 2, "DECLINE": 1, DECLINED: 1}, 0),  # used: its ACCEPT queued
        ({"offers": 2, "DECLINE": 1, DECLINED: 1, "ACCEPT": 1}, 0),  # the ACCEPT sent
        ({"offers": 5, "DECLINE": 2, DECLINED: 4, "ACCEPT": 1}, 0),  # 3 more, 1 DECLINE
    ]
    figures = [declined(counters, held) for counters, held in moments]

    assert figures == sorted(figures), figures  # never down
    assert figures == [0, 0, 0, 1, 1, 1, 1, 1, 4]  # only offers whose DECLINE was sent
