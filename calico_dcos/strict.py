"""pymesos in DC/OS strict mode: HTTPS verified against the cluster's CA, and the DC/OS
authentication token on the subscription and on every call.

pymesos 0.3.15 speaks plain HTTP and knows only Basic authentication (douban/pymesos
`pymesos/scheduler.py`, `pymesos/process.py`). Its seams, used here without copying it:

- `MesosSchedulerDriver._basic_credential` is the whole `Authorization` value it puts on the
  SUBSCRIBE request (`gen_request`) and on every call (`_send`): here a property answering
  `token=<current token>` (DC/OS' scheme), so each request carries a token good for at least
  the renewal margin.
- `_get_conn` makes the calls' connection, `_get_version` asks `/version`: here over HTTPS
  with an `ssl.SSLContext` that verifies the master's certificate against the CA bundle.
- The subscription is one non-blocking socket in pymesos' IO thread, made by the module
  global `pymesos.process.Connection`. `TlsConnection` replaces it (`install`): a subclass
  of the driver's `EventStream` that behaves exactly as it for a driver without
  `tls_context`, and otherwise
  completes a TLS handshake once the TCP connection is up, then reads and writes through
  the TLS layer (a TLS "want read/write" is pymesos' EAGAIN).
- A 401 on a call or on the subscription drops the token (the next request logs in again)
  and retries; `MAX_UNAUTHORIZED` refusals in a row abort, since a fresh token refused too
  means the account itself is refused.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import socket
import ssl
from typing import Any

import pymesos.process

from calico_dcos.dcos_auth import AuthError, LoginUnavailable, TokenSource
from calico_dcos.driver import CallRefused, Driver, EventStream

LOG = logging.getLogger("calico_dcos.strict")
MAX_UNAUTHORIZED = 3
HANDSHAKE_TIMEOUT_SECONDS = 10.0


def tls_context(ca_bundle: str) -> ssl.SSLContext:
    """Verifies the server's certificate and name against `ca_bundle` (never unverified)."""
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise AuthError(
            f"cannot read the CA bundle {ca_bundle}: {exc}: point service.ca_bundle at the "
            "cluster's CA bundle (/run/dcos/pki/CA/ca-bundle.crt on DC/OS nodes)"
        ) from None


class _TlsSocket:
    """An SSLSocket as pymesos' Connection uses a plain one: TLS' want-read/write is EAGAIN."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock

    def send(self, data: bytes) -> int:
        try:
            return self._sock.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError(errno.EAGAIN, "TLS wants more") from None

    def recv(self, size: int) -> bytes:
        try:
            return self._sock.recv(size)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError(errno.EAGAIN, "TLS wants more") from None

    def pending(self) -> int:
        return self._sock.pending()

    def fileno(self) -> int:
        return self._sock.fileno()

    def getsockopt(self, *args: Any) -> Any:
        return self._sock.getsockopt(*args)

    def close(self) -> None:
        self._sock.close()


class TlsConnection(EventStream):
    """pymesos' subscription connection (as the driver reads it: `driver.EventStream`);
    over TLS when its driver has a `tls_context`."""

    def __init__(self, addr: str, callback: Any) -> None:
        super().__init__(addr, callback)
        self._tls: ssl.SSLContext | None = getattr(callback, "tls_context", None)

    def handle_connect_event(self) -> str:
        error = super().handle_connect_event()
        if error or self._tls is None:
            return error
        host = self._addr[0]
        try:
            self._sock.settimeout(HANDSHAKE_TIMEOUT_SECONDS)
            wrapped = self._tls.wrap_socket(self._sock, server_hostname=host)
            wrapped.setblocking(False)
        except (ssl.SSLError, OSError) as exc:
            self._callback.tls_failure = f"TLS with {host}:{self._addr[1]}: {exc}"
            return self._callback.tls_failure
        self._sock = _TlsSocket(wrapped)
        return ""

    def read(self) -> bool:
        """pymesos' read, then again while TLS holds decrypted bytes that select() cannot see;
        a 401 drops the token and reconnects (at most MAX_UNAUTHORIZED times in a row)."""
        try:
            alive = super().read()
            while alive and self._tls is not None and self._sock.pending():
                alive = super().read()
        except RuntimeError as exc:
            if "Failed with HTTP 401" not in str(exc):
                raise
            self._callback.unauthorized("the subscription")
            return False
        if alive and self.stream_id:
            self._callback.unauthorized_in_a_row = 0
        return alive


def install() -> None:
    """Make pymesos' IO thread build `TlsConnection`s (idempotent; plain drivers unchanged)."""
    pymesos.process.Connection = TlsConnection


class StrictSchedulerDriver(Driver):
    """`Driver` (pymesos' driver made fit for a real master) with DC/OS' token on every
    request, over verified TLS.

    `master` is `host:port` or `zk://…` as for pymesos (the caller strips `https://`).
    """

    def __init__(
        self,
        scheduler: Any,
        framework: dict,
        master: str,
        tokens: TokenSource,
        ca_bundle: str,
        **kwargs: Any,
    ) -> None:
        install()
        self.tokens = tokens
        self.tls_context = tls_context(ca_bundle)
        self.tls_failure: str | None = None
        self.unauthorized_in_a_row = 0
        super().__init__(scheduler, framework, master, **kwargs)

    @property
    def _basic_credential(self) -> str:
        """`token=<token>`. Through an IAM outage the held token serves until its `exp`
        (`TokenSource` retries the login meanwhile). A login refused (the account removed,
        a bad CA), or no token good any more while the IAM still cannot be reached, fails
        the scheduler, which exits for Marathon to restart it: every call from then on
        would be refused (401), and the restarted scheduler waits at start-up for the IAM,
        answering its health check "waiting" (`service.wait_for_iam`), where holding
        back here would leave a scheduler that looks subscribed but can do nothing."""
        try:
            return f"token={self.tokens.token()}"
        except LoginUnavailable as exc:
            self._fail(
                f"strict mode: {exc}: exiting for Marathon to restart the scheduler, which "
                "waits for the IAM at start-up"
            )
        except AuthError as exc:
            self._fail(f"strict mode: {exc}")
        return "token="

    @_basic_credential.setter
    def _basic_credential(self, value: object) -> None:
        """pymesos sets it from principal and secret; strict mode has a token instead."""

    def unauthorized(self, what: str) -> None:
        """The master refused the token: log in again, unless it keeps refusing."""
        self.unauthorized_in_a_row += 1
        self.tokens.invalidate()
        if self.unauthorized_in_a_row >= MAX_UNAUTHORIZED:
            outage = self.tokens.renewal.outage_since is not None
            self._fail(
                f"strict mode: the Mesos master refused {what} {self.unauthorized_in_a_row} "
                f"times in a row with tokens of {self.tokens.account.uid!r}: "
                + (
                    f"the IAM at {self.tokens.account.login_endpoint} cannot be reached for a "
                    f"fresh one ({self.tokens.renewal.last_failure})"
                    if outage
                    else "fresh ones: check the service account and its permissions"
                )
            )
            return
        LOG.warning("the Mesos master refused the token for %s: logging in again", what)

    def _fail(self, why: str) -> None:
        fail = getattr(self.sched, "fail", None)
        if fail is not None:
            fail(why)
        else:
            LOG.error("%s", why)

    def _get_conn(self) -> http.client.HTTPSConnection | None:
        if not self.connected:
            return None
        if self._conn is None:
            host, port = self.master.split(":", 2)
            self._conn = http.client.HTTPSConnection(
                host, int(port), timeout=self._timeout, context=self.tls_context
            )
        return self._conn

    def _get_version(self, master: str | None) -> str | None:
        if master is None:
            return None
        host, port = master.split(":", 2)
        conn = http.client.HTTPSConnection(
            host, int(port), timeout=self._timeout, context=self.tls_context
        )
        try:
            conn.request("GET", "/version", headers={"Authorization": self._basic_credential})
            response = conn.getresponse()
            if response.status != 200:
                return None
            return json.loads(response.read().decode())["version"]
        except (OSError, ValueError, KeyError, AuthError) as exc:
            LOG.warning("cannot read %s/version: %s", master, exc)
            return None
        finally:
            conn.close()

    def _send(
        self,
        body: Any,
        path: str = "/api/v1/scheduler",
        method: str = "POST",
        headers: dict | None = None,
    ) -> dict:
        """pymesos' call; a 401 drops the token and the call is sent once more."""
        for attempt in (1, 2):
            try:
                answer = super()._send(body, path=path, method=method, headers=dict(headers or {}))
            except CallRefused as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self.unauthorized(f"a {body.get('type', 'call') if body else 'call'} call")
                continue
            self.unauthorized_in_a_row = 0
            return answer
        raise AssertionError("unreachable")


def master_address(url: str) -> str:
    """`https://host:port` -> `host:port`, as pymesos takes it; zk://… unchanged. The option
    was checked when loaded (`options.strict_master`)."""
    return url if url.startswith("zk://") else url.removeprefix("https://").rstrip("/")


def check_master(address: str, tokens: TokenSource, context: ssl.SSLContext) -> None:
    """Ask the master's `/version` over verified TLS with the token, before registering, so
    that a bad CA or a refused token is a clear error at start-up (AuthError)."""
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=context)
    try:
        conn.request("GET", "/version", headers={"Authorization": f"token={tokens.token()}"})
        status = conn.getresponse().status
    except ssl.SSLCertVerificationError as exc:
        raise AuthError(
            f"cannot verify the TLS certificate of the Mesos master {address} against the CA "
            f"bundle {tokens.ca_bundle} ({exc.verify_message}): point service.ca_bundle at "
            "the cluster's CA (/run/dcos/pki/CA/ca-bundle.crt on DC/OS nodes)"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise AuthError(
            f"cannot reach the Mesos master at https://{address}: {socket_error_reason(exc)}"
        ) from None
    finally:
        conn.close()
    if status == 401:
        raise AuthError(
            f"the Mesos master at {address} refused the token of {tokens.account.uid!r}"
        )


def socket_error_reason(exc: BaseException) -> str:
    """One line for a socket or TLS error."""
    if isinstance(exc, socket.timeout):
        return "timed out"
    return " ".join(str(exc).split()) or type(exc).__name__
