"""What every route of the scheduler's API shares: size limits, the bearer credential, and
calling the scheduler off the event loop.

Limits: a request body is at most `MAX_REQUEST_BYTES` (the largest legitimate one, an
installer's report, is well under 2 KiB). A longer declared body is refused with 413 before
any handler runs (`limit_request_size`), and aiohttp refuses a longer streamed one with 413
when a handler reads it (`client_max_size`). Request lines and headers are bounded by
aiohttp's parser (8190 bytes each, `aiohttp.http_parser.HttpRequestParser`).

The `Authorization` header's scheme is case-insensitive (RFC 9110, section 11.1:
"It uses a case-insensitive token to identify the authentication scheme"), so `bearer`
works like `Bearer`; the credential after it is compared in constant time by the callers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

MAX_REQUEST_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8  # a report is an object holding a list of strings: depth 2


@web.middleware
async def limit_request_size(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """413 for a declared body longer than `MAX_REQUEST_BYTES`, before the handler runs."""
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_REQUEST_BYTES,
            actual_size=request.content_length,
            text=f"request body of {request.content_length} bytes: at most "
            f"{MAX_REQUEST_BYTES} bytes are accepted\n",
        )
    return await handler(request)


def bearer_token(request: web.Request) -> str | None:
    """The credential of `Authorization: Bearer <credential>` (any case of `Bearer`, any
    spaces around), or None when the header is missing, empty or of another scheme."""
    scheme, _, credential = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip() or None


def unauthorized(what: str, refused: bool = False, where: str = "") -> web.HTTPUnauthorized:
    """401 with the challenge RFC 6750 asks for: `what` needs a bearer token, or (`refused`)
    the token given is not the one it takes, which RFC 6750 section 3.1 calls
    `error="invalid_token"`. `where` says where the right token is kept. The token given is
    never repeated (it may be most of the right one, or another system's)."""
    if refused:
        text = f"the token was refused: it is not the one {what} takes{where}\n"
        challenge = 'Bearer realm="calico-dcos", error="invalid_token"'
    else:
        text = f"{what} needs Authorization: Bearer <token>{where}\n"
        challenge = 'Bearer realm="calico-dcos"'
    return web.HTTPUnauthorized(text=text, headers={"WWW-Authenticate": challenge})


async def call_view(fn: Callable[..., Any], *args: Any) -> Any:
    """Call the scheduler off the event loop (it may take the scheduler's lock); a scheduler
    still starting answers 503."""
    try:
        return await asyncio.to_thread(fn, *args)
    except RuntimeError as exc:
        raise web.HTTPServiceUnavailable(text=f"{exc}\n") from None


async def read_json_object(request: web.Request) -> dict:
    """The request's JSON object; 413 when too long, 400 when not a shallow JSON object."""
    raw = await request.read()  # aiohttp: 413 past the app's client_max_size
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise web.HTTPBadRequest(text="expected a JSON object\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object\n")
    if depth(body) > MAX_JSON_DEPTH:
        raise web.HTTPBadRequest(text=f"JSON nested deeper than {MAX_JSON_DEPTH} levels\n")
    return body


def depth(value: Any, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), counted up to `limit`."""
    if limit <= 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((depth(child, limit - 1) for child in children), default=0)
