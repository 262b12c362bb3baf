"""Mesos' own constants that the scheduler and the embedded master (devcluster) both need.

A module of its own so that neither imports the other: the scheduler must run without the
devcluster, and the devcluster must stand for Mesos, not for our scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping

# TaskState values after which a task never changes again (mesos.proto `TaskState`).
TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)

# DC/OS public agents: the attribute `public_ip:true` and resources reserved to this role
# (dcos/dcos `gen/dcos-config.yaml`, /etc/mesos-slave-public: MESOS_DEFAULT_ROLE=slave_public,
# MESOS_ATTRIBUTES=public_ip:true).
PUBLIC_ROLE = "slave_public"


def reservation_role(resource: Mapping) -> str:
    """The role `resource` is reserved to, `*` when unreserved: the last of `reservations`
    (RESERVATION_REFINEMENT format) or the pre-refinement `role` (mesos.proto `Resource`)."""
    reservations = resource.get("reservations") or []
    if reservations:
        return str(reservations[-1].get("role", "*"))
    return str(resource.get("role", "*"))


def offer_is_public(offer: Mapping) -> bool:
    """Is the offer's agent a DC/OS public agent? Only by what the agent is: its
    `public_ip:true` attribute or resources reserved to `slave_public`. Never by the role
    the offer was allocated to: Mesos offers a private agent's unreserved resources to a
    MULTI_ROLE framework under any of its roles (apache/mesos
    src/master/allocator/mesos/hierarchical.cpp, `__generateOffers`)."""
    for attribute in offer.get("attributes", ()):
        value = attribute.get("text", {}).get("value")
        if attribute.get("name") == "public_ip" and value == "true":
            return True
    return any(reservation_role(r) == PUBLIC_ROLE for r in offer.get("resources", ()))


def task_resources(offer: Mapping, wanted: Mapping[str, float]) -> list[dict] | None:
    """The SCALAR resources a task takes from `offer`, `wanted` being name -> amount.

    Each copies the reservation of the offered resource it comes from (`role` or
    `reservations`, whichever format the offer uses) and carries the offer's
    `allocation_info`: the master checks that the offer contains them, reservation and
    allocation role included (src/master/validation.cpp, `task::internal::validateExecutor`:
    "Total resources ... is more than available"). An amount that no single offered resource
    holds is taken from several. None when the offer does not hold all of `wanted`."""
    allocation = offer.get("allocation_info")
    out: list[dict] = []
    for name, amount in wanted.items():
        left = round(float(amount), 3)
        for offered in offer.get("resources", ()):
            if left <= 0:
                break
            if offered.get("name") != name or offered.get("type", "SCALAR") != "SCALAR":
                continue
            take = round(min(left, float(offered.get("scalar", {}).get("value", 0.0))), 3)
            if take <= 0:
                continue
            resource = {"name": name, "type": "SCALAR", "scalar": {"value": take}}
            for key in ("role", "reservations"):
                if key in offered:
                    resource[key] = offered[key]
            if allocation is not None:
                resource["allocation_info"] = dict(allocation)
            out.append(resource)
            left = round(left - take, 3)
        if left > 0:
            return None
    return out


def fit_to_offer(task_info: Mapping, offer: Mapping) -> dict:
    """`task_info` with its SCALAR resources taken from `offer` by `task_resources` (same
    amounts, the offered reservations, the offer's allocation_info). Left as it is when the
    offer does not hold them: the master then answers TASK_ERROR, as it should."""
    wanted: dict[str, float] = {}
    others = []
    for resource in task_info.get("resources", ()):
        if resource.get("type", "SCALAR") == "SCALAR" and "scalar" in resource:
            name = resource["name"]
            wanted[name] = round(wanted.get(name, 0.0) + float(resource["scalar"]["value"]), 3)
        else:
            others.append(resource)
    taken = task_resources(offer, wanted)
    if taken is None:
        return dict(task_info)
    return {**task_info, "resources": taken + others}
