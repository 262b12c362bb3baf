"""DC/OS service-account login: the authentication token strict mode puts on every call.

Facts this follows (DC/OS 1.13-2.x documentation, "Service Login" and "DC/OS Authentication
Token"; mesosphere/dcos-commons `sdk/scheduler/src/main/java/com/mesosphere/sdk/dcos/auth/
ServiceAccountIAMTokenProvider.java` and `CachedTokenProvider.java`):

- A service account's credential is the JSON `{"scheme": "RS256", "uid", "private_key",
  "login_endpoint"}`, conventionally given to a Marathon app as the secret in
  `DCOS_SERVICE_ACCOUNT_CREDENTIAL` (`CREDENTIAL_ENV`).
- Login: POST `{"uid", "token"}` to the login endpoint, where `token` is a service login token,
  a JWT of type RS256 signed with the account's private key with the claims `uid` and `exp`
  (dcos-commons gives it 120 s: `LOGIN_TOKEN_SECONDS`). The answer `{"token": …}` is the
  DC/OS authentication token, itself an RS256 JWT with `uid` and `exp` (five days by default).
- Every request then carries `Authorization: token=<authentication token>` (not `Bearer`).
- The token is renewed before its `exp` (`refresh_margin`), and at once after a 401
  (`again_after_401`): DC/OS' "Refreshing Tokens" names both ways, "Pre-Expiration Renewal"
  and "Post-Expiration Renewal" ("An invalid authentication token is responded to with a 401
  HTTP status code and the service re-invokes the service account login procedure"; DC/OS
  1.13 docs, "Authentication tokens for services", dcos/dcos-docs-site
  pages/1.13/security/oss/authentication/obtaining-auth-tokens/services/index.md).

When the IAM cannot be reached (`Renewal`, `LoginUnavailable`): DC/OS' IAM runs on every
master behind Admin Router, which proxies `/acs/api/v1/auth/` to it (`upstream iam` at
127.0.0.1:8101; dcos/dcos packages/adminrouter/extra/src/includes/server/open/master.conf and
http/open/master.conf), and the default login endpoint names the leading master
(`leader.mesos`), so a master restarting or being upgraded makes the login unreachable, or
answered by Admin Router with a 5xx, for seconds to minutes. DC/OS' own advice for that time
is what `Renewal` does: "It attempts to get a fresh authentication token (with retry and
back-off). During the period where the service has no valid authentication token, the
service might need to hold back operations" (the "Refreshing Tokens" page above). The token
lives five days by default ("In Open DC/OS Authentication tokens are valid for five days";
pages/1.13/security/oss/authentication/authentication-token/index.md; Enterprise sets it with
`bouncer_expiration_auth_token_days`, pages/1.13/installing/production/advanced-configuration/
configuration-reference/index.md), so the `refresh_margin` before its `exp` leaves minutes of
retries before a renewal missed for good matters.

TLS is always verified, against `ca_bundle` (on DC/OS nodes `/run/dcos/pki/CA/ca-bundle.crt`,
`DCOS_CA_BUNDLE`); an `http://` login endpoint is refused, since it would send the login token
in clear. Nothing here logs or shows the private key or a token (`repr` hides both).
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import requests

if TYPE_CHECKING:  # PyJWT and cryptography load in the functions: only strict mode pays
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

LOG = logging.getLogger("calico_dcos.dcos_auth")
CREDENTIAL_ENV = "DCOS_SERVICE_ACCOUNT_CREDENTIAL"
DCOS_CA_BUNDLE = "/run/dcos/pki/CA/ca-bundle.crt"
DEFAULT_LOGIN_ENDPOINT = "https://leader.mesos/acs/api/v1/auth/login"
LOGIN_TOKEN_SECONDS = 120
LOGIN_TIMEOUT_SECONDS = 10.0


class AuthError(Exception):
    """Strict-mode authentication cannot work as configured; the message says what to fix."""


class LoginUnavailable(AuthError):
    """The IAM could not be asked now: connection refused or reset, a timeout, an HTTP 5xx
    or 429. Transient: another login later may work (`Renewal` says when). `reason` is
    what failed, on one line."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


# Answers of the login endpoint that say "not now" rather than "no": the IAM or Admin Router
# in front of it overloaded, restarting or gone (RFC 9110 15.6: 5xx "the server is aware that
# it has erred or is incapable of performing the request"; RFC 6585 4: 429 Too Many Requests).
TRANSIENT_STATUSES = frozenset({429, *range(500, 600)})
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
RENEWER_NAP_SECONDS = 60.0  # the renewer looks at the wall clock at least this often


@dataclass
class Renewal:
    """When to log in, from what happened so far: the pure core of `TokenSource` (no I/O,
    no clock: every method takes `now`, seconds since the epoch as the token's `exp`).

    - `renew_at`: `refresh_margin` before the held token's `expires` (or half-way through a
      token shorter-lived than twice the margin).
    - A transient failure (`failed`) keeps the held token while `now < expires`, and puts
      the next attempt `backoff` later: `first` doubling per failure up to `cap`, each
      delay drawn in [d/2, d) ("equal jitter", so that schedulers restarted together by one
      master upgrade do not log in in step) from `jitter` in [0, 1).
    - `refused` (a server answered 401 to the held token): renew at once, backoff aside
      from the first failure on.
    - `outage_since`: the time of the first failure since the last login, None when none.
    """

    refresh_margin: float
    first: float = BACKOFF_FIRST_SECONDS
    cap: float = BACKOFF_CAP_SECONDS
    expires: float | None = None
    renew_at: float = 0.0
    next_try: float = 0.0
    failures: int = 0
    outage_since: float | None = None
    last_failure: str = ""
    refused: bool = False

    def held(self, now: float) -> bool:
        """A token is held and not past its `exp`."""
        return self.expires is not None and now < self.expires

    def action(self, now: float) -> str:
        """`"use"` the held token; `"renew"` it (a login, the held token good meanwhile);
        `"login"` now (no token good any more); `"wait"`: no token good and the backoff not
        over, so the caller has none (`LoginUnavailable`)."""
        in_backoff = now < self.next_try
        if self.held(now):
            if in_backoff or (now < self.renew_at and not self.refused):
                return "use"
            return "renew"
        return "wait" if in_backoff else "login"

    def renewed(self, now: float, expires: float) -> tuple[int, float] | None:
        """A login answered a token expiring at `expires`. Returns (failed attempts, seconds)
        of the outage it ends, or None if there was none."""
        ended = (self.failures, now - self.outage_since) if self.outage_since is not None else None
        self.expires = expires
        self.renew_at = expires - min(self.refresh_margin, max(0.0, expires - now) / 2)
        self.next_try, self.failures, self.outage_since = 0.0, 0, None
        self.last_failure, self.refused = "", False
        return ended

    def failed(self, now: float, reason: str, jitter: float) -> bool:
        """A login failed transiently; True for the first failure of an outage (warn)."""
        first = self.outage_since is None
        if first:
            self.outage_since = now
        self.failures += 1
        self.last_failure = reason
        self.next_try = now + self.backoff(self.failures, jitter)
        return first

    def backoff(self, failures: int, jitter: float) -> float:
        """Seconds before the next attempt after `failures` failures in a row."""
        delay = min(self.cap, self.first * 2 ** min(failures - 1, 30))
        return delay / 2 + delay / 2 * min(max(jitter, 0.0), 1.0)

    def refuse(self) -> None:
        """A server refused the held token (401): renew as soon as the backoff allows."""
        self.refused = True

    def wake_in(self, now: float) -> float | None:
        """Seconds until the renewer has something to do, None with no token held: the
        renewal (or the backoff's end), and at the latest the token's `exp`, when an outage
        that has lasted until then ends the renewer (`TokenSource.keep_renewed`)."""
        if self.expires is None:
            return None
        due = max(self.renew_at if not self.refused else now, self.next_try)
        return max(0.0, min(due, self.expires) - now)


@dataclass(frozen=True)
class ServiceAccount:
    """A parsed service-account credential; `repr` shows the uid and endpoint only."""

    uid: str
    private_key: RSAPrivateKey = field(repr=False)
    login_endpoint: str = DEFAULT_LOGIN_ENDPOINT


def parse_credential(text: str, source: str) -> ServiceAccount:
    """The credential JSON from `source` (an option's path or `CREDENTIAL_ENV`), checked.

    Raises AuthError naming `source` and the field that is wrong; the key is never quoted.
    """
    try:
        doc = json.loads(text)
    except ValueError:
        raise AuthError(
            f"{source}: not JSON; expected the service account credential "
            '{"scheme": "RS256", "uid", "private_key", "login_endpoint"}'
        ) from None
    if not isinstance(doc, dict):
        raise AuthError(f"{source}: expected a JSON object")
    if doc.get("scheme", "RS256") != "RS256":
        raise AuthError(f"{source}: scheme {doc.get('scheme')!r}: only RS256 is supported")
    uid = doc.get("uid")
    if not isinstance(uid, str) or not uid:
        raise AuthError(f"{source}: uid: expected the service account's ID")
    endpoint = doc.get("login_endpoint") or DEFAULT_LOGIN_ENDPOINT
    check_https(endpoint, f"{source}: login_endpoint")
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(str(doc.get("private_key", "")).encode(), password=None)
    except (ValueError, TypeError):
        raise AuthError(
            f"{source}: private_key: expected an unencrypted PEM private key "
            "(dcos security org service-accounts keypair writes one)"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise AuthError(f"{source}: private_key: expected an RSA key (RS256)")
    return ServiceAccount(uid, key, endpoint)


def check_https(url: str, what: str) -> str:
    """`url` if it is an https:// URL with a host; AuthError naming `what` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise AuthError(
            f"{what}: {url!r} is not an https:// URL; strict mode never sends a credential "
            "or token over plain HTTP"
        )
    return url


def login_token(account: ServiceAccount, now: float) -> str:
    """The service login token: RS256 JWT `{"uid", "exp": now + LOGIN_TOKEN_SECONDS}`."""
    import jwt

    claims = {"uid": account.uid, "exp": int(now) + LOGIN_TOKEN_SECONDS}
    return jwt.encode(claims, account.private_key, algorithm="RS256")


def token_expiry(token: str) -> float:
    """The `exp` of a DC/OS authentication token, read without checking its signature: the
    scheduler cannot (only the IAM's public key can) and needs only to know when to renew."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
        return float(claims["exp"])
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        raise AuthError("the IAM answered a token that is not a JWT with an exp claim") from None


class TokenSource:
    """The current DC/OS authentication token, logging in again `refresh_margin` seconds
    before it expires (or half-way through a token shorter-lived than twice the margin) and
    after `invalidate()` (a 401). Thread-safe.

    When the IAM cannot be reached (`LoginUnavailable`), the held token is kept while its
    `exp` has not passed and logins are retried with capped exponential backoff and jitter
    (`Renewal`); one WARNING per outage says what failed and when the token expires, and one
    line says when a login works again. Once no token is good any more, `token()` raises
    `LoginUnavailable` (its caller decides: the driver fails the scheduler, a sandbox read
    gives up). A definitive failure (the login refused, TLS not verified, a malformed
    answer) is an `AuthError` at once.

    With `keep_renewed()`, a daemon thread renews in the background, so that no call waits
    for a renewal login; without it, the caller of `token()` that finds renewal due logs in.
    """

    def __init__(
        self,
        account: ServiceAccount,
        ca_bundle: str,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        timeout: float = LOGIN_TIMEOUT_SECONDS,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.account = account
        self.ca_bundle = ca_bundle
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.timeout = timeout
        self.jitter = jitter
        self.logins = 0
        self.renewal = Renewal(refresh_margin)
        self._token: str | None = None
        self._lock = threading.Lock()  # `_token` and `renewal`
        self._login_lock = threading.Lock()  # one login at a time
        self._woken = threading.Condition(self._lock)
        self._renewer: threading.Thread | None = None
        self._closed = False
        self._on_refused: Callable[[str], None] | None = None

    def __repr__(self) -> str:
        account = self.account
        return f"TokenSource(uid={account.uid!r}, login_endpoint={account.login_endpoint!r})"

    def token(self) -> str:
        """A token not past its `exp`: renewed first when due (in the background with
        `keep_renewed`). `LoginUnavailable` when none is good and the IAM cannot be reached;
        `AuthError` when the IAM refuses."""
        with self._lock:
            action = self.renewal.action(self.clock())
            if self._token is not None and action == "use":
                return self._token
            if (
                self._token is not None
                and action == "renew"
                and self._renewer is not None
                and not self.renewal.refused
            ):
                self._woken.notify_all()
                return self._token
        return self._log_in()

    def header(self) -> dict[str, str]:
        """`{"Authorization": "token=<token>"}`, DC/OS' scheme."""
        return {"Authorization": f"token={self.token()}"}

    def invalidate(self) -> None:
        """The token was refused (401): the next `token()` logs in again, unless the IAM is in
        an outage's backoff, when the refused token is what there is."""
        with self._lock:
            self.renewal.refuse()

    def expires_in(self) -> float | None:
        """Seconds until the held token's `exp` (negative once past), None before a login."""
        with self._lock:
            expires = self.renewal.expires
        return None if expires is None else expires - self.clock()

    def next_attempt_in(self) -> float:
        """Seconds until the backoff allows the next login (0: now)."""
        with self._lock:
            return max(0.0, self.renewal.next_try - self.clock())

    def keep_renewed(self, on_refused: Callable[[str], None] | None = None) -> None:
        """Renew from a daemon thread from now on (until `close`); `on_refused(why)` hears a
        definitive failure of a background login (the account removed), or the held token's
        `exp` passing while the IAM is still unreachable: the scheduler fails; the thread
        ends."""
        with self._lock:
            if self._renewer is not None:
                return
            self._on_refused = on_refused
            self._renewer = threading.Thread(
                target=self._renew_loop, name="dcos-token", daemon=True
            )
        self._renewer.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._woken.notify_all()

    def _renew_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                wait = self.renewal.wake_in(self.clock())
                if wait is None or wait > 0:
                    self._woken.wait(min(wait or RENEWER_NAP_SECONDS, RENEWER_NAP_SECONDS))
                    continue
            try:
                self._log_in()
            except LoginUnavailable as exc:
                with self._lock:
                    expired = not self.renewal.held(self.clock())
                if not expired:
                    continue  # logged by `_log_in`; `renewal` says when to try again
                # No token is good any more and the IAM is still down: every call would be
                # refused from now on, so the scheduler fails now (health 503, exit; its
                # restart waits for the IAM answering 202), not at its next call, which an
                # idle scheduler may not make for minutes while it answers "healthy".
                LOG.error("strict mode: %s", exc)
                on_refused = self._on_refused
                if on_refused is not None:
                    on_refused(f"strict mode: {exc}")
                return
            except AuthError as exc:
                LOG.error("strict mode: renewing the DC/OS token failed: %s", exc)
                on_refused = self._on_refused
                if on_refused is not None:
                    on_refused(f"strict mode: {exc}")
                return

    def _log_in(self) -> str:
        """One login if the state still calls for one; the token to use (see `token`)."""
        with self._login_lock:
            with self._lock:
                now = self.clock()
                action = self.renewal.action(now)
                if self._token is not None and action == "use":
                    return self._token  # another thread logged in meanwhile
                if action == "wait":
                    raise self._unavailable(now)
            try:
                fresh = self._login()
                expires = token_expiry(fresh)
            except LoginUnavailable as exc:
                with self._lock:
                    now = self.clock()
                    first = self.renewal.failed(now, exc.reason, self.jitter())
                    held = self._token is not None and self.renewal.held(now)
                    expires_in = (self.renewal.expires or now) - now
                    retry_in = self.renewal.next_try - now
                    failures = self.renewal.failures
                endpoint = self.account.login_endpoint
                if first:
                    left = expires_in if held else None
                    LOG.warning("%s", outage_words(endpoint, exc.reason, left, retry_in))
                else:
                    LOG.debug(
                        "login at %s failed again (%d in a row): %s; next in %.1f s",
                        *(endpoint, failures, exc.reason, retry_in),
                    )
                with self._lock:
                    if held and self._token is not None:
                        return self._token
                    raise self._unavailable(self.clock()) from None
            with self._lock:
                now = self.clock()
                ended = self.renewal.renewed(now, expires)
                self._token = fresh
            if ended is not None:
                LOG.warning(
                    "logged in at %s again, after %d failed attempt(s) over %.0f s: the IAM "
                    "is back",
                    self.account.login_endpoint,
                    ended[0],
                    ended[1],
                )
            return fresh

    def _unavailable(self, now: float) -> LoginUnavailable:
        """No token good: the IAM not reached since `outage_since` (lock held)."""
        renewal = self.renewal
        since = renewal.outage_since if renewal.outage_since is not None else now
        expired = (
            f"the DC/OS token expired {now - renewal.expires:.0f} s ago and "
            if renewal.expires is not None
            else "no DC/OS token yet: "
        )
        return LoginUnavailable(
            f"{expired}the IAM at {self.account.login_endpoint} has not answered a login "
            f"for {now - since:.0f} s ({renewal.failures} attempts; last: {renewal.last_failure}"
            f"); next attempt in {max(0.0, renewal.next_try - now):.0f} s",
            renewal.last_failure,
        )

    def _login(self) -> str:
        endpoint = self.account.login_endpoint
        body = {"uid": self.account.uid, "token": login_token(self.account, self.clock())}
        try:
            response = requests.post(
                endpoint, json=body, verify=self.ca_bundle, timeout=self.timeout
            )
        except requests.exceptions.SSLError as exc:
            if not _certificate_refused(exc):  # the handshake cut short: a reset, not a "no"
                reason = _reason(exc)
                raise LoginUnavailable(f"cannot log in at {endpoint}: {reason}", reason) from None
            raise AuthError(
                f"cannot verify the TLS certificate of {endpoint} against the CA bundle "
                f"{self.ca_bundle} ({_reason(exc)}): point the CA bundle at the cluster's CA "
                f"({DCOS_CA_BUNDLE} on DC/OS nodes)"
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            reason = _reason(exc)  # refused, reset, unresolvable, timed out: not now
            raise LoginUnavailable(f"cannot log in at {endpoint}: {reason}", reason) from None
        except OSError as exc:  # a CA bundle that cannot be read, and the like
            raise AuthError(f"cannot log in at {endpoint}: {_reason(exc)}") from None
        self.logins += 1
        if response.status_code in (401, 403):
            raise AuthError(
                f"the IAM at {endpoint} refused the login of service account "
                f"{self.account.uid!r} ({response.status_code}: {_text(response)}): check the "
                "uid, and that its registered public key matches the credential's private key"
            )
        if response.status_code in TRANSIENT_STATUSES:
            reason = f"HTTP {response.status_code}: {_text(response, 120)}"
            raise LoginUnavailable(f"login at {endpoint} answered {reason}", reason)
        if response.status_code != 200:
            raise AuthError(
                f"login at {endpoint} answered {response.status_code}: {_text(response)}"
            )
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise AuthError(f'login at {endpoint} answered no {{"token": …}}') from None
        if not isinstance(token, str):
            raise AuthError(f"login at {endpoint} answered a token that is not a string")
        return token


Answer = TypeVar("Answer")


def again_after_401(
    tokens: TokenSource | None,
    refused_by: str,
    what: str,
    ask: Callable[[], Answer],
    status: Callable[[Answer], int],
) -> Answer:
    """`ask()`, and in strict mode (`tokens`) once more with a fresh login when its answer's
    `status` is 401: the token was refused (expired, as a DC/OS token does after its `exp`,
    five days by default; or signed with a key the IAM has since rotated), so it is marked
    refused (`invalidate`) and `ask()`, which must read `tokens.token()` anew, logs in again
    (during an IAM outage's backoff it gets the refused token again, or `LoginUnavailable`
    once that has expired, which `ask`'s caller handles). A second 401 is the answer: a
    fresh token refused too means the account itself is refused.

    This is DC/OS' "Post-Expiration Renewal" (module docstring); the 401 is what a Mesos
    HTTP authenticator that refuses a credential answers, on the master and on agents alike
    (libprocess `Unauthorized`, apache/mesos 3rdparty/libprocess include/process/http.hpp,
    src/process.cpp). For the master's operator API (`CalicoScheduler._ask_master`) and the
    agents' `/files/read` (`sandbox.AgentFiles`); the scheduler's calls and subscription go
    through the driver, which counts refusals in a row (`strict.StrictSchedulerDriver`).
    `refused_by` and `what` name the server and the request in the log ("the Mesos master",
    "/master/slaves"); never the token."""
    answer = ask()
    if tokens is not None and status(answer) == 401:
        LOG.warning("%s refused the token for %s: logging in again", refused_by, what)
        tokens.invalidate()
        answer = ask()
    return answer


def outage_words(endpoint: str, reason: str, expires_in: float | None, retry_in: float) -> str:
    """The one WARNING of an outage: what failed, what the token has left, what comes next."""
    if expires_in is None:  # none held yet (start-up), or the held one has expired
        goal, held = "for a DC/OS token", "no DC/OS token is good now"
    else:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
        goal = "to renew the DC/OS token"
        held = f"keeping the current token, which expires at {at} (in {expires_in:.0f} s)"
    return (
        f"cannot log in at {endpoint} {goal}: {reason}; {held}; retrying "
        f"with backoff (next in {retry_in:.1f} s, at most every {BACKOFF_CAP_SECONDS:.0f} s)"
    )


def _certificate_refused(exc: BaseException) -> bool:
    """The TLS error is the server's certificate not verified (CA or name), not a handshake
    cut short by a reset or an EOF."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return True
        seen = seen.__context__ if seen.__context__ is not seen else None
    return "certificate" in str(exc).lower()


def _reason(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, on one line."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return " ".join(str(exc).split()) or type(exc).__name__


def _text(response: requests.Response, most: int = 300) -> str:
    """The answer's body on one line, at most `most` characters, cut with an ellipsis."""
    text = " ".join(response.text.split())
    return text if len(text) <= most else text[: most - 1] + "…"
