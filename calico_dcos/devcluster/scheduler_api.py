"""`POST /api/v1/scheduler`: the real master's checks, in its order (§1.2), then the call.

The first failing check decides the response, so a client sees exactly the status codes a
real master would give it. SUBSCRIBE answers with a chunked RecordIO stream of JSON events.
"""

from __future__ import annotations

import base64
import binascii
import json

from aiohttp import web

from calico_dcos.devcluster import calls, protocol, wire
from calico_dcos.devcluster.iam import InvalidToken
from calico_dcos.devcluster.master import Master

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
MASTER_KEY = web.AppKey("master", Master)
PORT_KEY = web.AppKey("port", list)


class Refusal(Exception):
    """A check failed: the response to give."""

    def __init__(self, status: int, text: str = "", headers: dict | None = None) -> None:
        super().__init__(text)
        self.response = web.Response(status=status, text=text, headers=headers)


async def scheduler(request: web.Request) -> web.StreamResponse:
    master = request.app[MASTER_KEY]
    try:
        principal = authenticate(master, request)
        _check_leader(master, request)
        if master.recovering:
            raise Refusal(503, "Master has not finished recovery")
        call = await _parse(request, principal)
        if call["type"] == "SUBSCRIBE":
            return await _subscribe(master, request, call, principal)
        return _dispatch(master, request, call, principal)
    except Refusal as refusal:
        master.record("refused", status=refusal.response.status, message=refusal.response.text)
        return refusal.response


# libprocess' `http::Unauthorized(challenges)` body (apache/mesos
# 3rdparty/libprocess/include/process/http.hpp). The challenge's scheme is the devcluster's
# own: DC/OS' token authenticator module for the master is not public.
UNAUTHORIZED_BODY = "401 Unauthorized."
TOKEN_CHALLENGE = {"WWW-Authenticate": 'token realm="mesos-master-scheduler"'}


def authenticate(master: Master, request: web.Request) -> str | None:
    """Check 0: in strict mode a DC/OS authentication token (`Authorization: token=…`, whose
    uid is the principal), else Basic auth when credentials are configured; the principal,
    or None."""
    if master.iam is not None:
        try:
            return master.iam.verify(request.headers.get("Authorization"))
        except InvalidToken as exc:
            master.record("unauthenticated", message=str(exc))
            raise Refusal(401, UNAUTHORIZED_BODY, TOKEN_CHALLENGE) from None
    if master.credentials is None:
        return None
    challenge = {"WWW-Authenticate": 'Basic realm="mesos-master-scheduler"'}
    header = request.headers.get("Authorization", "")
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


def _check_leader(master: Master, request: web.Request) -> None:
    """Check 1: a master that no longer leads redirects to the one that does."""
    if request.app[PORT_KEY][0] != master.port:
        location = f"//{master.host}:{master.port}{request.path}"
        raise Refusal(307, "", {"Location": location})


async def _parse(request: web.Request, principal: str | None) -> dict:
    """Checks 3 to 6: method, content type, body, and `validation::scheduler::call`."""
    if request.method != "POST":
        raise Refusal(405, f"Expecting 'POST', received '{request.method}'")
    content_type = request.headers.get("Content-Type")
    if content_type is None:
        raise Refusal(400, "Expecting 'Content-Type' to be present")
    body = await request.read()
    if content_type == PROTOBUF:
        try:
            call = wire.to_json(wire.parse_protobuf(body))
        except wire.CallError as exc:
            raise Refusal(400, str(exc)) from exc
    elif content_type == JSON:
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


def _stream_type(request: web.Request) -> str | None:
    """`request.acceptsMediaType`: JSON when the client takes it, else protobuf, else None
    (http.cpp: "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'")."""
    header = request.headers.get("Accept")
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
    stream_type = _stream_type(request)
    if stream_type is None:
        raise Refusal(406, f"Expecting 'Accept' to allow '{PROTOBUF}' or '{JSON}'")
    if "Mesos-Stream-Id" in request.headers:
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


def _dispatch(
    master: Master, request: web.Request, call: dict, principal: str | None
) -> web.Response:
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
    stream_id = request.headers.get("Mesos-Stream-Id")
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
        return web.Response(status=202)
    return web.Response(status=reply[0], text=reply[1])
