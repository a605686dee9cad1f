"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task and a copy per request on the hot path).

One pass does: request id, body-size limits (413 before the body is read when Content-Length says so, and
while streaming otherwise), per-route metrics by route *template*, and the audit hook for mutating calls.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from random import getrandbits
from time import perf_counter
from typing import Any

import orjson

from maas.observability import context
from maas.observability.metrics import Metrics

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
AuditHook = Callable[[Scope, str, int], None]
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
CLIENT_GONE = "maas.client_gone"  # set in the scope by an endpoint that stopped because the client hung up
STATUS_CLIENT_GONE = 499  # nginx's "client closed request": counted, never sent
INTERNAL_ERROR = {"error": "Internal server error.", "code": "internal_error"}


class BodyTooLarge(Exception):
    pass


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) or scope.get("maas.route")
    return str(path) if path else "<unmatched>"


async def send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, limit_for: Callable[[Scope], int],
                 audit: AuditHook | None = None, unaudited: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.limit_for = limit_for
        self.audit = audit
        self.unaudited = unaudited or (lambda _scope: False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        limit = self.limit_for(scope)
        declared = _header(scope, b"content-length")
        status_box = {"status": 500, "started": False}
        start = perf_counter()
        # HEAD is answered as GET (RFC 9110 asks HEAD of every GET resource; FastAPI's routes take GET alone).
        # The server drops the body by the method in its own scope, which stays HEAD.
        inner = {**scope, "method": "GET"} if scope["method"] == "HEAD" else scope
        with context.request_context(rid):
            if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
                await self._too_large(send, limit, status_box)
            else:
                await self._call(inner, _limited(receive, limit), _tracking(send, status_box, rid), limit, status_box)
        status = STATUS_CLIENT_GONE if inner.get(CLIENT_GONE) and not status_box["started"] else status_box["status"]
        self.metrics.observe_http(route_template(inner), scope["method"], status, perf_counter() - start)
        if self.audit is not None and scope["method"] in MUTATING and not self.unaudited(scope):
            await asyncio.to_thread(self._audit, scope, status_box["status"])

    async def _call(self, scope: Scope, receive: Receive, send: Send, limit: int, box: dict[str, Any]) -> None:
        try:
            await self.app(scope, receive, send)
        except BodyTooLarge:
            if not box["started"]:
                await self._too_large(send, limit, box)
        except Exception:
            # FastAPI's own stack answers its routes' bugs (and re-raises): only the raw endpoints get here
            # unanswered. Either way the client gets JSON, never a stack trace.
            if box["started"]:
                raise
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            box["status"] = 500
            await send_json(send, 500, INTERNAL_ERROR)

    async def _too_large(self, send: Send, limit: int, box: dict[str, Any]) -> None:
        box["status"] = 413
        await send_json(send, 413, too_large_body(limit))

    def _audit(self, scope: Scope, status: int) -> None:
        try:
            self.audit(scope, route_template(scope), status)  # type: ignore[misc]
        except Exception:
            log.exception("audit write failed")


def too_large_body(limit: int) -> dict[str, str]:
    return {"error": f"The request body is larger than the limit of {limit} bytes.", "code": "payload_too_large"}


def request_id(scope: Scope) -> str:
    """The client's ``X-Request-ID``, else a new one."""
    return _header(scope, b"x-request-id") or new_request_id()


_ID_PREFIX = f"{getrandbits(32):08x}"  # this process's; a replica restarted or beside it has another
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    # Unique enough to find a request's log lines (a random per-process prefix and a counter), and cheaper
    # than 64 random bits formatted per request, let alone uuid4's urandom syscall.
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message

    return wrapped


def _tracking(send: Send, box: dict[str, Any], rid: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            box["status"], box["started"] = message["status"], True
            message.setdefault("headers", [])
            message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
        await send(message)

    return wrapped
