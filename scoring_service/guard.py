"""The service's front door: API key before body, bounded bodies, a deadline for the body.

:class:`RequestGuard` is a pure ASGI middleware in front of every route:

- a request to the API (``/v1/...``) without a valid key is answered 401 before a byte of
  its body is read (FastAPI would read and parse the body before the key dependency runs);
- a body over ``settings.max_body_bytes`` is answered 413 unread when its
  ``Content-Length`` says so, and as soon as it passes the limit when it is chunked;
- a body must arrive within ``settings.body_timeout_seconds`` (408).

The body is read here, once, and handed to the app as one message, so the routes see the
request as before.  The verified key travels in the ASGI scope (``SCOPE_KEY``) so the route's
scope check does not verify it again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "yidai.api_key"  # the verified ApiKey of the request, set by the guard
API_PREFIX = "/v1/"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RequestGuard:
    """Key check, body size limit and body deadline, ahead of FastAPI (see module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state.yidai
        settings = state.settings
        headers = dict(scope["headers"])
        if scope["path"].startswith(API_PREFIX):
            raw = headers.get(b"x-api-key")
            if not raw:
                await _refuse(send, 401, "UNAUTHENTICATED", "missing API key (header X-API-Key)")
                return
            key = state.resources.keys.verify(raw.decode("latin-1"))
            if key is None:
                await _refuse(send, 401, "UNAUTHENTICATED", "invalid API key")
                return
            scope[SCOPE_KEY] = key
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = settings.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _refuse(send, 400, "MALFORMED_BODY", "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _refuse(send, 413, "BODY_TOO_LARGE", _too_large(limit))
                return
        try:
            if _body_arrived(receive):  # the usual small request: no deadline to arm
                body = await _read_body(receive, limit)
            else:
                async with asyncio.timeout(settings.body_timeout_seconds):
                    body = await _read_body(receive, limit)
        except TimeoutError:
            detail = f"the request body did not arrive within {settings.body_timeout_seconds:g} s"
            await _refuse(send, 408, "BODY_TIMEOUT", detail)
            return
        if body is None:
            await _refuse(send, 413, "BODY_TOO_LARGE", _too_large(limit))
            return
        await self.app(scope, _replay(body, receive), send)


def _body_arrived(receive: Receive) -> bool:
    """Whether uvicorn's request cycle behind ``receive`` already holds the whole body (it
    came with the headers), so reading it cannot wait.  Anything else (another server, a
    wrapped ``receive``) reads under the deadline.  Saves arming and cancelling a timer on
    nearly every request."""
    cycle = getattr(receive, "__self__", None)
    return cycle is not None and getattr(cycle, "more_body", True) is False


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the read body as one message, then the real channel's."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _too_large(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes"


async def _refuse(send: Send, status: int, reason_code: str, detail: str) -> None:
    """An ``ErrorOut`` response (``scoring_service.schemas``), sent without reading the body."""
    body = json.dumps({"detail": detail, "reason_code": reason_code, "errors": None}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 401:
        headers.append((b"www-authenticate", b"ApiKey"))
    if status in (408, 413):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
