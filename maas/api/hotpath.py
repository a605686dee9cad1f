"""The front door: pure ASGI dispatch of the inference hot path, ahead of everything FastAPI wraps an app in.

Measured on 2 cores: FastAPI's outer layers (``FastAPI.__call__``, Starlette's ``ServerErrorMiddleware`` and its
``send`` wrapper, FastAPI's telemetry and body-limit middlewares) and its inner stack (exception middleware,
router matching over every API route, the per-route exception wrapper) cost more per request than decoding,
batching, running and answering a small model's request together. ``MaasAPI`` is FastAPI with one change: an
HTTP request first enters our own ``front``, ``HotPath``, where ``POST /predict`` and V2 ``infer`` go straight
to their raw endpoints; every other request continues into ``RequestMiddleware`` and FastAPI's ordinary stack
unchanged. The inference routes stay in FastAPI's router too, so other methods get their 405 and the routing
table and OpenAPI document stay complete.

``HotPath`` does for its routes what ``RequestMiddleware`` does for the others (request id, body limit,
per-route metrics, a logged 500 for a bug) inline, without the middleware's wrapped ``receive`` and ``send``
and its context manager: measured ~10% of a small model's request. Hot routes are not audited anyway.
Beneath ASGI (``protocol.HotPathProtocol``) it serves a request by callback (``start``, an ``Exchange``) or, where
the endpoint must await, in a task (``answer``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from typing import Any, cast

from fastapi import FastAPI
from starlette.routing import Route

from maas.api import openapi
from maas.api.deps import Services
from maas.api.raw import Answer, Pending, RawEndpoint, RawRequest, Reply, json_answer
from maas.observability import context
from maas.observability.metrics import Metrics
from maas.observability.middleware import (
    INTERNAL_ERROR,
    STATUS_CLIENT_GONE,
    ASGIApp,
    Receive,
    Scope,
    Send,
    new_request_id,
    send_json,
)

log = logging.getLogger(__name__)

FrontFactory = Callable[[ASGIApp], ASGIApp]


class MaasAPI(FastAPI):
    """FastAPI whose HTTP requests pass through ``front`` (built around FastAPI's own stack) first."""

    _front: ASGIApp | None = None
    services: Services  # also app.state.services; read by every raw request, where State's lookup costs ~0.5 us

    raw_operations: Mapping[str, openapi.RawOperation] = {}  # the raw routes' documentation, by path

    _completed: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        document = super().openapi()  # FastAPI's own, cached until the routes change
        if document is not self._completed:
            self._completed = openapi.complete(document, self.routes, self.raw_operations)
        return document

    def install_front(self, factory: FrontFactory) -> None:
        """``factory(fastapi_stack)`` builds the ASGI app every HTTP request enters first."""
        self._front = factory(functools.partial(FastAPI.__call__, self))

    @property
    def hot_path(self) -> HotPath | None:
        """The front, when it is a ``HotPath``: what ``protocol.HotPathProtocol`` serves beneath ASGI."""
        return self._front if isinstance(self._front, HotPath) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self._front
        if front is None or scope["type"] != "http":  # lifespan (and anything else) is FastAPI's own business
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # what Starlette would set: the raw endpoints find the services through it
        await front(scope, receive, send)


class HotPath:
    """Sends ``POST`` requests for ``routes`` (raw endpoints) to their endpoint, everything else to ``app``."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[Route], metrics: Metrics, limit: int) -> None:
        if not all(isinstance(r.endpoint, RawEndpoint) for r in routes):
            raise TypeError("HotPath serves raw endpoints only.")
        self.app = app
        self.metrics = metrics
        self.limit = limit
        self._exact = {r.path: r for r in routes if not r.param_convertors}
        self._patterns = [r for r in routes if r.param_convertors]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._match(scope) if scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # the metrics label requests by route template
        started = perf_counter()
        headers = dict(scope["headers"])  # built once, for the request id and the endpoint
        rid, rid_bytes = _request_id(headers)
        token = context.request_id.set(rid)
        status, answering = 500, True
        try:
            endpoint = cast(RawEndpoint, route.endpoint)  # checked in __init__
            status = await endpoint.respond(scope, receive, send, limit=self.limit, request_id=rid_bytes,
                                            headers=headers)
            answering = False
        except Exception:
            # The endpoints answer every MaasError themselves: this is a bug, and the client gets JSON for it.
            log.exception("unhandled error in %s %s", scope["method"], scope["path"])
        finally:
            context.request_id.reset(token)
            self.metrics.observe_http(route.path, "POST", status, perf_counter() - started)
        if answering:
            try:
                await send_json(send, 500, INTERNAL_ERROR, [(b"x-request-id", rid_bytes)])
            except Exception:  # the answer had started already: nothing more can be sent
                log.debug("could not send the 500 answer", exc_info=True)

    async def answer(self, route: Route, scope: Scope, headers: dict[bytes, bytes], body: bytes) -> Answer:
        """The answer to a hot request whose whole body is read already (``protocol.HotPathProtocol``'s way in).

        What ``__call__`` does around the endpoint, without ASGI: the request id, the metrics (499 for a request
        cancelled because its client hung up) and a logged 500 for a bug.
        """
        started = perf_counter()
        rid, rid_bytes = _request_id(headers)
        token = context.request_id.set(rid)
        status = STATUS_CLIENT_GONE  # unless an answer comes: the protocol cancels a request whose client hung up
        try:
            try:
                answer = await cast(RawEndpoint, route.endpoint).handler(RawRequest(scope, body, headers))
            except Exception:
                # The endpoints answer every MaasError themselves: this is a bug, and the client gets JSON for it.
                log.exception("unhandled error in POST %s", scope["path"])
                answer = json_answer(INTERNAL_ERROR, 500)
            status = answer.status
        finally:
            context.request_id.reset(token)
            self.metrics.observe_http(route.path, "POST", status, perf_counter() - started)
        answer.headers.append((b"x-request-id", rid_bytes))
        return answer

    def start(self, route: Route, scope: Scope, headers: dict[bytes, bytes], body: bytes,
              reply: Reply) -> Exchange | None:
        """``answer`` without a task, through the endpoint's ``start`` (see ``raw.Starter``); None where it has
        none or must await: then nothing was started or replied, and the caller awaits ``answer`` instead.

        ``reply(answer)`` is called once, now or later, unless the exchange is cancelled (a 499, as ``answer``).
        """
        endpoint: RawEndpoint = route.endpoint  # type: ignore[assignment]  # checked in __init__ (cast() is a call)
        start = endpoint.start
        if start is None:
            return None
        rid, rid_bytes = _request_id(headers)
        exchange = Exchange(self.metrics, route.path, rid_bytes, reply)
        token = context.request_id.set(rid)
        try:
            exchange.pending = start(RawRequest(scope, body, headers), exchange.reply)
        except Exception:
            log.exception("unhandled error in POST %s", scope["path"])
            exchange.reply(json_answer(INTERNAL_ERROR, 500))
            return exchange
        finally:
            context.request_id.reset(token)
        return None if exchange.pending is None else exchange

    def route_for(self, path: str, scope: Scope) -> Route | None:
        """The hot route that serves ``path`` (a ``POST``), its path parameters put in ``scope``; else None."""
        route = self._exact.get(path)
        if route is not None:
            return route
        for candidate in self._patterns:
            match = candidate.path_regex.match(path)
            if match is not None:
                scope["path_params"] = _params(candidate, match.groupdict())
                return candidate
        return None

    def _match(self, scope: Scope) -> Route | None:
        return self.route_for(scope["path"], scope)


class Exchange:
    """A hot request that ``HotPath.start`` has under way: its request id and metrics around the endpoint's reply."""

    __slots__ = ("_metrics", "_path", "_reply", "_request_id", "_started", "pending")

    def __init__(self, metrics: Metrics, path: str, request_id: bytes, reply: Reply) -> None:
        self._metrics = metrics
        self._path = path
        self._request_id = request_id
        self._reply: Reply | None = reply
        self._started = perf_counter()
        self.pending: Pending | None = None

    @property
    def answered(self) -> bool:
        return self._reply is None

    def reply(self, answer: Answer) -> None:
        reply = self._reply
        if reply is None:  # answered or cancelled already
            return
        self._reply = self.pending = None
        answer.headers.append((b"x-request-id", self._request_id))
        self._metrics.observe_http(self._path, "POST", answer.status, perf_counter() - self._started)
        reply(answer)

    def cancel(self) -> None:
        """The client hung up: drop the request (it leaves its model's queue) and count a 499."""
        if self._reply is None:
            return
        pending = self.pending
        self._reply = self.pending = None
        if pending is not None:
            pending.cancel()
        self._metrics.observe_http(self._path, "POST", STATUS_CLIENT_GONE, perf_counter() - self._started)


def _request_id(headers: dict[bytes, bytes]) -> tuple[str, bytes]:
    """The client's ``X-Request-ID`` if it sent one, else a new id; as text (logs) and bytes (the answer)."""
    given = headers.get(b"x-request-id")
    if given:
        return given.decode("latin-1"), given
    rid = new_request_id()
    return rid, rid.encode()


def _params(route: Route, raw: dict[str, str]) -> dict[str, Any]:
    return {name: route.param_convertors[name].convert(value) for name, value in raw.items()}
