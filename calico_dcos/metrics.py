"""Prometheus metrics, read from the scheduler's view at scrape time.

A custom Collector rather than metric objects updated in place: the scheduler keeps only
plain counters (`view.counters`) and its agent records, and everything else (task states,
agents per status, restarts in flight) is derived here when Prometheus asks. So the hot
paths (offers, updates) pay nothing for metrics, and the numbers can never drift from the
plan they describe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from calico_dcos.core.revive import REASONS as REVIVE_REASONS

PREFIX = "calico_dcos"
# The scheduler's own counter names (scheduler.py) for the Mesos calls it makes.
CALLS = ("ACCEPT", "DECLINE", "KILL", "RECONCILE", "REVIVE", "ACKNOWLEDGE")
# The scheduler's counter of offer IDs in the DECLINE calls the master took (scheduler.py).
DECLINED = "offers_declined"
# The scheduler's counters of REVIVEs sent, one per reason a REVIVE carries: this prefix and
# the reason (`calico_dcos.core.revive.REASONS`), e.g. "REVIVE reason=slot_freed".
REVIVE_REASON = "REVIVE reason="


class ViewCollector(Collector):
    """Every metric from one read of the view, so that one scrape is one consistent picture."""

    def __init__(self, view: Any) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        counters = dict(self.view.counters)
        records = self.view.agent_records()
        held_offers = getattr(self.view, "held_offers", None)
        yield from offer_metrics(counters, held_offers() if held_offers is not None else 0)
        yield calls_metric(counters)
        yield revives_metric(counters)
        yield CounterMetricFamily(
            f"{PREFIX}_reconciliation_rounds",
            "Reconciliation requests sent to Mesos: explicit rounds and periodic implicit ones.",
            value=counters.get("RECONCILE", 0),
        )
        yield launches_metric(records)
        yield task_states_metric(records)
        yield from rollout_metrics(self.view.summary())
        yield agents_metric(self.view.plan_view())
        yield from store_metrics(self.view.store)
        convergence = self.view.convergence_seconds()
        if convergence is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_convergence_seconds",
                "Seconds from the first subscription until every agent was first done.",
                value=convergence,
            )


def store_metrics(store: Any) -> Iterator[Metric]:
    """Writes to the state store: bounded by task transitions, constant bytes per agent."""
    writes = "Writes to the state store (one per agent transition)."
    yield CounterMetricFamily(f"{PREFIX}_state_writes", writes, value=store.writes)
    written = "Bytes written to the state store."
    yield CounterMetricFamily(f"{PREFIX}_state_written_bytes", written, value=store.bytes_written)


def offer_metrics(counters: Mapping[str, int], held: int = 0) -> Iterator[Metric]:
    """Each offer is accepted by one launch, declined, taken back by Mesos (RESCIND) while
    the plan held it, or held now (`held`: `calico_dcos.core.engine`, held offers).

    `offers_declined` counts the offer IDs of each DECLINE the master took, when it took
    it (`counters[DECLINED]`), and so never goes down, as a Prometheus counter must ("A
    counter is a cumulative metric … whose value can only increase or be reset to zero on
    restart", prometheus.io docs, concepts/metric_types). Derived as received − accepted −
    rescinded − held now, it went down whenever a scrape fell between an offer's arrival
    and the plan holding it, or between the plan using a held offer and its ACCEPT being
    sent."""
    received = counters.get("offers", 0)
    accepted = counters.get("ACCEPT", 0)
    rescinded = counters.get("RESCIND", 0)
    yield CounterMetricFamily(
        f"{PREFIX}_offers_received", "Resource offers received from Mesos.", value=received
    )
    yield CounterMetricFamily(
        f"{PREFIX}_offers_accepted", "Offers used to launch a step.", value=accepted
    )
    yield CounterMetricFamily(
        f"{PREFIX}_offers_declined",
        "Offers declined: nothing to launch there now, or released after being held.",
        value=counters.get(DECLINED, 0),
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_offers_held",
        "Offers held now, to be used the moment their agent's next step can run "
        "(released after offer_hold_seconds).",
        value=held,
    )
    yield CounterMetricFamily(
        f"{PREFIX}_offers_rescinded",
        "Offers Mesos took back (RESCIND) before the scheduler answered them.",
        value=rescinded,
    )


def calls_metric(counters: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(
        f"{PREFIX}_mesos_calls",
        "Calls made to the Mesos master, by type; RECONCILE counts reconciliation rounds.",
        labels=["type"],
    )
    for call in CALLS:
        family.add_metric([call], counters.get(call, 0))
    return family


def revives_metric(counters: Mapping[str, int]) -> Metric:
    """REVIVEs sent, by why the plan wanted them (`calico_dcos.core.revive.REASONS`). Each
    REVIVE makes Mesos offer every agent again, so these say where offers come from. One
    REVIVE answers every want of its coalescing window: it counts once under each of their
    reasons, so the sum may exceed `mesos_calls{type="REVIVE"}`."""
    family = CounterMetricFamily(
        f"{PREFIX}_revives",
        "REVIVEs sent, by the reason the plan wanted them (one REVIVE may carry several).",
        labels=["reason"],
    )
    for reason in REVIVE_REASONS:
        family.add_metric([reason], counters.get(f"{REVIVE_REASON}{reason}", 0))
    return family


def revive_reasons(counters: Mapping[str, int]) -> dict[str, int]:
    """{reason: REVIVEs} from the scheduler's counters, only the reasons seen."""
    return {
        name[len(REVIVE_REASON) :]: count
        for name, count in counters.items()
        if name.startswith(REVIVE_REASON) and count
    }


def launches_metric(records: Mapping[str, Mapping]) -> Metric:
    """Each step record counts its launches ever (`attempts`, part of every task ID)."""
    totals: Counter[str] = Counter()
    for record in records.values():
        for step, doc in record.get("steps", {}).items():
            totals[step] += int(doc.get("attempts", 0))
    family = CounterMetricFamily(f"{PREFIX}_launches", "Tasks launched, by step.", labels=["step"])
    for step, count in sorted(totals.items()):
        family.add_metric([step], count)
    return family


def task_states_metric(records: Mapping[str, Mapping]) -> Metric:
    states: Counter[tuple[str, str]] = Counter()
    for record in records.values():
        if record.get("lost"):
            continue
        for step, doc in record.get("steps", {}).items():
            states[(step, doc.get("state") or "NONE")] += 1
    family = GaugeMetricFamily(
        f"{PREFIX}_tasks",
        "The latest task of each step on each agent, by its last known Mesos state.",
        labels=["step", "state"],
    )
    for (step, state), count in sorted(states.items()):
        family.add_metric([step, state], count)
    return family


def rollout_metrics(summary: Mapping) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        f"{PREFIX}_restarts_in_flight",
        "Agents restarting Docker or the Mesos agent now.",
        value=len(summary.get("restarting", ())),
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_restart_budget",
        "Agents that may restart at the same time.",
        value=summary.get("budget", 0),
    )
    conditions = GaugeMetricFamily(
        f"{PREFIX}_condition",
        "The rollout's conditions (1 true, 0 false), as the Calico operator reports them.",
        labels=["condition"],
    )
    for name in ("available", "progressing", "degraded"):
        conditions.add_metric([name.capitalize()], 1 if summary.get(name) else 0)
    yield conditions


def agents_metric(plan: Mapping) -> Metric:
    family = GaugeMetricFamily(
        f"{PREFIX}_agents", "Agents by the status of their plan phase.", labels=["status"]
    )
    statuses = Counter(phase["status"] for phase in plan.get("phases", ()))
    for status, count in sorted(statuses.items()):
        family.add_metric([status], count)
    return family


def registry_for(view: Any) -> CollectorRegistry:
    """A registry of its own per API app, so tests and several schedulers never collide."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewCollector(view))
    return registry
