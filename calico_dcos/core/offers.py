"""Offers: what an offer holds, whether a step's task fits in it (and if not, why), and
answering a batch of offers with launches and batched declines.

Offer shape: Mesos v1 `Offer` JSON (apache/mesos include/mesos/v1/mesos.proto): `id`,
`agent_id`, `hostname`, `resources` (each `name`, `type`, `scalar.value`, `role` or
`allocation_info.role`), `attributes` (TEXT or SCALAR), `allocation_info.role` (MULTI_ROLE).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from calico_dcos import mesos
from calico_dcos.core.events import Decision, Decline, in_calls

# Scalars are doubles of which Mesos keeps three decimal digits (apache/mesos
# docs/attributes-resources.md): 0.1 cpus left over may arrive as 0.09999999999999998.
TOLERANCE = 1e-9


def offer_scalars(offer: Mapping) -> dict[str, float]:
    """The offer's scalar resources summed by name: {"cpus": 4.0, "mem": 4096.0, …}."""
    totals: dict[str, float] = {}
    for res in offer.get("resources", ()):
        if res.get("type", "SCALAR") == "SCALAR" and "scalar" in res:
            totals[res["name"]] = totals.get(res["name"], 0.0) + float(res["scalar"]["value"])
    return totals


def offer_role(offer: Mapping) -> str:
    """The role the offer is allocated to (MULTI_ROLE), `*` when it says none."""
    role = offer.get("allocation_info", {}).get("role")
    if role:
        return role
    for res in offer.get("resources", ()):
        alloc = res.get("allocation_info", {}).get("role") or res.get("role")
        if alloc:
            return alloc
    return "*"


def offer_attributes(offer: Mapping) -> dict[str, str]:
    """The agent's attributes as text: TEXT values as they are, SCALAR ones as numbers."""
    attrs = {}
    for attr in offer.get("attributes", ()):
        kind = attr.get("type", "TEXT")
        if kind == "TEXT":
            attrs[attr["name"]] = attr["text"]["value"]
        elif kind == "SCALAR":
            attrs[attr["name"]] = str(attr["scalar"]["value"])
    return attrs


def offer_is_public(offer: Mapping) -> bool:
    """Is the offer's agent a DC/OS public agent? By what the agent is (`public_ip:true`,
    resources reserved to `slave_public`), never by the offer's allocation role, which Mesos
    sets to any of a MULTI_ROLE framework's roles for unreserved resources
    (`calico_dcos.mesos.offer_is_public`, with its sources)."""
    return mesos.offer_is_public(offer)


def task_on_offer(task_info: Mapping, offer: Mapping) -> dict:
    """The step's TaskInfo with its resources taken from the offer: each copies the offered
    resource's reservation and the offer's allocation_info (`calico_dcos.mesos.fit_to_offer`)."""
    return mesos.fit_to_offer(task_info, offer)


def _amount(value: float) -> str:
    return f"{value:g}"


def shortfall(offer: Mapping, needs: Mapping[str, float], task: str) -> str | None:
    """None when `needs` fit in the offer; else why not, in words an operator can act on:
    "offers 0.05 cpus; calico-node needs 0.1" (every short resource, `; `-joined)."""
    have = offer_scalars(offer)
    short = [
        f"offers {_amount(have.get(name, 0.0))} {name}; {task} needs {_amount(amount)}"
        for name, amount in needs.items()
        if have.get(name, 0.0) < amount - TOLERANCE
    ]
    return "; ".join(short) or None


def chain_shortfall(
    have: Mapping[str, float], steps: list[tuple[Mapping[str, float], bool]]
) -> dict[str, tuple[float, float]]:
    """What the agent cannot hold of a chain run in order, where each daemon stays running:
    {resource: (needed at the peak, short by)}, empty when it all fits.

    `have`: what the agent can give the chain (its offer, plus what the chain's own live
    tasks hold there); `steps`: each step's needs and whether it is a daemon, in order."""
    running: dict[str, float] = {}
    peak: dict[str, float] = {}
    for needs, daemon in steps:
        for name, amount in needs.items():
            peak[name] = max(peak.get(name, 0.0), running.get(name, 0.0) + amount)
        if daemon:
            for name, amount in needs.items():
                running[name] = running.get(name, 0.0) + amount
    return {
        name: (need, need - have.get(name, 0.0))
        for name, need in peak.items()
        if have.get(name, 0.0) < need - TOLERANCE
    }


class Hold:
    """The answer "kept for now": the plan holds the offer (`Engine._hold`) and answers it
    later, with a launch the moment its agent's next step can run, or a DECLINE."""

    def __repr__(self) -> str:
        return "HOLD"


HOLD = Hold()

# offer, agent IDs launched on in this batch, decisions so far -> None (launched), HOLD, or
# how long to refuse the offer's agent (seconds)
OfferUse = Callable[[Mapping, set[str], list], float | Hold | None]


def answer_offers(offers: Iterable[Mapping], use: OfferUse) -> list[Decision]:
    """`use(offer, launched, out)` launches on each offer (None), holds it (HOLD: the plan
    answers it later) or says for how long to refuse its agent; the declines go in one call
    per refuse time and `MAX_IDS_PER_CALL` offers."""
    out: list[Decision] = []
    declines: dict[float, list[str]] = {}
    launched: set[str] = set()
    for offer in offers:
        refuse = use(offer, launched, out)
        if refuse is not None and refuse is not HOLD:
            declines.setdefault(refuse, []).append(offer["id"]["value"])
    out.extend(
        Decline(chunk, refuse) for refuse, ids in declines.items() for chunk in in_calls(ids)
    )
    return out
