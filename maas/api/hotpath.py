"""The front door: pure ASGI dispatch of the inference hot path, ahead of everything FastAPI wraps an app in.

Measured on 2 cores: FastAPI's outer layers (``FastAPI.__call__``, Starlette's ``ServerErrorMiddleware`` and its
``send`` wrapper, FastAPI's telemetry and body-limit middlewares) and its inner stack (exception middleware,
router matching over every API route, the per-route exception wrapper) cost more per request than decoding,
batching, running and answering a small model's request together. ``MaasAPI`` is FastAPI with one change: an
HTTP request first enters our own ``front`` stack (``RequestMiddleware`` -> ``HotPath``), where ``POST
/predict`` and V2 ``infer`` go straight to their raw endpoints; every other request continues into FastAPI's
ordinary stack unchanged. The inference routes stay in FastAPI's router too, so other methods get their 405
and the routing table and OpenAPI document stay complete. A bug in a raw endpoint is still logged and
answered with our 500 body, by ``RequestMiddleware``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from maas.observability.middleware import ASGIApp, Receive, Scope, Send

FrontFactory = Callable[[ASGIApp], ASGIApp]


class MaasAPI(FastAPI):
    """FastAPI whose HTTP requests pass through ``front`` (built around FastAPI's own stack) first."""

    _front: ASGIApp | None = None

    def install_front(self, factory: FrontFactory) -> None:
        """``factory(fastapi_stack)`` builds the ASGI app every HTTP request enters first."""
        self._front = factory(functools.partial(FastAPI.__call__, self))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self._front
        if front is None or scope["type"] != "http":  # lifespan (and anything else) is FastAPI's own business
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # what Starlette would set: the raw endpoints find the services through it
        await front(scope, receive, send)


class HotPath:
    """Sends ``POST`` requests for ``routes`` to their endpoint, everything else to ``app``."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[Route]) -> None:
        self.app = app
        self._exact = {r.path: r for r in routes if not r.param_convertors}
        self._patterns = [r for r in routes if r.param_convertors]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._match(scope) if scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # the metrics label requests by route template
        await route.app(scope, receive, send)

    def _match(self, scope: Scope) -> Route | None:
        path: str = scope["path"]
        route = self._exact.get(path)
        if route is not None:
            return route
        for candidate in self._patterns:
            match = candidate.path_regex.match(path)
            if match is not None:
                scope["path_params"] = _params(candidate, match.groupdict())
                return candidate
        return None


def _params(route: Route, raw: dict[str, str]) -> dict[str, Any]:
    return {name: route.param_convertors[name].convert(value) for name, value in raw.items()}
