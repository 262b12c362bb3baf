"""DC/OS' Identity and Access Manager as strict mode needs it: service login and tokens.

What it plays (DC/OS documentation, "Service Login", "DC/OS Authentication Token", "Identity
and Access Management API"):

- `POST /acs/api/v1/auth/login` with `{"uid", "token"}`, where `token` is a service login
  token: an RS256 JWT with the claims `uid` and `exp`, signed with the service account's
  private key. The IAM checks it against the public key registered for that uid and answers
  `{"token": <DC/OS authentication token>}`: an RS256 JWT with `uid` and `exp`, signed with
  the IAM's own key, valid `token_lifetime` seconds (five days by default in DC/OS).
- Anything the IAM refuses is a 401 with a JSON body `{"title", "description", "code"}`; the
  words are the devcluster's own, not copied from DC/OS.

The outage fault (`become_unavailable`, `become_available`; `POST`/`DELETE
/devcluster/faults/iam-unavailable`): every login is answered with a status such as 503, as
Admin Router answers while the IAM behind it on a master is restarting or gone (a 5xx from
nginx' `proxy_pass http://iam`: dcos/dcos packages/adminrouter/extra/src/includes/server/
open/master.conf). Tokens already issued stay valid: only logins fail.

`verify(authorization)` is what the master does with `Authorization: token=<token>` on each
request: the uid the token was issued to, or `InvalidToken` saying why not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

LOGIN_PATH = "/acs/api/v1/auth/login"
FIVE_DAYS = 5 * 24 * 3600.0
MAX_LOGIN_BYTES = 16 * 1024


class InvalidToken(Exception):
    """A request's DC/OS authentication token is missing, malformed, forged or expired."""


class Iam:
    """Registered service accounts and the tokens issued to them. Thread-safe."""

    def __init__(
        self, token_lifetime: float = FIVE_DAYS, clock: Callable[[], float] = time.time
    ) -> None:
        self.token_lifetime = token_lifetime
        self.clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._accounts: dict[str, RSAPublicKey] = {}
        self._lock = threading.Lock()
        self.logins: list[tuple[str, bool]] = []  # (uid, accepted), in order
        self.unavailable_status: int | None = None  # the outage fault's answer, if armed
        self.unavailable_answers = 0  # logins answered so by the outage fault

    def become_unavailable(self, status: int = 503) -> None:
        """From now on every login is answered `status` (429 or 5xx), until
        `become_available`; tokens issued before stay valid."""
        if status != 429 and not 500 <= status <= 599:
            raise ValueError(f"an outage answers 429 or a 5xx status, not {status}")
        with self._lock:
            self.unavailable_status = status

    def become_available(self) -> None:
        """The outage ends: logins are answered again."""
        with self._lock:
            self.unavailable_status = None

    def create_service_account(self, uid: str, login_endpoint: str) -> dict:
        """A new key pair registered for `uid`, and the credential DC/OS would keep as the
        account's secret (`dcos security org service-accounts keypair` and `create`, then
        `dcos security secrets create-sa-secret`): `{"scheme", "uid", "private_key",
        "login_endpoint"}`."""
        from cryptography.hazmat.primitives import serialization

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.register(uid, public)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return {
            "scheme": "RS256",
            "uid": uid,
            "private_key": private.decode(),
            "login_endpoint": login_endpoint,
        }

    def rotate_signing_key(self) -> None:
        """A new IAM signing key: every token issued so far is refused from now on (401), as
        after a rotation of the IAM's key; clients must log in again."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with self._lock:
            self._key = key

    def register(self, uid: str, public_key_pem: bytes) -> None:
        """`dcos security org service-accounts create -p <public key> <uid>`."""
        key = load_pem_public_key(public_key_pem)
        if not isinstance(key, RSAPublicKey):
            raise ValueError("a service account's key is an RSA key (RS256)")
        with self._lock:
            self._accounts[uid] = key

    def login(self, body: object) -> str:
        """The authentication token for a valid `{"uid", "token"}`; InvalidToken otherwise."""
        uid = body.get("uid") if isinstance(body, dict) else None
        try:
            token = self._check_login(uid, body)
        except InvalidToken:
            self._note(str(uid), False)
            raise
        self._note(uid, True)
        return token

    def verify(self, authorization: str | None) -> str:
        """The uid of `Authorization: token=<token>`; InvalidToken saying what is wrong."""
        scheme, _, token = (authorization or "").partition("=")
        if scheme.strip().lower() != "token" or not token:
            raise InvalidToken("expected Authorization: token=<DC/OS authentication token>")
        with self._lock:
            public_key = self._key.public_key()
        try:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=["RS256"],
                options={"require": ["uid", "exp"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the authentication token is invalid: {exc}") from None
        if claims["exp"] <= self.clock():
            raise InvalidToken("the authentication token has expired")
        return str(claims["uid"])

    def routes(self, app: web.Application) -> None:
        """Add the login endpoint to `app`."""
        app.router.add_post(LOGIN_PATH, self._handle_login)

    def app(self) -> web.Application:
        """An app serving only the login endpoint (the IAM behind Admin Router)."""
        app = web.Application(client_max_size=MAX_LOGIN_BYTES)
        self.routes(app)
        return app

    async def _handle_login(self, request: web.Request) -> web.Response:
        with self._lock:
            status = self.unavailable_status
            if status is not None:
                self.unavailable_answers += 1
        if status is not None:
            return web.json_response(
                {"title": "Unavailable", "description": "the IAM is unavailable (devcluster "
                 "fault iam-unavailable)", "code": "ERR_UNAVAILABLE"},
                status=status,
            )  # fmt: skip
        try:
            body = await request.json()
        except ValueError:
            return _refused("ERR_INVALID_DATA", "the request body is not JSON", status=400)
        try:
            token = self.login(body)
        except InvalidToken as exc:
            return _refused("ERR_INVALID_CREDENTIALS", str(exc))
        return web.json_response({"token": token})

    def _check_login(self, uid: object, body: object) -> str:
        if not isinstance(uid, str) or not isinstance(body.get("token"), str):  # type: ignore[union-attr]
            raise InvalidToken('expected {"uid": …, "token": <service login token>}')
        with self._lock:
            public_key = self._accounts.get(uid)
        if public_key is None:
            raise InvalidToken(f"no service account {uid!r}")
        try:
            claims = jwt.decode(
                body["token"],  # type: ignore[index]
                public_key,
                algorithms=["RS256"],
                options={"require": ["uid", "exp"], "verify_exp": False},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"the service login token of {uid!r} is invalid: {exc}") from None
        now = self.clock()
        if claims["uid"] != uid:
            raise InvalidToken("the service login token is for another uid")
        if claims["exp"] <= now:
            raise InvalidToken("the service login token has expired")
        issued = {"uid": uid, "exp": int(now + self.token_lifetime)}
        with self._lock:
            key = self._key
        return jwt.encode(issued, key, algorithm="RS256")

    def _note(self, uid: str, accepted: bool) -> None:
        with self._lock:
            self.logins.append((uid, accepted))


def _refused(code: str, description: str, status: int = 401) -> web.Response:
    body = {
        "title": "Unauthorized" if status == 401 else "Bad Request",
        "description": description,
        "code": code,
    }
    return web.json_response(body, status=status)
