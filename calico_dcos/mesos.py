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


# stout's Duration units (apache/mesos 3rdparty/stout/include/stout/duration.hpp), in
# nanoseconds: what `Duration::parse` accepts after the number and `operator<<` writes.
DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "secs": 1_000_000_000,
    "mins": 60 * 1_000_000_000,
    "hrs": 3_600 * 1_000_000_000,
    "days": 86_400 * 1_000_000_000,
    "weeks": 7 * 86_400 * 1_000_000_000,
}
_INT64_MAX = 2**63 - 1
_NUMBER_CHARS = frozenset("0123456789.")


def parse_duration(text: str) -> float:
    """Seconds of a Mesos duration flag's value ("1secs", "500ms", "2mins", "1.5hrs"),
    parsed exactly as stout's `Duration::parse` does (apache/mesos
    3rdparty/stout/include/stout/duration.hpp): the longest prefix of ASCII digits and dots
    is the number (`numify<double>`, boost's `lexical_cast`: "1.", ".5" and "1" are numbers,
    "", "." and "1.2.3" are not), the rest the unit, exactly one of `DURATION_UNITS`
    (case-sensitive, no space, no sign: stout has no negative durations); the duration is
    `int64(number × unit in ns)`, truncated toward zero, and its seconds are those
    nanoseconds / 1e9 (`Duration::secs`).

    ValueError, in stout's words, for anything else: a unit missing ("Invalid duration
    '5'"), unknown ("Unknown duration unit 's'; …"), a number that is none ("Failed to
    convert '.' to number"), or a duration past int64 nanoseconds (where C++ would overflow).
    """
    index = 0
    while index < len(text) and text[index] in _NUMBER_CHARS:
        index += 1
    if index == len(text):
        raise ValueError(f"Invalid duration '{text}'")
    number = text[:index]
    try:
        value = float(number)  # only digits and dots reach here: float() reads as boost does
    except ValueError:
        raise ValueError(f"Failed to convert '{number}' to number") from None
    unit = text[index:]
    if unit not in DURATION_UNITS:
        raise ValueError(
            f"Unknown duration unit '{unit}'; supported units are 'ns', 'us', 'ms', 'secs', "
            "'mins', 'hrs', 'days', and 'weeks'"
        )
    nanos = value * DURATION_UNITS[unit]
    if not nanos <= _INT64_MAX:  # also inf
        raise ValueError(f"Duration '{text}' is out of the range of int64 nanoseconds")
    return int(nanos) / 1_000_000_000


def format_duration(seconds: float) -> str:
    """A duration as Mesos writes it (stout's `operator<<(ostream&, const Duration&)`,
    3rdparty/stout/include/stout/duration.hpp), as `/flags` and `GET_FLAGS` show a duration
    flag: `Duration::create(seconds)` (truncated to whole nanoseconds), then the largest unit
    below which it falls, or the one below it when only that one writes it whole (90 s is
    "90secs", 1.5 s "1500ms", 1 s "1secs", 0.1 s "100ms"), the number with 15 significant
    digits (`digits10` of a double, `%.15g`). Negative durations get a "-"."""
    nanos = int(seconds * 1_000_000_000)
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    names = list(DURATION_UNITS)  # smallest first
    chosen = "ns"
    for i in range(1, len(names)):
        unit, smaller = DURATION_UNITS[names[i]], DURATION_UNITS[names[i - 1]]
        upper = DURATION_UNITS[names[i + 1]] if i + 1 < len(names) else None
        if upper is not None and nanos >= upper:
            continue
        if nanos < unit:
            break  # below this unit: the smaller one (chosen so far) writes it
        whole_smaller = nanos % unit != 0 and nanos % smaller == 0
        chosen = names[i - 1] if whole_smaller else names[i]
        break
    value = nanos / DURATION_UNITS[chosen]
    return f"{sign}{value:.15g}{chosen}"
