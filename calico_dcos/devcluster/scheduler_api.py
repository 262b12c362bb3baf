"""`POST /api/v1/scheduler`: the real master's checks, in its order (§1.2), then the call.

The first failing check decides the response, so a client sees exactly the status codes a
real master would give it. SUBSCRIBE answers with a chunked RecordIO stream of JSON events.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

import orjson
from aiohttp import web

from calico_dcos.devcluster import calls, protocol, wire
from calico_dcos.devcluster.iam import InvalidToken
from calico_dcos.devcluster.master import Master

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
MASTER_KEY = web.AppKey("master", Master)
PORT_KEY = web.AppKey("port", list)


class Refusal(Exception):
    """A check failed: the answer to give (status, body text, extra headers)."""

    def __init__(self, status: int, text: str = "", headers: dict | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers

    @property
    def response(self) -> web.Response:
        return web.Response(status=self.status, text=self.text, headers=self.headers)


# What `answer` gives: the status, the body text (None: no body, as `web.Response(status=202)`
# sends none), and extra headers.
Answer = tuple[int, str | None, dict | None]


async def scheduler(request: web.Request) -> web.StreamResponse:
    """The endpoint as aiohttp serves it: SUBSCRIBE, and any call on a connection that the
    master port's front (front.py) handed to aiohttp. The checks and calls are `prepare`,
    `parse` and `answer`, which the front calls the same way."""
    master = request.app[MASTER_KEY]
    try:
        principal = prepare(master, request.app[PORT_KEY][0], request.method, request.path,
                            request.headers)  # fmt: skip
        call = parse(await request.read(), request.headers["Content-Type"], principal)
        if call["type"] == "SUBSCRIBE":
            return await _subscribe(master, request, call, principal)
        status, text, headers = answer(master, request.headers, call, principal)
    except Refusal as refusal:
        master.record("refused", status=refusal.status, message=refusal.text)
        return refusal.response
    if text is None:
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, text=text, headers=headers)


def prepare(
    master: Master, port: int, method: str, path: str, headers: Mapping[str, str]
) -> str | None:
    """The checks before the body is read (§1.2: authentication, leadership, recovery,
    method, content type), in the real master's order; the principal, or None. `port`:
    the port the request came in on. `headers`: looked up by lower-case name (aiohttp's
    are case-insensitive; the front's are lower-cased)."""
    principal = authenticate(master, headers)
    _check_leader(master, port, path)
    if master.recovering:
        raise Refusal(503, "Master has not finished recovery")
    if method != "POST":
        raise Refusal(405, f"Expecting 'POST', received '{method}'")
    if headers.get("content-type") is None:
        raise Refusal(400, "Expecting 'Content-Type' to be present")
    return principal


# libprocess' `http::Unauthorized(challenges)` body (apache/mesos
# 3rdparty/libprocess/include/process/http.hpp). The challenge's scheme is the devcluster's
# own: DC/OS' token authenticator module for the master is not public.
UNAUTHORIZED_BODY = "401 Unauthorized."
TOKEN_CHALLENGE = {"WWW-Authenticate": 'token realm="mesos-master-scheduler"'}


def authenticate(master: Master, headers: Mapping[str, str]) -> str | None:
    """Check 0: in strict mode a DC/OS authentication token (`Authorization: token=…`, whose
    uid is the principal), else Basic auth when credentials are configured; the principal,
    or None."""
    if master.iam is not None:
        try:
            return master.iam.verify(headers.get("authorization"))
        except InvalidToken as exc:
            master.record("unauthenticated", message=str(exc))
            raise Refusal(401, UNAUTHORIZED_BODY, TOKEN_CHALLENGE) from None
    if master.credentials is None:
        return None
    challenge = {"WWW-Authenticate": 'Basic realm="mesos-master-scheduler"'}
    header = headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    principal, _, secret = decoded.partition(":")
    ok = scheme == "Basic" and decoded.count(":") == 1
    if not ok or master.credentials.get(principal) != secret:
        raise Refusal(401, "", challenge)
    return principal


def _check_leader(master: Master, port: int, path: str) -> None:
    """Check 1: a master that no longer leads redirects to the one that does."""
    if port != master.port:
        location = f"//{master.host}:{master.port}{path}"
        raise Refusal(307, "", {"Location": location})


# A body with 19 digits in a row (its digits made "0" first: `bytes.translate` and `in` take
# ~1 µs for a 1 KB ACCEPT, a regular expression ~20).
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0000000000")
_NINETEEN_DIGITS = b"0" * 19


def parse(body: bytes, content_type: str, principal: str | None) -> dict:
    """Checks 5 and 6 (`prepare` made 3 and 4): the body as a `Call`, and
    `validation::scheduler::call`. JSON is decoded by orjson, and by the standard library's
    decoder when orjson refuses it (NaN, a byte-order mark, a lone surrogate…) or may read
    it otherwise (orjson makes an integer past 64 bits a double, so a body with 19 digits in
    a row goes to the standard library's): what parses, what it parses to, and the error
    text of a body neither takes are the standard library's."""
    if content_type == PROTOBUF:
        try:
            call = wire.to_json(wire.parse_protobuf(body))
        except wire.CallError as exc:
            raise Refusal(400, str(exc)) from exc
    elif content_type == JSON:
        try:
            if _NINETEEN_DIGITS in body.translate(_DIGITS_AS_ZERO):
                raise ValueError("a number orjson may read as a double")
            value = orjson.loads(body)
            if wire.CHECKS and json.dumps(value) != json.dumps(json.loads(body)):
                raise AssertionError(f"orjson read {body!r} otherwise than json")
        except ValueError:  # orjson.JSONDecodeError is one
            try:
                value = json.loads(body)
            except ValueError as exc:
                raise Refusal(400, f"Failed to parse body into JSON: {exc}") from exc
        try:
            call = wire.call_json(value)
        except wire.CallError as exc:
            raise Refusal(400, f"Failed to convert JSON into Call protobuf: {exc}") from exc
    else:
        raise Refusal(415, f"Expecting 'Content-Type' of {JSON} or {PROTOBUF}")
    error = call_error(call, principal)
    if error:
        raise Refusal(400, f"Failed to validate scheduler::Call: {error}")
    return call


def call_error(call: dict, principal: str | None = None) -> str | None:
    """`validation::scheduler::call::validate` (apache/mesos src/master/validation.cpp), on a
    call that already parsed as a `Call` (so required fields are there)."""
    kind = call.get("type")
    if kind is None:
        return "Expecting 'type' to be present"
    key = kind.lower()
    if kind == "SUBSCRIBE":
        if key not in call:
            return "Expecting 'subscribe' to be present"
        info = call[key]["framework_info"]
        if call.get("framework_id") != info.get("id"):
            return "'framework_id' differs from 'subscribe.framework_info.id'"
        if principal is not None and info.get("principal", principal) != principal:
            return (
                f"Authenticated principal '{principal}' does not match principal"
                f" '{info['principal']}' set in `FrameworkInfo`"
            )
        return None
    if "framework_id" not in call:
        return "Expecting 'framework_id' to be present"
    if kind in protocol.BODY_REQUIRED and key not in call:
        return f"Expecting '{key}' to be present"
    if kind in ("ACKNOWLEDGE", "ACKNOWLEDGE_OPERATION_STATUS"):
        if not protocol.valid_uuid_b64(call[key]["uuid"]):
            return "Not a valid UUID"
        if kind == "ACKNOWLEDGE_OPERATION_STATUS" and "agent_id" not in call[key]:
            return "Expecting 'agent_id' to be present"
    if kind == "UPDATE_FRAMEWORK" and call["framework_id"] != call[key]["framework_info"].get("id"):
        return "'framework_id' differs from 'update_framework.framework_info.id'"
    return None


def _stream_type(headers: Mapping[str, str]) -> str | None:
    """`request.acceptsMediaType`: JSON when the client takes it, else protobuf, else None
    (http.cpp: "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'")."""
    header = headers.get("accept")
    if header is None:
        return JSON
    ranges = {part.split(";")[0].strip() for part in header.split(",")}
    if ranges & {JSON, "application/*", "*/*"}:
        return JSON
    if PROTOBUF in ranges:
        return PROTOBUF
    return None


async def _subscribe(
    master: Master, request: web.Request, call: dict, principal: str | None
) -> web.StreamResponse:
    """Checks 7, 8 and the principal rule, then the stream until it ends."""
    stream_type = _stream_type(request.headers)
    if stream_type is None:
        raise Refusal(406, f"Expecting 'Accept' to allow '{PROTOBUF}' or '{JSON}'")
    if "mesos-stream-id" in request.headers:
        raise Refusal(400, "Subscribe calls should not include the 'Mesos-Stream-Id' header")
    body = call["subscribe"]
    info = body["framework_info"]
    master.record("call", type="SUBSCRIBE")
    subscription = master.subscribe(info, principal, body.get("suppressed_roles", []))
    response = web.StreamResponse(
        status=200, headers={"Content-Type": stream_type, "Mesos-Stream-Id": subscription.stream_id}
    )
    encode = protocol.recordio if stream_type == JSON else protocol.recordio_protobuf
    response.enable_chunked_encoding()
    await response.prepare(request)
    try:
        while (event := await subscription.queue.get()) is not None:
            # Events queued meanwhile (a burst of updates whose timers fired together) go out
            # in this one chunk: RecordIO frames each, and a reader of the stream cannot tell
            # chunks apart (TCP merges them anyway); one write instead of one per event.
            records = [encode(event)]
            while not subscription.queue.empty() and event is not None:
                event = subscription.queue.get_nowait()
                if event is not None:
                    records.append(encode(event))
            await response.write(b"".join(records))
            if event is None:
                break
        await response.write_eof()
    except ConnectionError:
        pass
    finally:
        master.stream_closed(subscription)
    return response


def answer(master: Master, headers: Mapping[str, str], call: dict, principal: str | None) -> Answer:
    """Checks 9 to 13, then the call itself."""
    framework_id = call["framework_id"].get("value", "")
    framework = master.frameworks.get(framework_id)
    if framework is None:
        raise Refusal(400, "Framework cannot be found")
    if principal is not None and framework.principal != principal:
        raise Refusal(
            400,
            f"Authenticated principal '{principal}' does not match principal"
            f" '{framework.principal or ''}' set in `FrameworkInfo`",
        )
    if framework.subscription is None:
        raise Refusal(403, "Framework is not subscribed")
    stream_id = headers.get("mesos-stream-id")
    if stream_id is None:
        raise Refusal(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
    if stream_id != framework.subscription.stream_id:
        raise Refusal(
            400,
            f"The stream ID '{stream_id}' included in this request didn't match the stream ID"
            f" currently associated with framework ID {framework.id}",
        )
    if call["type"] == "UNKNOWN":
        raise Refusal(501)
    injected = master.take_call_fault(call["type"])
    if injected is not None:
        raise Refusal(*injected)
    master.record("call", type=call["type"], framework_id=framework_id)
    reply = calls.HANDLERS[call["type"]](master, framework, call.get(call["type"].lower()))
    if reply is None:
        return 202, None, None
    return reply[0], reply[1], None
