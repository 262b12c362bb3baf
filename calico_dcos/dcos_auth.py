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

TLS is always verified, against `ca_bundle` (on DC/OS nodes `/run/dcos/pki/CA/ca-bundle.crt`,
`DCOS_CA_BUNDLE`); an `http://` login endpoint is refused, since it would send the login token
in clear. Nothing here logs or shows the private key or a token (`repr` hides both).
"""

from __future__ import annotations

import json
import logging
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
    after `invalidate()` (a 401). Thread-safe."""

    def __init__(
        self,
        account: ServiceAccount,
        ca_bundle: str,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        timeout: float = LOGIN_TIMEOUT_SECONDS,
    ) -> None:
        self.account = account
        self.ca_bundle = ca_bundle
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.timeout = timeout
        self.logins = 0
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        account = self.account
        return f"TokenSource(uid={account.uid!r}, login_endpoint={account.login_endpoint!r})"

    def token(self) -> str:
        """A token good for at least `refresh_margin` more seconds (or half its lifetime)."""
        with self._lock:
            if self._token is None or self.clock() >= self._renew_at:
                issued = self.clock()
                self._token = self._login()
                expires = token_expiry(self._token)
                self._renew_at = expires - min(self.refresh_margin, (expires - issued) / 2)
            return self._token

    def header(self) -> dict[str, str]:
        """`{"Authorization": "token=<token>"}`, DC/OS' scheme."""
        return {"Authorization": f"token={self.token()}"}

    def invalidate(self) -> None:
        """The token was refused (401): the next `token()` logs in again."""
        with self._lock:
            self._token = None

    def _login(self) -> str:
        endpoint = self.account.login_endpoint
        body = {"uid": self.account.uid, "token": login_token(self.account, self.clock())}
        try:
            response = requests.post(
                endpoint, json=body, verify=self.ca_bundle, timeout=self.timeout
            )
        except requests.exceptions.SSLError as exc:
            raise AuthError(
                f"cannot verify the TLS certificate of {endpoint} against the CA bundle "
                f"{self.ca_bundle} ({_reason(exc)}): point the CA bundle at the cluster's CA "
                f"({DCOS_CA_BUNDLE} on DC/OS nodes)"
            ) from None
        except OSError as exc:  # requests' ConnectionError, Timeout and a missing bundle
            raise AuthError(f"cannot log in at {endpoint}: {_reason(exc)}") from None
        self.logins += 1
        if response.status_code in (401, 403):
            raise AuthError(
                f"the IAM at {endpoint} refused the login of service account "
                f"{self.account.uid!r} ({response.status_code}: {_text(response)}): check the "
                "uid, and that its registered public key matches the credential's private key"
            )
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
    five days by default; or signed with a key the IAM has since rotated), so it is dropped
    (`invalidate`) and `ask()`, which must read `tokens.token()` anew, logs in again. A
    second 401 is the answer: a fresh token refused too means the account itself is refused.

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


def _reason(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, on one line."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return " ".join(str(exc).split()) or type(exc).__name__


def _text(response: requests.Response) -> str:
    return " ".join(response.text.split())[:300]
