"""Strict mode's service-account login, over real HTTPS sockets to the devcluster's IAM.

The IAM (`devcluster/iam.py`) and the CA (`devcluster/pki.py`) are the devcluster's
stand-ins for DC/OS' own; the client is the scheduler's (`dcos_auth.py`). Time is a shared
fake clock, so that a five-day token can expire without waiting.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from calico_dcos.api import ApiServer
from calico_dcos.dcos_auth import (
    CREDENTIAL_ENV,
    AuthError,
    TokenSource,
    login_token,
    parse_credential,
)
from calico_dcos.devcluster.iam import LOGIN_PATH, Iam, InvalidToken
from calico_dcos.devcluster.pki import Pki

UID = "calico-dcos-principal"


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cluster(tmp_path, keys, clock) -> Iterator[tuple[Iam, Pki, str]]:
    """The IAM over HTTPS with a CA made now; `UID` registered with the first key."""
    pki = Pki.create(tmp_path / "pki")
    iam = Iam(token_lifetime=100.0, clock=clock)
    iam.register(UID, public_pem(keys[0]))
    server = ApiServer(iam.app(), "127.0.0.1", 0, pki.server_context()).start()
    try:
        yield iam, pki, f"https://127.0.0.1:{server.port}{LOGIN_PATH}"
    finally:
        server.stop()


def credential(key, endpoint: str, uid: str = UID) -> str:
    """The JSON DC/OS gives a service as the secret DCOS_SERVICE_ACCOUNT_CREDENTIAL."""
    doc = {"scheme": "RS256", "uid": uid, "private_key": pem(key), "login_endpoint": endpoint}
    return json.dumps(doc)


def source(key, cluster, clock, uid: str = UID, ca_bundle=None) -> TokenSource:
    _, pki, endpoint = cluster
    account = parse_credential(credential(key, endpoint, uid), CREDENTIAL_ENV)
    return TokenSource(account, str(ca_bundle or pki.ca_bundle), refresh_margin=30, clock=clock)


def test_login_over_https_gives_a_token_the_master_accepts(cluster, keys, clock, caplog):
    caplog.set_level(logging.DEBUG)
    iam, _, _ = cluster
    tokens = source(keys[0], cluster, clock)

    header = tokens.header()["Authorization"]

    assert header.startswith("token=") and iam.verify(header) == UID
    assert iam.logins == [(UID, True)]
    secrets = [header.removeprefix("token="), pem(keys[0]).splitlines()[1]]
    assert not [s for s in secrets if s in caplog.text or s in repr(tokens)]
    assert pem(keys[0]).splitlines()[1] not in repr(tokens.account)


def test_the_token_is_renewed_before_it_expires_and_after_a_401(cluster, keys, clock):
    iam, _, _ = cluster
    tokens = source(keys[0], cluster, clock)
    first = tokens.token()

    clock.now += 60  # 40 s left, more than the 30 s margin: kept
    assert tokens.token() == first and len(iam.logins) == 1
    clock.now += 15  # 25 s left: renewed
    second = tokens.token()
    assert second != first and len(iam.logins) == 2
    clock.now += 30  # the first has expired, the second is good
    with pytest.raises(InvalidToken, match="expired"):
        iam.verify(f"token={first}")
    assert iam.verify(f"token={second}") == UID

    tokens.invalidate()  # what a 401 from the master does
    assert tokens.token() != second and len(iam.logins) == 3


@pytest.mark.parametrize(
    ("key_index", "uid", "words"),
    [
        (1, UID, "invalid"),
        (0, "nobody", "no service account 'nobody'"),
    ],
    ids=["a wrong key", "an unknown uid"],
)
def test_a_refused_login_says_what_to_fix(cluster, keys, clock, key_index, uid, words):
    iam, _, _ = cluster
    tokens = source(keys[key_index], cluster, clock, uid=uid)

    with pytest.raises(AuthError) as refused:
        tokens.token()

    message = str(refused.value)
    assert f"refused the login of service account {uid!r} (401:" in message
    assert words in message and "public key matches" in message
    assert iam.logins == [(uid, False)]


def test_an_expired_service_login_token_is_refused(cluster, keys, clock):
    """The scheduler's clock 200 s behind: its login token (120 s) is already past."""
    iam, _, _ = cluster
    behind = Clock(clock.now - 200)
    tokens = source(keys[0], cluster, behind)

    with pytest.raises(AuthError, match="the service login token has expired"):
        tokens.token()
    assert iam.logins == [(UID, False)]


def test_a_server_the_ca_bundle_does_not_vouch_for_is_refused(cluster, keys, clock, tmp_path):
    iam, _, _ = cluster
    other_ca = Pki.create(tmp_path / "other").ca_bundle
    tokens = source(keys[0], cluster, clock, ca_bundle=other_ca)

    with pytest.raises(AuthError) as refused:
        tokens.token()

    assert "cannot verify the TLS certificate of https://127.0.0.1:" in str(refused.value)
    assert f"against the CA bundle {other_ca}" in str(refused.value)
    assert "/run/dcos/pki/CA/ca-bundle.crt" in str(refused.value)
    assert iam.logins == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"login_endpoint": "http://127.0.0.1/acs/api/v1/auth/login"}, "not an https:// URL"),
        ({"uid": ""}, "uid: expected the service account's ID"),
        ({"scheme": "HS256"}, "only RS256"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"}, "unencrypted PEM private key"),
        ({"private_key": "EC"}, "expected an RSA key"),
    ],
    ids=["plain HTTP", "no uid", "not RS256", "not a key", "not RSA"],
)
def test_a_bad_credential_is_refused_naming_its_source_and_field(keys, change, words):
    doc = json.loads(credential(keys[0], "https://leader.mesos/acs/api/v1/auth/login"))
    if change.get("private_key") == "EC":
        change = {"private_key": pem(ec.generate_private_key(ec.SECP256R1()))}
    doc.update(change)

    with pytest.raises(AuthError) as refused:
        parse_credential(json.dumps(doc), CREDENTIAL_ENV)

    assert str(refused.value).startswith(f"{CREDENTIAL_ENV}: ") and words in str(refused.value)
    assert pem(keys[0]).splitlines()[1] not in str(refused.value)


def test_the_login_token_has_the_claims_dcos_asks_for(keys, clock):
    account = parse_credential(credential(keys[0], "https://m/acs"), CREDENTIAL_ENV)

    token = login_token(account, clock())

    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token, keys[0].public_key(), algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims == {"uid": UID, "exp": int(clock()) + 120}


def test_the_master_refuses_a_request_without_a_valid_token(cluster, keys):
    iam, _, _ = cluster
    forged = jwt.encode({"uid": UID, "exp": 2_000_000_000}, keys[0], algorithm="RS256")

    for header, words in [
        (None, "expected Authorization: token="),
        (f"Bearer {forged}", "expected Authorization: token="),
        (f"token={forged}", "invalid"),
    ]:
        with pytest.raises(InvalidToken, match=words):
            iam.verify(header)
