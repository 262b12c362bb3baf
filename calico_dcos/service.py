"""The running service, assembled from options: state store and leadership, the installer
zipapp, the HTTP API, and the scheduler with its core (the deploy plan, or the uninstall).

Used by `calico-dcos run`, `local`, `uninstall` and the benchmark; library code, so no
command imports another command for it.

Order matters: the leader lock is held before the records are read; the installer is built
and served before the first launch can point an agent at it; the API starts before the
scheduler because its port is in the FrameworkInfo.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from calico_dcos.api import ApiServer, build_app
from calico_dcos.artifacts import build_installer_zipapp
from calico_dcos.dcos_auth import (
    CREDENTIAL_ENV,
    AuthError,
    LoginUnavailable,
    TokenSource,
    parse_credential,
)
from calico_dcos.malloc_arenas import limit_arenas, mmap_large_chunks
from calico_dcos.options import Options, OptionsError, read_secret
from calico_dcos.scheduler import CalicoScheduler, within
from calico_dcos.signals import StopSignals
from calico_dcos.store import LeaderLockHeld, StoreError, open_store

LOG = logging.getLogger("calico_dcos.service")


def api_port(options: Mapping, environ: Mapping[str, str]) -> int:
    """`service.api_port`, else Marathon's $PORT_API or $PORT0, else 8080."""
    port = options["service"]["api_port"]
    return port or int(environ.get("PORT_API") or environ.get("PORT0") or 8080)


def artifacts_url(options: Mapping, host: str, port: int) -> str:
    return options["service"]["artifacts_url"] or f"http://{host}:{port}"


def api_token(options: Mapping) -> str | None:
    """The bearer token of the plan's mutating endpoints, if `service.api_token_file` is set.

    Surrounding whitespace is not part of it. A file that holds nothing else, or a token
    with a space, control or non-ASCII character inside (which no `Authorization` header
    can carry as one credential), is an OptionsError: it must never turn the check off.
    """
    option = "service.api_token_file"
    path = options["service"]["api_token_file"]
    if not path:
        return None
    token = read_secret(path, option).strip()
    if not token:
        raise OptionsError(
            [
                (
                    option,
                    f"{path} holds no token (it is empty or only whitespace): write the token "
                    'into it, or set the option to "" to leave the plan\'s commands open',
                )
            ]
        )
    if not all("!" <= char <= "~" for char in token):
        raise OptionsError(
            [
                (
                    option,
                    f"the token in {path} holds a space, control or non-ASCII character: a "
                    "bearer token is one word of printable ASCII (e.g. openssl rand -hex 32)",
                )
            ]
        )
    return token


def strict_tokens(options: Mapping, environ: Mapping[str, str]) -> TokenSource | None:
    """Strict mode: the service account, with one login tried now (so that a wrong key, an
    unknown uid or a bad CA stops the start before anything registers); None otherwise. A
    login that fails for now (the IAM unreachable, 5xx: `LoginUnavailable`) is logged and
    left to `wait_for_iam` (`tokens.expires_in()` is None then).

    The credential comes from `service.service_account_credential_file`, else from the DC/OS
    secret in $DCOS_SERVICE_ACCOUNT_CREDENTIAL. OptionsError for a missing or malformed
    credential or a `service.principal` that is not its uid; AuthError for a refused login.
    """
    service = options["service"]
    if not service["strict"]:
        return None
    option = "service.service_account_credential_file"
    if service["service_account_credential_file"]:
        text = read_secret(service["service_account_credential_file"], option)
        source = option
    else:
        text, source = environ.get(CREDENTIAL_ENV, ""), f"${CREDENTIAL_ENV}"
    if not text.strip():
        raise OptionsError(
            [
                (
                    option,
                    "service.strict needs the service account credential: give the app the "
                    f"DC/OS secret as ${CREDENTIAL_ENV}, or set this option to a file holding it",
                )
            ]
        )
    try:
        account = parse_credential(text, source)
    except AuthError as exc:
        raise OptionsError([(option, str(exc))]) from None
    if service["principal"] and service["principal"] != account.uid:
        raise OptionsError(
            [
                (
                    "service.principal",
                    f"{service['principal']!r} is not the service account {account.uid!r}: in "
                    "strict mode the principal is the account's uid (leave the option empty)",
                )
            ]
        )
    tokens = TokenSource(account, service["ca_bundle"])
    try:
        tokens.token()
    except LoginUnavailable:
        return tokens  # warned by `TokenSource`; `wait_for_iam` waits for it
    LOG.info("strict mode: logged in as service account %r", account.uid)
    return tokens


def wait_for_iam(tokens: TokenSource, late: _Late) -> None:
    """Log in, retrying with `TokenSource`'s backoff for as long as the IAM cannot be reached
    (a master restarting: Admin Router answers 5xx, or nothing answers), while the health
    check answers "waiting for the IAM at …" (202, which Marathon counts as passing), rather
    than exiting for Marathon to restart the scheduler into the same wait again. AuthError
    for a definitive failure (the login refused, TLS not verified), as at the first try."""
    endpoint = tokens.account.login_endpoint
    pause = threading.Event()  # never set: the backoff's wait
    while True:
        try:
            tokens.token()
        except LoginUnavailable as exc:
            late.waiting_for = (
                f"waiting for the IAM at {endpoint} (strict mode, no DC/OS token yet): {exc.reason}"
            )
            pause.wait(max(tokens.next_attempt_in(), 0.01))
            continue
        LOG.info("strict mode: logged in as service account %r", tokens.account.uid)
        return


@dataclass
class Service:
    """A running scheduler with its store and API; `stop()` leaves the framework to Mesos."""

    store: object
    api: ApiServer
    scheduler: CalicoScheduler
    scratch: Path | None = None  # the artifacts dir it made itself, removed on stop

    def stop(self) -> None:
        """A failed scheduler exits promptly: its store or driver may be what hangs."""
        patience = 1.0 if self.scheduler.failure else 10.0
        self.scheduler.stop(patience)
        self.api.stop()
        within(patience, self._close_store, "closing the state store")
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def _close_store(self) -> None:
        _release(self.store)


def _release(store) -> None:
    store.release_leadership()
    store.close()


def start_service(
    options: Options,
    master: str | None = None,
    host: str = "",
    port: int | None = None,
    artifacts_dir: Path | None = None,
    artifacts: Mapping[str, Path] | None = None,
    wait_for_leader: bool = True,
    **scheduler_kwargs,
) -> Service:
    """Store, API, leadership, installer, then the scheduler subscribes (the deploy plan,
    or the uninstall with `core=uninstalling(…)`). The API answers from the start, so that
    Marathon's health check hears "waiting" (for the leader lock, or in strict mode for an
    IAM that cannot be reached: `wait_for_iam`) rather than nothing; while another scheduler
    holds the lock, the log says who, every `LEADER_WAIT_REPORT_SECONDS`.

    `wait_for_leader=False` (`calico-dcos uninstall`, which a person runs and watches):
    another scheduler holding the lock is `LeaderLockHeld` at once, naming it, before the
    API takes a port (the running scheduler's port, when the options are the same)."""
    limit_arenas()  # before the API's, pymesos' and the sender's threads (issue 17)
    mmap_large_chunks()
    host = host or os.environ.get("HOST") or socket.getfqdn()
    token = api_token(options)
    tokens = strict_tokens(options, os.environ)
    waits_for_iam = tokens is not None and tokens.expires_in() is None
    if not waits_for_iam:
        _check_strict_master(options, master, tokens)
    store = open_store(options["service"]["state"], options["service"]["zk_credentials_file"])
    failed = threading.Event()
    state = options["service"]["state"]
    led = _lead_now(store, failed.set, state, refuse=not wait_for_leader)
    holder: list[CalicoScheduler] = []
    # Said before the API answers its first health check, so that no probe hears "starting"
    # while the lock (or the IAM) is what it waits for, nor a wait without the lock's holder.
    late = _Late(
        holder, "the scheduler is starting" if led else waiting_words(state, _holder_or_none(store))
    )
    leader_words = late.waiting_for
    if tokens is not None and waits_for_iam:
        late.waiting_for = f"waiting for the IAM at {tokens.account.login_endpoint}"
    port = api_port(options, os.environ) if port is None else port
    try:
        api = ApiServer(build_app(late, token), "0.0.0.0", port).start()
    except BaseException:
        _release(store)
        raise
    try:
        if tokens is not None and waits_for_iam:
            LOG.info("%s", late.waiting_for)
            wait_for_iam(tokens, late)
            _check_strict_master(options, master, tokens)
            late.waiting_for = leader_words
        if not led:
            _wait_for_leadership(store, failed.set, state, late)
    except BaseException:
        api.stop()
        store.close()
        raise
    late.waiting_for = "the scheduler is starting"
    scratch = None if artifacts_dir else Path(tempfile.mkdtemp(prefix="calico-dcos-artifacts-"))
    out_dir = Path(artifacts_dir or scratch)
    installer = build_installer_zipapp(out_dir)
    LOG.info("built the installer %s (sha256 %s)", installer.path.name, installer.sha256)
    url = artifacts_url(options, host, api.port)
    webui = f"http://{host}:{api.port}/"
    try:
        scheduler = CalicoScheduler(
            options, store, url, webui_url=webui, master=master, tokens=tokens, **scheduler_kwargs
        )
    except Exception:  # the stored state cannot be read: give the lock and port back
        api.stop()
        _release(store)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    scheduler.artifacts = {"installer.pyz": installer.path, **(artifacts or {})}
    holder.append(scheduler)
    threading.Thread(target=_fail_on, args=(failed, scheduler), daemon=True).start()
    LOG.info("API on port %d; agents fetch from %s", api.port, url)
    return Service(store, api, scheduler.start(), scratch)


# How often a scheduler waiting for the leader lock says so again, and who holds it.
LEADER_WAIT_REPORT_SECONDS = 30.0


def _lead_now(store, on_lost: Callable[[], None], state: str, refuse: bool) -> bool:
    """Take the leader lock if it is free (True). Held by another scheduler: False, or with
    `refuse`, the store closed and `LeaderLockHeld` naming that scheduler."""
    try:
        if store.try_acquire_leadership(on_lost):
            return True
        if not refuse:
            return False
        holder = _holder_or_none(store) or "another scheduler (it has just released it)"
    except BaseException:
        store.close()
        raise
    store.close()
    raise LeaderLockHeld(
        f"another scheduler holds the leader lock of {state} ({holder}): it runs the "
        "framework on this state now",
        holder,
    )


def _holder_or_none(store) -> str | None:
    """Who holds the lock; None when nobody does or the store cannot say just now."""
    try:
        return store.leader_holder()
    except StoreError:
        return None


def _wait_for_leadership(store, on_lost: Callable[[], None], state: str, late: _Late) -> None:
    """Take the leader lock, waiting for as long as another scheduler holds it (a standby;
    or the uninstall that DC/OS' package manager starts while the stopped app's ZooKeeper
    session still lives). Meanwhile the log and `/v1/health` say who holds it, the log
    again every `LEADER_WAIT_REPORT_SECONDS`. The blocking acquisition runs in a thread of
    its own so that this one can speak; its error is raised here."""
    outcome: list[BaseException | None] = []
    done = threading.Event()

    def acquire() -> None:
        try:
            store.acquire_leadership(on_lost)
            outcome.append(None)
        except BaseException as exc:  # raised in the caller's thread below
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=acquire, name="leader-lock", daemon=True).start()
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        if waited >= LEADER_WAIT_REPORT_SECONDS:  # the first time, it was asked just now
            late.waiting_for = waiting_words(state, _holder_or_none(store))
        LOG.info("%s%s", late.waiting_for, f" (for {waited:.0f} s)" if waited >= 1 else "")
        if done.wait(LEADER_WAIT_REPORT_SECONDS):
            break
    if outcome[0] is not None:
        raise outcome[0]


def waiting_words(state: str, holder: str | None) -> str:
    """The waiting scheduler's line in the log and `/v1/health`."""
    if holder is None:
        return f"waiting to be the leader of {state}"
    return (
        f"waiting to be the leader of {state}: another scheduler holds its lock ({holder}); "
        "this one takes over when it stops"
    )


def _check_strict_master(options: Options, master: str | None, tokens: TokenSource | None) -> None:
    """Strict mode with a master given as host:port: its TLS and our token, now
    (`strict.check_master`; AuthError)."""
    if tokens is None or (master or options["service"]["master"]).startswith("zk://"):
        return
    from calico_dcos.strict import check_master, master_address, tls_context

    address = master_address(master or options["service"]["master"])
    check_master(address, tokens, tls_context(options["service"]["ca_bundle"]))


class _Late:
    """The API starts before the scheduler exists (its port is in the FrameworkInfo)."""

    def __init__(self, holder: list[CalicoScheduler], waiting_for: str) -> None:
        self._holder = holder
        self.waiting_for = waiting_for

    def __getattr__(self, name: str):
        if not self._holder:
            raise RuntimeError(self.waiting_for)
        return getattr(self._holder[0], name)

    def health(self) -> tuple[str, list[str]]:
        if not self._holder:
            return "waiting", [self.waiting_for]
        return self._holder[0].health()


def _fail_on(lost: threading.Event, scheduler: CalicoScheduler) -> None:
    lost.wait()
    scheduler.fail("lost the leader lock: another scheduler may act now")


NOT_SUBSCRIBED_WARNING_SECONDS = 15.0


def wait_for_signal(service: Service, master: str = "") -> int:
    """Until SIGTERM/SIGINT (exit 0) or a failure Marathon should restart us for (exit 1).
    Not subscribed to a master after a while, it says which option names the master
    (`master`: where it came from, for the message); pymesos goes on retrying."""
    signals = StopSignals(service.scheduler.request_stop, raise_interrupt=False).install()
    started, warned = time.monotonic(), False
    try:
        while not service.scheduler.wait(1.0):
            late = time.monotonic() - started > NOT_SUBSCRIBED_WARNING_SECONDS
            if late and not warned and not service.scheduler.plan.subscribed:
                warned = True
                LOG.warning(
                    "not subscribed to a Mesos master after %.0f s; still trying %s: check "
                    "service.master (zk://host:2181/mesos or host:5050)",
                    NOT_SUBSCRIBED_WARNING_SECONDS,
                    master,
                )
    except Exception:
        LOG.exception("the pymesos driver failed")
        service.scheduler.fail("the pymesos driver failed")
    signals.shield()
    if signals.received is not None and not service.scheduler.failure:
        LOG.warning("%s", stopped_words(signal.Signals(signals.received).name, service))
    service.stop()
    return 1 if service.scheduler.failure else 0


def stopped_words(signal_name: str, service: Service) -> str:
    """What a stopped scheduler leaves: the framework stays registered and its tasks run
    until the master's failover timeout (Mesos `FrameworkInfo.failover_timeout`,
    apache/mesos include/mesos/v1/mesos.proto), so running it again resumes the rollout
    where it was, and only `uninstall` removes it."""
    timeout = float(service.scheduler.options["service"]["failover_timeout_seconds"])
    return (
        f"stopped ({signal_name}): the framework stays registered in Mesos and its tasks keep "
        f"running for up to {timeout:.0f} s (service.failover_timeout_seconds); run "
        "`calico-dcos run` again with the same options to resume, or `calico-dcos uninstall` "
        "with them to remove it"
    )
