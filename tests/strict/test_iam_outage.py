"""Strict mode through an IAM outage (a master restarting: Admin Router answers 5xx, or
nothing answers): the pure backoff decisions (`dcos_auth.Renewal`) with an injected clock,
`TokenSource` against the devcluster's IAM over real HTTPS with its outage fault
(`Iam.become_unavailable`), and a sandbox read that cannot get a token (it gives up, the
scheduler goes on). The scheduler end to end is in `test_strict_install.py`."""

from __future__ import annotations

import logging
import socket

import pytest

from calico_dcos.dcos_auth import (
    BACKOFF_CAP_SECONDS,
    AuthError,
    LoginUnavailable,
    Renewal,
    TokenSource,
)
from calico_dcos.sandbox import AgentFiles
from tests.helpers.wait import wait_until
from tests.strict.test_service_login import clock as clock  # noqa: F401 (fixture)
from tests.strict.test_service_login import cluster as cluster  # noqa: F401 (fixture)
from tests.strict.test_service_login import keys, source  # noqa: F401 (fixtures)

NOW = 1_800_000_000.0


def test_backoff_doubles_from_one_second_up_to_the_cap_with_equal_jitter():
    renewal = Renewal(refresh_margin=300)

    low = [renewal.backoff(n, 0.0) for n in range(1, 10)]
    high = [renewal.backoff(n, 0.999999) for n in range(1, 10)]

    assert low == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]  # d/2 of 1, 2, 4 … capped at 60
    assert [round(h) for h in high] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert renewal.backoff(10_000, 1.0) == BACKOFF_CAP_SECONDS  # no overflow, capped


def test_a_transient_failure_keeps_the_held_token_and_waits_out_the_backoff():
    renewal = Renewal(refresh_margin=300)
    renewal.renewed(NOW, NOW + 1000)  # renew at NOW + 700
    assert renewal.renew_at == NOW + 700
    assert renewal.action(NOW + 699) == "use"
    assert renewal.action(NOW + 700) == "renew"

    assert renewal.failed(NOW + 700, "HTTP 503", jitter=0.0) is True  # warn: first
    assert renewal.action(NOW + 700.4) == "use"  # backoff 0.5 s
    assert renewal.action(NOW + 700.5) == "renew"
    assert renewal.failed(NOW + 700.5, "HTTP 503", jitter=0.0) is False  # same outage
    assert renewal.next_try == NOW + 701.5
    assert renewal.wake_in(NOW + 701) == 0.5
    # the token's exp passes while the IAM is still down: nothing good to use
    renewal.failed(NOW + 999, "connection refused", jitter=0.0)
    assert renewal.action(NOW + 1000) == "wait"  # in backoff, no token: `LoginUnavailable`
    assert renewal.action(NOW + 1000 + BACKOFF_CAP_SECONDS) == "login"

    ended = renewal.renewed(NOW + 1100, NOW + 5000)
    assert ended == (3, 400.0)  # three failed attempts over 400 s: logged as recovered
    assert (renewal.failures, renewal.outage_since, renewal.next_try) == (0, None, 0.0)
    assert renewal.renewed(NOW + 1200, NOW + 6000) is None  # no outage to end


def test_a_refused_token_is_renewed_at_once_except_in_an_outages_backoff():
    renewal = Renewal(refresh_margin=300)
    renewal.renewed(NOW, NOW + 1000)
    renewal.refuse()
    assert renewal.action(NOW + 1) == "renew"
    assert renewal.wake_in(NOW + 1) == 0.0
    renewal.failed(NOW + 1, "HTTP 502", jitter=0.5)  # backoff 0.75 s
    assert renewal.action(NOW + 1.5) == "use"  # the refused token: the caller's 401 stands
    assert renewal.action(NOW + 1.75) == "renew"


def test_in_an_outage_the_renewer_wakes_at_the_tokens_exp_at_the_latest():
    renewal = Renewal(refresh_margin=300)
    renewal.renewed(NOW, NOW + 1000)
    renewal.failed(NOW + 999.8, "HTTP 503", jitter=0.999)  # the next try ~1 s on: past exp
    assert renewal.next_try > NOW + 1000
    assert renewal.wake_in(NOW + 999.8) == pytest.approx(0.2)


def test_the_renewer_fails_the_scheduler_when_the_token_expires_in_an_outage(
    cluster,  # noqa: F811
    keys,  # noqa: F811
    clock,  # noqa: F811
):
    """An idle scheduler makes no call that would find the token expired: the renewer must
    say so at the token's `exp` (a trial saw 78 s of "healthy" after it)."""
    iam, _, endpoint = cluster
    tokens = source(keys[0], cluster, clock)  # tokens live 100 s, margin 30 s
    tokens.jitter = lambda: 0.0
    tokens.token()
    refused: list[str] = []
    tokens.keep_renewed(refused.append)
    try:
        iam.become_unavailable(503)
        clock.now += 75  # renewal due: the renewer tries, fails, keeps the token
        tokens.token()
        wait_until(lambda: iam.unavailable_answers >= 1, 10, "the renewer's first attempt")
        assert refused == []

        clock.now += 30  # past the token's exp, the IAM still down
        wait_until(lambda: refused, 10, "the renewer to give up at the token's exp")
    finally:
        tokens.close()

    assert refused[0].startswith("strict mode: the DC/OS token expired ")
    assert f"the IAM at {endpoint} has not answered a login" in refused[0]


def test_a_short_lived_token_is_renewed_half_way():
    renewal = Renewal(refresh_margin=300)
    renewal.renewed(NOW, NOW + 100)
    assert renewal.renew_at == NOW + 50


def test_the_token_source_rides_out_an_iam_outage_warning_once(cluster, keys, clock, caplog):  # noqa: F811
    """The real IAM over HTTPS answers 503 from the renewal on: the held token is used until
    its `exp`, logins are retried only when the backoff allows, one WARNING names what failed
    and when the token expires, and one line says when the IAM is back."""
    caplog.set_level(logging.DEBUG, logger="calico_dcos.dcos_auth")
    iam, _, endpoint = cluster
    tokens = source(keys[0], cluster, clock)  # tokens live 100 s, margin 30 s
    tokens.jitter = lambda: 0.0
    first = tokens.token()
    iam.become_unavailable(503)

    clock.now += 75  # renewal due (25 s left)
    assert tokens.token() == first and iam.unavailable_answers == 1
    assert tokens.token() == first and iam.unavailable_answers == 1  # in the 0.5 s backoff
    clock.now += 0.5
    assert tokens.token() == first and iam.unavailable_answers == 2
    clock.now += 1.0
    assert tokens.token() == first and iam.unavailable_answers == 3
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    words = warning.getMessage()
    assert f"cannot log in at {endpoint} to renew the DC/OS token: HTTP 503" in words
    assert "keeping the current token, which expires at " in words and "(in 25 s)" in words

    iam.become_available()
    clock.now += 2.0
    second = tokens.token()
    assert second != first and iam.logins[-1] == ("calico-dcos-principal", True)
    [back] = [r.getMessage() for r in caplog.records if "again, after" in r.getMessage()]
    assert "after 3 failed attempt(s) over 4 s: the IAM is back" in back


def test_once_the_token_has_expired_in_an_outage_no_token_is_given(cluster, keys, clock):  # noqa: F811
    iam, _, endpoint = cluster
    tokens = source(keys[0], cluster, clock)
    tokens.token()
    iam.become_unavailable(502)
    clock.now += 101  # past the token's exp: a login now, which fails

    with pytest.raises(LoginUnavailable) as unavailable:
        tokens.token()
    with pytest.raises(LoginUnavailable) as in_backoff:
        tokens.token()  # no second attempt inside the backoff

    assert iam.unavailable_answers == 1
    message = str(unavailable.value)
    assert message.startswith("the DC/OS token expired 1 s ago and the IAM at " + endpoint)
    assert "(1 attempts; last: HTTP 502" in message
    assert unavailable.value.reason.startswith("HTTP 502")
    assert "next attempt in" in str(in_backoff.value)


def test_an_unreachable_iam_is_transient_and_a_refusal_is_not(cluster, keys, clock):  # noqa: F811
    _, pki, _ = cluster
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once closed
    account = source(keys[0], cluster, clock).account
    account = type(account)(account.uid, account.private_key, f"https://127.0.0.1:{port}/acs")
    nowhere = TokenSource(account, str(pki.ca_bundle), clock=clock)

    with pytest.raises(LoginUnavailable, match="refused"):
        nowhere.token()
    refused = source(keys[1], cluster, clock)  # a key the IAM does not know: definitive
    with pytest.raises(AuthError) as definitive:
        refused.token()
    assert not isinstance(definitive.value, LoginUnavailable)


def test_a_sandbox_read_without_a_token_gives_up_and_stops_nothing(caplog):
    """The credential cannot be had (the IAM down, the token expired): the read is logged and
    given up; nothing reaches the plan and the reader goes on with the next read."""
    delivered = []

    def no_token() -> tuple[str | None, bool]:
        raise LoginUnavailable("the DC/OS token expired 3 s ago and the IAM …", "HTTP 503")

    files = AgentFiles(lambda *args: delivered.append(args), no_token)
    offer = {
        "agent_id": {"value": "a1"},
        "url": {"scheme": "http", "address": {"ip": "127.0.0.1", "port": 1}, "path": "/"},
    }
    files.remember([offer])
    try:
        files.request("t1", "a1", "fw", "Command exited with status 1")
        files.request("t2", "a1", "fw", "Command exited with status 1")
        wait_until(lambda: files.failed == 2, 10, "both reads given up")
    finally:
        files.close(5)

    assert delivered == []
    words = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert words and all("not reading the stderr of t" in w and "strict mode" in w for w in words)


def test_the_outage_warning_says_log_in_when_no_token_was_held():
    from calico_dcos.dcos_auth import outage_words

    fresh = outage_words("https://iam/login", "HTTP 503", None, 1.0)
    held = outage_words("https://iam/login", "HTTP 503", 25.0, 1.0)

    assert fresh.startswith("cannot log in at https://iam/login for a DC/OS token: HTTP 503; ")
    assert "no DC/OS token is good now" in fresh and "renew" not in fresh
    assert held.startswith("cannot log in at https://iam/login to renew the DC/OS token: ")


def test_an_iam_answer_cut_short_says_so_with_an_ellipsis(cluster, keys, clock):  # noqa: F811
    """The devcluster's 503 body is longer than the 120 characters a reason keeps (a trial
    read `"code": "ERR_UNAVAI` with no sign of the cut)."""
    iam, _, _ = cluster
    tokens = source(keys[0], cluster, clock)
    iam.become_unavailable(503)

    with pytest.raises(LoginUnavailable) as unavailable:
        tokens.token()

    reason = unavailable.value.reason
    assert reason.startswith("HTTP 503: ") and reason.endswith("…")
    assert len(reason) == len("HTTP 503: ") + 120
