"""A strict-mode install over real sockets: the devcluster demands HTTPS and DC/OS tokens
(`DevCluster(strict=True)`), the real scheduler (pymesos through `strict.py`) logs in as a
service account and installs; and each configuration mistake stops it at start-up with a
message naming what to fix, before anything is stored or registered."""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from calico_dcos.commands.run import load_or_exit, start_or_exit
from calico_dcos.dcos_auth import ServiceAccount, login_token
from calico_dcos.devcluster.pki import Pki
from calico_dcos.options import load_options
from calico_dcos.service import start_service
from tests.helpers.devcluster import running_cluster, wait_until
from tests.integration.harness import (
    TIMINGS,
    converged,
    launch_counts,
    options_env,
    scheduler_on,
)

UID = "calico-dcos-principal"
# Each one-shot step outlasts a 2 s token, so an install outlasts several however fast the
# scheduler and the devcluster are (at 0.3 s the whole install took ~1 s, one token).
DURATIONS = {"calico-docker": 2.2, "calico-cni": 2.2}


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def strict_options(cluster, workdir, key, uid: str = UID, **overrides: str) -> dict[str, str]:
    """The options of a strict-mode scheduler on `cluster`, its credential in a file."""
    credential = workdir / "service-account.json"
    doc = {
        "scheme": "RS256",
        "uid": uid,
        "private_key": private_pem(key),
        "login_endpoint": cluster.login_endpoint,
    }
    credential.write_text(json.dumps(doc))
    credential.chmod(0o600)
    return {
        "service_strict": "true",
        "service_master": f"https://{cluster.master_url}",
        "service_ca_bundle": str(cluster.ca_bundle),
        "service_service_account_credential_file": str(credential),
        "rollout_max_concurrent_restarts": "100%",
        **overrides,
    }


def test_a_strict_install_converges_renewing_short_lived_tokens_and_shows_no_secret(
    tmp_path, key, caplog
):
    """Tokens live 2 s: the install outlasts several, each renewed before it expires."""
    caplog.set_level(logging.DEBUG)
    with running_cluster(
        agents=2, public_agents=1, strict=True, token_lifetime=2.0, synthetic_durations=DURATIONS
    ) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        with scheduler_on(cluster, tmp_path, **strict_options(cluster, tmp_path, key)) as service:
            wait_until(converged(service), 40, "a strict-mode install")
            wait_until(lambda: len(cluster.master.iam.logins) >= 3, 10, "a third login")
            # GET_FLAGS carries the token too: the master's 100ms (tests' FAST) is learned
            learned = lambda: service.scheduler.plan.config.allocation_interval_seconds  # noqa: E731
            wait_until(lambda: learned() == 0.1, 10, "the master's allocation interval")
            token = service.scheduler.tokens.token()
            base = f"http://127.0.0.1:{service.api.port}"
            answers = [requests.get(base + p, timeout=5).text for p in PAGES]
            framework = cluster.state()["frameworks"][0]
        timeline = cluster.timeline()
        shown = [json.dumps(cluster.state()), json.dumps(timeline)]

    assert framework["principal"] == UID
    assert all(accepted for _, accepted in cluster.master.iam.logins)
    counts = launch_counts(timeline)
    assert counts and set(counts.values()) == {1}, counts  # nothing launched twice
    assert not [e for e in timeline if e["event"] == "unauthenticated"]
    secret_line = private_pem(key).splitlines()[1]
    for text in [caplog.text, *answers, *shown]:
        assert secret_line not in text and token not in text


PAGES = ["/", "/v1/options", "/v1/status", "/v1/agents", "/v1/plan", "/metrics", "/v1/health"]


@pytest.mark.parametrize(
    ("mistake", "words"),
    [
        ("a wrong key", "refused the login of service account 'calico-dcos-principal'"),
        ("an unknown uid", "no service account 'someone-else'"),
        ("a bad CA", "cannot verify the TLS certificate"),
        ("a plain-HTTP master URL", "service.strict needs https://host:port"),
        ("no credential", "service.strict needs the service account credential"),
        ("another principal", "is not the service account 'calico-dcos-principal'"),
    ],
)
def test_a_mistake_stops_the_start_naming_what_to_fix_before_anything_is_done(
    tmp_path, key, capsys, monkeypatch, mistake, words
):
    """As `calico-dcos run` starts: options from the environment, then the service."""
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with running_cluster(agents=1, public_agents=0, strict=True) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        options = strict_options(cluster, tmp_path, key)
        if mistake == "a wrong key":
            options = strict_options(cluster, tmp_path, other_key)
        elif mistake == "an unknown uid":
            options = strict_options(cluster, tmp_path, key, uid="someone-else")
        elif mistake == "a bad CA":
            options["service_ca_bundle"] = str(Pki.create(tmp_path / "other-ca").ca_bundle)
        elif mistake == "a plain-HTTP master URL":
            options["service_master"] = f"http://{cluster.master_url}"
        elif mistake == "no credential":
            options["service_service_account_credential_file"] = ""
        elif mistake == "another principal":
            options["service_principal"] = "calico"
        for name, value in options_env(tmp_path / "state", cluster.master_url, **options).items():
            monkeypatch.setenv(name, value)

        with pytest.raises(SystemExit) as stopped:
            start_or_exit(load_or_exit(None), host="127.0.0.1", port=0, timings=TIMINGS)
        timeline = cluster.timeline()

    error = capsys.readouterr().err
    assert stopped.value.code == 2, error
    assert words in error
    assert private_pem(key).splitlines()[1] not in error
    assert not (tmp_path / "state").exists()
    assert not [e for e in timeline if e["event"] == "framework_subscribed"]


def test_the_strict_master_refuses_no_token_and_a_principal_that_is_not_the_tokens(key):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with running_cluster(agents=1, public_agents=0, strict=True) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        cluster.register_service_account("other", public_pem(other))
        url = f"{cluster.base_url}/api/v1/scheduler"
        subscribe = {
            "type": "SUBSCRIBE",
            "subscribe": {"framework_info": {"user": "root", "name": "x", "principal": UID}},
        }
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        bare = requests.post(url, json=subscribe, headers=headers, verify=cluster.ca_bundle)
        token = cluster.master.iam.login(
            {"uid": "other", "token": login_token(ServiceAccount("other", other), time.time())}
        )
        mismatched = requests.post(
            url,
            json=subscribe,
            headers={**headers, "Authorization": f"token={token}"},
            verify=cluster.ca_bundle,
        )
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(url, json=subscribe, headers=headers, timeout=5)  # system CAs only
        # What the scheduler reads after subscribing asks for the token too.
        readers = [
            requests.get(f"{cluster.base_url}/master/slaves", verify=cluster.ca_bundle),
            requests.post(
                f"{cluster.base_url}/api/v1",
                json={"type": "GET_FRAMEWORKS"},
                verify=cluster.ca_bundle,
            ),
        ]

    assert [r.status_code for r in readers] == [401, 401]
    assert (bare.status_code, bare.text) == (401, "401 Unauthorized.")
    assert bare.headers["WWW-Authenticate"].startswith("token ")
    assert mismatched.status_code == 400
    assert "Authenticated principal 'other' does not match principal" in mismatched.text


def test_an_account_without_view_flags_is_warned_once_naming_the_grant_and_installs(
    tmp_path, key, caplog
):
    """Strict mode, the account granted all it needs but `dcos:mesos:master:flags` read (the
    devcluster authorizer's per-account grant): the master refuses GET_FLAGS (403, VIEW_FLAGS
    denied), the plan keeps Mesos' default 1 s, one warning names the grant however often the
    scheduler subscribes, and the install goes on."""
    caplog.set_level(logging.INFO)
    with running_cluster(
        agents=1, public_agents=0, strict=True, allocation_interval=0.3
    ) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        cluster.grant(UID, {"REGISTER_FRAMEWORK", "RUN_TASK", "VIEW_FRAMEWORK", "ACCESS_SANDBOX"})
        with scheduler_on(cluster, tmp_path, **strict_options(cluster, tmp_path, key)) as service:
            scheduler = service.scheduler
            wait_until(lambda: scheduler.master_flags.asked == 1, 20, "GET_FLAGS asked")
            # stored once its group commit is durable, which may come after GET_FLAGS
            framework_id = wait_until(scheduler.framework_id, 20, "the framework ID stored")
            cluster.disconnect_framework(framework_id)  # subscribes again, asks again
            wait_until(lambda: scheduler.master_flags.asked == 2, 20, "GET_FLAGS asked again")
            wait_until(converged(service), 40, "a strict-mode install")
            interval = scheduler.plan.config.allocation_interval_seconds
            status = f"http://127.0.0.1:{service.api.port}/v1/status"
            shown = requests.get(status, timeout=5).json()["warnings"]

    assert interval == 1.0
    # where operators look: /v1/status (and so the status page, `calico-dcos status`)
    assert [w for w in shown if "cannot learn the master's --allocation_interval" in w] == [
        scheduler.master_flags.warning
    ]
    warnings = [r.getMessage() for r in caplog.records if "--allocation_interval" in r.getMessage()]
    [warning] = [w for w in warnings if "cannot learn" in w and "VIEW_FLAGS" in w]
    assert "GET_FLAGS refused: 403" in warning
    assert (
        f"does not let principal {UID!r} view its flags: grant it VIEW_FLAGS (on DC/OS, "
        "dcos:mesos:master:flags read; README, strict mode)"
    ) in warning
    levels = [r.levelname for r in caplog.records if "cannot learn" in r.getMessage()]
    assert levels == ["WARNING", "INFO"]


def test_tokens_refused_mid_install_are_renewed_and_nothing_is_lost(tmp_path, key):
    """The IAM's signing key rotates while tasks run: every token so far is refused (401).
    Each refused call drops the token, logs in again and is sent once more."""
    durations = {"calico-docker": 1.0, "calico-cni": 1.0}
    with running_cluster(
        agents=2, public_agents=1, strict=True, synthetic_durations=durations
    ) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        with scheduler_on(cluster, tmp_path, **strict_options(cluster, tmp_path, key)) as service:
            wait_until(lambda: launch_counts(cluster.timeline()), 20, "a first launch")
            cluster.master.iam.rotate_signing_key()
            wait_until(converged(service), 40, "the install, with the old tokens refused")
        timeline = cluster.timeline()

    refused = [e for e in timeline if e["event"] == "unauthenticated"]
    assert refused, "no call was refused: the rotation came too late to test anything"
    logins = cluster.master.iam.logins
    assert len(logins) >= 2 and all(accepted for _, accepted in logins)
    counts = launch_counts(timeline)
    assert set(counts.values()) == {1}, counts  # nothing launched twice, nothing lost
    assert service.scheduler.failure is None


def test_a_master_found_through_zookeeper_is_spoken_to_over_verified_tls(tmp_path, key):
    """`service.master: zk://…` in strict mode: pymesos' detector finds the leading master in
    ZooKeeper (a real server), and every connection to it is TLS with the token."""
    from tests.helpers.zookeeper import ZooKeeperServer

    with (
        ZooKeeperServer() as zookeeper,
        running_cluster(
            agents=1, public_agents=1, strict=True, zk=f"{zookeeper.hosts}/mesos"
        ) as cluster,
    ):
        cluster.register_service_account(UID, public_pem(key))
        options = strict_options(cluster, tmp_path, key)
        options["service_master"] = f"zk://{zookeeper.hosts}/mesos"
        with scheduler_on(cluster, tmp_path, **options) as service:
            wait_until(converged(service), 40, "a strict-mode install found through ZooKeeper")
            framework = cluster.state()["frameworks"][0]

    assert framework["principal"] == UID


def test_a_failed_tasks_stderr_is_read_from_its_agent_with_the_token_over_tls(tmp_path, key):
    """Strict mode: the agent's `/files/read` wants the scheduler's token and speaks TLS (its
    certificate from the cluster's CA) though the offer's url says "http", as Mesos' does; the
    end of the failed task's stderr still reaches the plan (issue 13, case 3)."""
    missing = str(tmp_path / "absent" / "python3")
    with running_cluster(agents=1, public_agents=0, strict=True, executor="process") as cluster:
        cluster.register_service_account(UID, public_pem(key))
        (agent,) = cluster.agents
        options = strict_options(cluster, tmp_path, key, service_agent_python=missing,
                                 rollout_max_host_failures="1")  # fmt: skip
        with scheduler_on(cluster, tmp_path, **options) as service:
            known = service.scheduler.plan.agents

            def docker_reason() -> str:
                step = (
                    known[agent.agent_id].steps.get("docker") if agent.agent_id in known else None
                )
                return step.reason if step else ""

            wait_until(docker_reason, 30, "the docker step's stderr, read over TLS")
        timeline = cluster.timeline()

    assert f"{missing}: not found" in docker_reason()
    assert [e for e in timeline if e["event"] == "files_read"]
    assert not [e for e in timeline if e["event"] == "unauthenticated"]


def test_the_masters_operator_api_asks_log_in_again_when_the_token_has_expired(
    tmp_path, key, caplog
):
    """What the scheduler asks the master at each subscription (GET_FLAGS, GET_FRAMEWORKS,
    `/master/slaves`) meets a token that has expired at the IAM (its clock moved past the
    token's `exp`, as after a renewal missed while the host was paused): the master answers
    401, the scheduler drops the token, logs in again and asks once more, as its calls do."""
    caplog.set_level(logging.INFO)
    lifetime = 20.0  # each jump below stays inside the service login token's 120 s
    with running_cluster(
        agents=1, public_agents=0, strict=True, token_lifetime=lifetime, allocation_interval=0.3
    ) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        iam = cluster.master.iam
        with scheduler_on(cluster, tmp_path, **strict_options(cluster, tmp_path, key)) as service:
            scheduler = service.scheduler
            wait_until(converged(service), 40, "a strict-mode install")
            wait_until(lambda: scheduler.master_flags.asked == 1, 10, "GET_FLAGS asked")
            caplog.clear()
            asks = {
                "GET_FLAGS": scheduler._learn_master_flags,
                "GET_FRAMEWORKS": lambda: scheduler._another_framework(scheduler.framework_id()),
                "/master/slaves": scheduler._agents_known,
            }
            logins = {}
            for jump, (name, ask) in enumerate(asks.items(), start=1):
                held = scheduler.tokens.token()
                iam.clock = lambda jump=jump: time.time() + jump * (lifetime + 1)
                before = len(iam.logins)
                ask()
                logins[name] = len(iam.logins) - before
                fresh = scheduler.tokens.token() != held
                assert fresh, f"{name} kept the expired token"
            asked, warned, failure = (
                scheduler.master_flags.asked,
                scheduler.master_flags.warned,
                scheduler.failure,
            )

    assert failure is None
    assert (asked, warned) == (2, False)  # answered, with the master's flags
    assert all(n >= 1 for n in logins.values()), logins  # (a call of ours may log in too)
    assert all(accepted for _, accepted in iam.logins)
    words = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in words if "cannot" in w or "refused: 401" in w], words
    assert [w for w in words if "refused the token" in w]


def test_the_scheduler_rides_out_an_iam_outage_at_renewal_and_renews_once_it_is_back(
    tmp_path, key, caplog
):
    """The token is due for renewal (the scheduler's token clock moved to 100 s before its
    `exp`, inside the 300 s margin) when the IAM starts answering 503 (the devcluster fault,
    armed over HTTP as an operator would), and the master drops the subscription meanwhile,
    as a master restart does: the scheduler subscribes again with the token it holds, keeps
    retrying the login with backoff, warns once, and renews once the IAM is back."""
    caplog.set_level(logging.INFO)
    with running_cluster(agents=1, public_agents=0, strict=True) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        iam, faults = cluster.master.iam, f"{cluster.base_url}/devcluster/faults/iam-unavailable"
        with scheduler_on(cluster, tmp_path, **strict_options(cluster, tmp_path, key)) as service:
            scheduler = service.scheduler
            wait_until(converged(service), 40, "a strict-mode install")
            tokens, held = scheduler.tokens, scheduler.tokens.token()
            armed = requests.post(faults, json={"status": 503}, verify=cluster.ca_bundle)
            logins_before = len(iam.logins)
            jump = tokens.expires_in() - 100.0  # after arming: no renewal may slip in before
            tokens.clock = lambda: time.time() + jump
            subscribed = lambda: len(subscriptions(cluster))  # noqa: E731
            before = subscribed()
            cluster.disconnect_framework(scheduler.framework_id())
            wait_until(lambda: subscribed() > before, 20, "subscribed again during the outage")
            wait_until(lambda: iam.unavailable_answers >= 2, 20, "the login retried")
            health_url = f"http://127.0.0.1:{service.api.port}/v1/health"
            healthy = lambda: requests.get(health_url, timeout=5).status_code == 200  # noqa: E731
            wait_until(healthy, 20, "healthy again (subscribed) during the outage")
            during = (tokens.token(), scheduler.failure, len(iam.logins))
            lifted = requests.delete(faults, verify=cluster.ca_bundle)
            # the IAM counts the login before its answer reaches the scheduler: wait for that
            renewed = wait_until(lambda: tokens.token() != held and tokens.token(), 20, "renewed")

    assert (armed.status_code, lifted.status_code) == (202, 200)
    assert during == (held, None, logins_before), (during[1:], during[0] == held)
    assert renewed != held and service.scheduler.failure is None
    assert len(iam.logins) == logins_before + 1  # one login once the IAM is back
    assert all(accepted for _, accepted in iam.logins)
    words = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    outage = [w for w in words if "to renew the DC/OS token: HTTP 503" in w]
    assert len(outage) == 1 and "keeping the current token, which expires at" in outage[0], words
    assert len([w for w in words if "the IAM is back" in w]) == 1, words
    assert not [w for w in words if "scheduler failing" in w]


def subscriptions(cluster) -> list[dict]:
    return [e for e in cluster.timeline() if e["event"] == "framework_subscribed"]


def test_a_start_while_the_iam_is_down_waits_for_it_answering_waiting(tmp_path, key, caplog):
    """Started (restarted by Marathon) while the IAM answers 503: the health check answers
    202 "waiting for the IAM at …" (which Marathon counts as passing) and nothing registers,
    instead of exiting into a restart loop; once the IAM is back the scheduler logs in,
    subscribes and installs."""
    import threading

    from tests.helpers.zookeeper import free_port

    caplog.set_level(logging.INFO)
    with running_cluster(agents=1, public_agents=0, strict=True) as cluster:
        cluster.register_service_account(UID, public_pem(key))
        cluster.iam_unavailable(503)
        port = free_port()
        env = options_env(
            tmp_path / "state", cluster.master_url, **strict_options(cluster, tmp_path, key)
        )
        started: list = []

        def start() -> None:
            started.append(
                start_service(
                    load_options(None, env),
                    host="127.0.0.1",
                    port=port,
                    artifacts_dir=tmp_path / "artifacts",
                    timings=TIMINGS,
                )  # fmt: skip
            )

        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        try:
            health = f"http://127.0.0.1:{port}/v1/health"

            def waiting() -> requests.Response | None:
                try:
                    answer = requests.get(health, timeout=5)
                except requests.ConnectionError:
                    return None
                return answer if "HTTP 503" in answer.text else None  # a login tried

            answer = wait_until(waiting, 20, "the health check waiting for the IAM")
            wait_until(lambda: cluster.master.iam.unavailable_answers >= 2, 20, "a retry")
            registered_meanwhile = subscriptions(cluster)
            cluster.iam_available()
            starter.join(30)
            [service] = started
            try:
                wait_until(converged(service), 40, "the install once the IAM is back")
            finally:
                service.stop()
        finally:
            cluster.iam_available()
            starter.join(30)

    assert answer.status_code == 202
    [reason] = answer.json()["reasons"]
    assert reason.startswith(f"waiting for the IAM at {cluster.login_endpoint}") and "503" in reason
    assert registered_meanwhile == []
    assert service.scheduler.failure is None
