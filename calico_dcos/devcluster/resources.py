"""Resource arithmetic for the embedded master: scalars and ranges, per reservation role.

Mesos resources are lists of `Resource` JSON objects; the master needs to add, subtract and
compare them to allocate offers and to check that a task fits the offers it is launched on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Range = tuple[int, int]


def _merge(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for begin, end in sorted(ranges):
        if merged and begin <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _subtract_ranges(have: list[Range], take: list[Range]) -> list[Range]:
    result = list(have)
    for tb, te in take:
        next_result: list[Range] = []
        for b, e in result:
            if te < b or tb > e:
                next_result.append((b, e))
                continue
            if b < tb:
                next_result.append((b, tb - 1))
            if e > te:
                next_result.append((te + 1, e))
        result = next_result
    return result


def _covers(have: list[Range], want: list[Range]) -> bool:
    return all(any(b <= wb and we <= e for b, e in have) for wb, we in want)


@dataclass
class Resources:
    """Unreserved-or-one-role quantities: scalars (cpus, mem, disk) and ranges (ports)."""

    scalars: dict[str, float] = field(default_factory=dict)
    ranges: dict[str, list[Range]] = field(default_factory=dict)

    def copy(self) -> Resources:
        return Resources(dict(self.scalars), {k: list(v) for k, v in self.ranges.items()})

    def is_empty(self) -> bool:
        for value in self.scalars.values():
            if value > 0:
                return False
        return not any(self.ranges.values())

    def add(self, other: Resources) -> None:
        for name, value in other.scalars.items():
            self.scalars[name] = round(self.scalars.get(name, 0.0) + value, 3)
        for name, ranges in other.ranges.items():
            self.ranges[name] = _merge(self.ranges.get(name, []) + ranges)

    def subtract(self, other: Resources) -> None:
        for name, value in other.scalars.items():
            self.scalars[name] = round(self.scalars.get(name, 0.0) - value, 3)
        for name, ranges in other.ranges.items():
            self.ranges[name] = _subtract_ranges(self.ranges.get(name, []), ranges)

    def contains(self, other: Resources) -> bool:
        scalars_fit = all(self.scalars.get(n, 0.0) + 1e-9 >= v for n, v in other.scalars.items())
        return scalars_fit and all(
            _covers(self.ranges.get(n, []), r) for n, r in other.ranges.items()
        )

    def to_json(self, reserved_role: str, allocation_role: str, refinement: bool) -> list[dict]:
        """Render as offered resources, in the format the framework's capabilities ask for."""
        out = []
        for name, value in self.scalars.items():
            if value > 0:
                out.append({"name": name, "type": "SCALAR", "scalar": {"value": value}})
        for name, ranges in self.ranges.items():
            if ranges:
                items = [{"begin": b, "end": e} for b, e in ranges]
                out.append({"name": name, "type": "RANGES", "ranges": {"range": items}})
        for item in out:
            item["allocation_info"] = {"role": allocation_role}
            if not refinement:
                item["role"] = reserved_role
            elif reserved_role != "*":
                item["reservations"] = [{"type": "STATIC", "role": reserved_role}]
        return out

    def summary(self) -> dict:
        """The `/master/state` shape: scalars as numbers, ranges as "[a-b, c-d]" text."""
        out: dict = dict(self.scalars)
        for name, ranges in self.ranges.items():
            out[name] = "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"
        return out


def pools_contain(have: dict[str, Resources], want: dict[str, Resources]) -> bool:
    """True when `have` holds every resource of `want`, reservation by reservation."""
    for reserved, pool in want.items():
        if pool.is_empty():
            continue
        if reserved not in have or not have[reserved].contains(pool):
            return False
    return True


def reserved_role(item: dict) -> str:
    """The role a `Resource` is reserved for (`*` when unreserved), in either format."""
    reservations = item.get("reservations") or []
    if reservations:
        return reservations[-1].get("role", "*")
    return item.get("role", "*")


def parse(items: list[dict]) -> dict[str, Resources]:
    """Group `Resource` JSON by reservation role. Raises ValueError for what Mesos refuses."""
    pools: dict[str, Resources] = {}
    for item in items:
        pool = pools.setdefault(reserved_role(item), Resources())
        kind = item.get("type")
        name = item.get("name")
        if not name or kind not in ("SCALAR", "RANGES", "SET", "TEXT"):
            raise ValueError(f"Invalid resource {item!r}")
        if kind == "SCALAR":
            value = float(item.get("scalar", {}).get("value", -1))
            if value < 0:
                raise ValueError(f"Invalid scalar resource {name}: {value}")
            pool.add(Resources(scalars={name: value}))
        elif kind == "RANGES":
            ranges = [(int(r["begin"]), int(r["end"])) for r in item["ranges"].get("range", [])]
            if any(b > e for b, e in ranges):
                raise ValueError(f"Invalid ranges resource {name}")
            pool.add(Resources(ranges={name: ranges}))
    return pools


def total(pools: dict[str, Resources]) -> Resources:
    out = Resources()
    for pool in pools.values():
        out.add(pool)
    return out


def describe(pools: dict[str, Resources], allocation_role: str | None = None) -> str:
    """Pools the way Mesos prints `Resources`: `cpus(allocated: R)(reservations: [...]):4`."""
    parts = []
    for reserved, pool in sorted(pools.items()):
        tag = f"(allocated: {allocation_role})" if allocation_role else ""
        if reserved != "*":
            tag += f"(reservations: [(STATIC,{reserved})])"
        for name, value in sorted(pool.scalars.items()):
            if value > 0:
                parts.append(f"{name}{tag}:{value:g}")
        for name, ranges in sorted(pool.ranges.items()):
            if ranges:
                text = ", ".join(f"{b}-{e}" for b, e in ranges)
                parts.append(f"{name}{tag}:[{text}]")
    return "; ".join(parts)
