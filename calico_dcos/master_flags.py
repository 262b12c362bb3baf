"""The master's flags that the plan times itself by, asked of the master itself.

Only `--allocation_interval` for now: how often the master offers again what was declined or
left unused (`PlanConfig.allocation_interval_seconds`). Mesos' default is 1 s
(apache/mesos src/master/constants.hpp, DEFAULT_ALLOCATION_INTERVAL); DC/OS keeps it
(dcos/dcos gen/dcos-config.yaml: /etc/mesos-master sets no MESOS_ALLOCATION_INTERVAL), but an
operator may set another in the files dcos-mesos-master.service reads last
(/opt/mesosphere/etc/mesos-master-extras, /etc/mesosphere/mesos/master.env;
dcos/dcos packages/mesos/extra/dcos-mesos-master.service). The scheduler cannot be told it,
so it asks at each subscription.

Asked with the operator API's `GET_FLAGS` (`POST /api/v1`, apache/mesos src/master/http.cpp
`Master::Http::getFlags`): every flag the master was started with, as
`{"type": "GET_FLAGS", "get_flags": {"flags": [{"name", "value"}, …]}}`
(src/internal/evolve.cpp `evolve<GET_FLAGS>`; include/mesos/v1/master/master.proto
`Response.GetFlags`), each value as Mesos writes it (a duration by stout's `operator<<`:
"1secs", "500ms", "2mins"), read back with `mesos.parse_duration`. With an authorizer (DC/OS
strict mode) the call needs VIEW_FLAGS: `Master::Http::_flags` asks the authorizer for that
action, with no object, and `getFlags` answers 403 Forbidden when it is denied. On DC/OS that
is the permission `dcos:mesos:master:flags` `read` (DC/OS "Permissions Reference", Mesos
master permissions: view access to the master's flag configuration).

Refused or failed, the plan keeps what it has (Mesos' default 1 s until a master has said
otherwise) and the log says so once per process (`warning_words`: which interval it keeps and
where that came from, what to grant, and what a wrong interval costs); the warning stays on
the status page and `/v1/status` until a later subscription learns the interval. After a
failover to a master that refuses, the plan keeps the interval the previous master answered,
which is the new one's too unless an operator set it on one master only: the masters of one
DC/OS cluster run with the same flags, since `/etc/mesos-master` (the flags of
dcos-mesos-master.service) is one file of the one `dcos-config` package rendered for the whole
cluster from dcos/dcos gen/dcos-config.yaml (gen/__init__.py `do_gen_package`), installed on
every master; the warning names that interval and that master (`kept_words`).

A refusal at all means the master checks these calls: 401,
an HTTP authenticator wants a credential it was not given or does not take (libprocess'
`Unauthorized`); 403, an authorizer (`--authorizer`, or `--acls` for the local one: an
`ACLs.view_flags` entry, include/mesos/authorizer/acls.proto `ACL.ViewFlags`) denied the
principal, or anyone when the request had none, VIEW_FLAGS.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import requests

from calico_dcos.mesos import parse_duration

LOG = logging.getLogger("calico_dcos.master_flags")
GET_FLAGS = {"type": "GET_FLAGS"}
GRANT = "dcos:mesos:master:flags read"


def allocation_interval(answer: object) -> float:
    """Seconds of the `allocation_interval` flag in a `GET_FLAGS` answer (JSON, as above).

    ValueError naming what is wrong: not a GET_FLAGS answer, no such flag, a value that is
    not a Mesos duration (stout's words, `parse_duration`), or not more than 0."""
    found = answer.get("get_flags") if isinstance(answer, Mapping) else None
    flags = found.get("flags") if isinstance(found, Mapping) else None
    if not isinstance(flags, list):
        raise ValueError("the answer has no get_flags.flags list")
    values = [
        f.get("value")
        for f in flags
        if isinstance(f, Mapping) and f.get("name") == "allocation_interval"
    ]
    if not values:
        raise ValueError("the answer has no allocation_interval flag")
    value = values[0]
    if not isinstance(value, str):
        raise ValueError(f"allocation_interval is {value!r}, not a duration")
    seconds = parse_duration(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"allocation_interval is {value!r}, not more than 0")
    return seconds


def kept_words(keeps: float, learned: tuple[float, str | None] | None, master: str | None) -> str:
    """What the plan keeps timing itself by, `keeps` seconds, in words that say where it came
    from: `learned` is (seconds, the `host:port` of the master that answered GET_FLAGS, or
    None) from an earlier subscription, None if none answered; `master` is the master asked
    now. A `keeps` not learned is Mesos' default 1 s or the scheduler's own start value."""
    if learned is not None and learned[0] == keeps:
        by = learned[1]
        if by is not None and master is not None and by != master:
            return (
                f"{keeps:g} s, the --allocation_interval that the previous master, {by}, "
                "answered before the failover (kept: the masters of one DC/OS cluster run with "
                "the same flags, rendered from one configuration)"
            )
        which = "this master" if by is not None and by == master else "a master"
        return f"{keeps:g} s, the --allocation_interval {which} answered at an earlier subscription"
    if keeps == 1.0:
        return "Mesos' default of 1 s"
    return f"{keeps:g} s, the interval the scheduler started with"


def warning_words(why: str, kept: str, principal: str | None, status: int | None) -> str:
    """The warning for an allocation interval not learned: `why` (e.g. "GET_FLAGS refused:
    403"), what the plan times itself by instead (`kept`, from `kept_words`), what that costs if the
    master's real interval differs (`core.deploy`: held offers are kept to bridge until the
    next round, declines of agents waiting for a slot end one interval before their turn,
    and a REVIVE is sent rather than waiting a round only when REVIVEs come faster than
    rounds), and, for a refusal (`status` 401 or 403), what to grant to whom: the principal
    the scheduler asks as (strict mode's service account, or `service.principal` with
    `service.secret_file`), or None when it asks without a credential."""
    words = (
        f"cannot learn the master's --allocation_interval ({why}), so the plan times held "
        f"offers and REVIVEs by {kept}: if the master's real interval is longer, a step "
        "may wait up to one of its intervals more for an offer; if shorter, the scheduler "
        "holds and declines more offers than it needs."
    )
    if status == 401:
        who = f"principal {principal!r}" if principal else "a principal"
        return (
            f"{words} The master wants HTTP authentication for its operator API: give the "
            f"scheduler {who} it takes (service.principal and service.secret_file, or strict "
            "mode's service account); it asks again at each subscription."
        )
    if status == 403:
        if principal:
            grant = (
                f"The master's authorizer does not let principal {principal!r} view its "
                f"flags: grant it VIEW_FLAGS (on DC/OS, {GRANT}; README, strict mode)"
            )
        else:
            grant = (
                "The master has an authorizer, and the scheduler asks without a principal: "
                "give it one (service.principal and service.secret_file) that may view the "
                f"master's flags (Mesos' VIEW_FLAGS: a view_flags ACL; on DC/OS, {GRANT}), "
                "or let any principal view them"
            )
        return f"{words} {grant}; it asks again at each subscription."
    return words


class MasterFlags:
    """Learns the master's allocation interval; warns once per process when it cannot.

    `principal`: the one the scheduler asks as (strict mode: its service account's uid;
    else `service.principal` when it has a `service.secret_file`; None: no credential), for
    the warning. `warning`: the warning while the interval is not learned (None once it is),
    for the status page. `learned`: (seconds, the master's `host:port`) of the last answer,
    None before any. Each subscription asks on its own thread; a race of two could at worst
    warn twice."""

    def __init__(self, principal: str | None) -> None:
        self.principal = principal
        self.warned = False
        self.warning: str | None = None
        self.asked = 0  # GET_FLAGS calls answered or failed so far
        self.learned: tuple[float, str | None] | None = None

    def allocation_interval(
        self, ask: Callable[[], object], keeps: float, master: str | None = None
    ) -> float | None:
        """The master's `--allocation_interval` in seconds, or None (the plan keeps `keeps`
        seconds) when it was refused, failed or answered something unusable. `ask()` POSTs
        `GET_FLAGS` to the leading master, `master` (`host:port`, for the warning), as the
        scheduler is authenticated, and returns the decoded answer, raising
        `requests.HTTPError` for a refusal (401, 403) and any other exception for a
        failure."""
        try:
            seconds = allocation_interval(ask())
        except requests.HTTPError as exc:
            self.asked += 1
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                self._warn(f"GET_FLAGS refused: {status}", keeps, master, status)
            else:
                self._warn(f"GET_FLAGS failed: {exc}", keeps, master, None)
            return None
        except Exception as exc:  # unreachable, a timeout, an answer that is no JSON, …
            self.asked += 1
            self._warn(f"GET_FLAGS failed: {exc}", keeps, master, None)
            return None
        self.asked += 1
        self.warning = None
        self.learned = (seconds, master)
        if seconds == keeps:  # a change is said once, by the plan (`Engine.on_allocation_interval`)
            LOG.info("the master's --allocation_interval: %g s (GET_FLAGS), as assumed", seconds)
        return seconds

    def _warn(self, why: str, keeps: float, master: str | None, status: int | None) -> None:
        kept = kept_words(keeps, self.learned, master)
        self.warning = warning_words(why, kept, self.principal, status)
        if self.warned:
            LOG.info("cannot learn the master's --allocation_interval (%s)", why)
            return
        self.warned = True
        LOG.warning("%s", self.warning)
