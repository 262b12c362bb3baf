"""The master's allocation interval, read from its `GET_FLAGS` answer: stout's duration format
both ways (apache/mesos 3rdparty/stout/include/stout/duration.hpp), the answer's shape, the
one warning when it cannot be had, and the plan's handler. Pure: no socket here (the
devcluster and end-to-end tests ask a real one)."""

import logging

import pytest
import requests

from calico_dcos.master_flags import GRANT, MasterFlags, allocation_interval
from calico_dcos.mesos import format_duration, parse_duration
from tests.helpers.plan_sim import subscribed


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1secs", 1.0),
        ("500ms", 0.5),
        ("2mins", 120.0),
        ("1.5hrs", 5400.0),
        ("1days", 86400.0),
        ("1weeks", 604800.0),
        ("250us", 0.00025),
        ("7ns", 7e-9),
        ("1.secs", 1.0),  # boost's lexical_cast reads "1." and ".5"
        (".5secs", 0.5),
        ("0.1secs", 0.1),
        ("1.9ns", 1e-9),  # truncated to whole nanoseconds
    ],
)
def test_a_duration_reads_as_stout_reads_it(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("5", "Invalid duration '5'"),  # no unit
        ("", "Invalid duration ''"),
        ("secs", "Failed to convert '' to number"),
        ("-1secs", "Failed to convert '' to number"),  # stout has no negative durations
        (".secs", "Failed to convert '.' to number"),
        ("1.2.3secs", "Failed to convert '1.2.3' to number"),
        ("1s", "Unknown duration unit 's'"),
        ("1Secs", "Unknown duration unit 'Secs'"),
        ("1 secs", "Unknown duration unit ' secs'"),
        ("1e3secs", "Unknown duration unit 'e3secs'"),
        ("99999999999weeks", "out of the range of int64 nanoseconds"),
    ],
)
def test_what_stout_refuses_is_refused_in_its_words(text, words):
    with pytest.raises(ValueError) as refused:
        parse_duration(text)
    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.0, "1secs"),
        (0.1, "100ms"),
        (1.5, "1500ms"),  # whole in the smaller unit
        (90.0, "90secs"),
        (120.0, "2mins"),
        (5400.0, "90mins"),
        (3600.0, "1hrs"),
        (864000.0, "10days"),
        (604800.0, "1weeks"),
        (1.0000001, "1.0000001secs"),
        (0.0, "0ns"),
    ],
)
def test_a_duration_is_written_as_mesos_writes_it_and_reads_back(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-9)


def answer(*flags: tuple[str, object]) -> dict:
    return {
        "type": "GET_FLAGS",
        "get_flags": {"flags": [{"name": n, "value": v} for n, v in flags]},
    }


def test_the_allocation_interval_is_found_among_the_flags():
    flags = answer(("authenticate_frameworks", "true"), ("allocation_interval", "300ms"))
    assert allocation_interval(flags) == 0.3


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"type": "GET_FRAMEWORKS"}, "no get_flags.flags list"),
        (answer(("offer_timeout", "2mins")), "no allocation_interval flag"),
        (answer(("allocation_interval", "0secs")), "not more than 0"),
        (answer(("allocation_interval", "fast")), "Failed to convert"),
        (answer(("allocation_interval", 1)), "not a duration"),
    ],
)
def test_an_answer_without_a_usable_interval_is_refused_saying_why(given, words):
    with pytest.raises(ValueError, match=words):
        allocation_interval(given)


def refused(status: int):
    """What `_ask_master` raises for a refusal (`raise_for_status` on the master's reply)."""
    reply = requests.Response()
    reply.status_code = status

    def ask():
        raise requests.HTTPError(f"{status} Client Error", response=reply)

    return ask


def test_a_refusal_is_warned_of_once_naming_the_grant_and_changes_nothing(caplog):
    caplog.set_level(logging.INFO, logger="calico_dcos.master_flags")
    flags = MasterFlags("calico-principal")

    assert flags.allocation_interval(refused(403), keeps=1.0) is None
    assert flags.allocation_interval(refused(403), keeps=1.0) is None  # next subscription
    assert flags.allocation_interval(lambda: answer(("allocation_interval", "2secs")), 1.0) == 2
    assert flags.asked == 3

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "GET_FLAGS refused: 403" in warnings[0]
    assert (
        "does not let principal 'calico-principal' view its flags: grant it VIEW_FLAGS"
        in (warnings[0])
    )
    assert GRANT in warnings[0]
    assert "by Mesos' default of 1 s" in warnings[0] and warnings[0].count("1 s") == 1
    # what a wrong assumed interval costs, both ways
    assert "a step may wait up to one of its intervals more" in warnings[0]
    assert "holds and declines more offers than it needs" in warnings[0]


def test_a_refusal_without_a_principal_says_what_to_grant_outside_strict_mode():
    """A 403 with no credential: the master has an authorizer, and anonymous requests may
    not view its flags; the warning names no "(none)" principal and says what to do."""
    flags = MasterFlags(None)

    assert flags.allocation_interval(refused(403), keeps=1.0) is None

    assert "principal (none)" not in flags.warning and "In strict mode" not in flags.warning
    assert "The master has an authorizer, and the scheduler asks without a principal" in (
        flags.warning
    )
    assert "service.principal and service.secret_file" in flags.warning
    assert "a view_flags ACL" in flags.warning


def test_the_warning_lasts_until_the_interval_is_learned_and_success_is_logged_once(caplog):
    """`warning` is what the status page shows; a later subscription that learns the
    interval clears it. A learned interval is logged once: here when it is what the plan
    assumed, by the plan's Note when it changes (`Engine.on_allocation_interval`)."""
    caplog.set_level(logging.INFO, logger="calico_dcos.master_flags")
    flags = MasterFlags("calico-principal")
    flags.allocation_interval(refused(401), keeps=1.0)
    assert "wants HTTP authentication" in flags.warning

    assert flags.allocation_interval(lambda: answer(("allocation_interval", "1secs")), 1.0) == 1
    assert flags.allocation_interval(lambda: answer(("allocation_interval", "2secs")), 1.0) == 2

    assert flags.warning is None
    learned = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert learned == ["the master's --allocation_interval: 1 s (GET_FLAGS), as assumed"]


def test_a_failure_is_warned_of_once_too_without_a_grant(caplog):
    caplog.set_level(logging.WARNING, logger="calico_dcos.master_flags")
    flags = MasterFlags(None)

    def unreachable():
        raise requests.ConnectionError("connection refused")

    assert flags.allocation_interval(unreachable, keeps=0.5) is None
    assert flags.allocation_interval(refused(500), keeps=0.5) is None

    [warning] = [r.getMessage() for r in caplog.records]
    assert "GET_FLAGS failed: connection refused" in warning
    # no grant helps an unreachable master: the warning names none
    assert GRANT not in warning and "by 0.5 s, the interval the scheduler started with" in warning


def test_after_a_failover_the_warning_says_the_interval_kept_came_from_the_previous_master():
    """Learned from one master, refused by the next (a failover): the plan keeps the previous
    master's interval (the masters of one DC/OS cluster share their flags), and the warning
    says which interval and from which master, not "Mesos' default" even when it is 1 s."""
    for seconds, text in ((0.3, "300ms"), (1.0, "1secs")):
        flags = MasterFlags("calico-principal")
        ask = lambda text=text: answer(("allocation_interval", text))  # noqa: E731
        assert flags.allocation_interval(ask, 1.0, "10.0.0.1:5050") == seconds
        assert flags.allocation_interval(refused(403), seconds, "10.0.0.2:5050") is None

        assert flags.learned == (seconds, "10.0.0.1:5050")
        assert (
            f"so the plan times held offers and REVIVEs by {seconds:g} s, the "
            "--allocation_interval that the previous master, 10.0.0.1:5050, answered before "
            "the failover (kept: the masters of one DC/OS cluster run with the same flags"
        ) in flags.warning
        assert "default" not in flags.warning and "GET_FLAGS refused: 403" in flags.warning


def test_refused_later_by_the_master_that_answered_the_warning_says_so():
    """The same master answers, then refuses (a grant taken away): "this master answered at
    an earlier subscription"; learned from no known master: "a master"."""
    flags = MasterFlags("calico-principal")
    flags.allocation_interval(lambda: answer(("allocation_interval", "2secs")), 1.0, "m:5050")
    flags.allocation_interval(refused(403), 2.0, "m:5050")
    same = flags.warning
    flags.allocation_interval(refused(403), 2.0, None)

    assert "by 2 s, the --allocation_interval this master answered at an earlier" in same
    assert "by 2 s, the --allocation_interval a master answered at an earlier" in flags.warning


def test_the_plan_times_itself_by_the_learned_interval_and_says_so_once():
    sim = subscribed(2)
    assert sim.core.config.allocation_interval_seconds == 1.0

    said = sim.core.on_allocation_interval(0.3, sim.now)
    again = sim.core.on_allocation_interval(0.3, sim.now)

    assert sim.core.config.allocation_interval_seconds == 0.3
    assert [d.message for d in said] == [
        "the master's --allocation_interval is 0.3 s (GET_FLAGS; the plan assumed 1 s): "
        "held offers are timed by it"
    ]
    assert again == []
    with pytest.raises(ValueError, match="more than 0 seconds, not 0"):
        sim.core.on_allocation_interval(0.0, sim.now)
    assert sim.core.config.allocation_interval_seconds == 0.3
