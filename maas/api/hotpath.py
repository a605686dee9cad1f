"""Pure ASGI dispatch of the inference hot path, ahead of FastAPI's exception middleware and router.

Measured in-process on 2 cores: FastAPI's inner stack (exception middleware, exit stack, router matching over
every API route, Starlette's per-route exception wrapper) cost ~40 us per request, more than decoding, batching,
running and answering a small model's request together. ``POST /predict`` and V2 ``infer`` therefore go
straight from our ``RequestMiddleware`` (request id, body limits, HTTP metrics still apply) to their endpoint.
The same routes stay in the router too, so other methods get their 405 and the routing table stays complete.
An exception the endpoint does not handle still reaches ``ServerErrorMiddleware`` and its 500 handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import Route

from maas.observability.middleware import ASGIApp, Receive, Scope, Send


class HotPath:
    def __init__(self, app: ASGIApp, *, routes: Sequence[Route]) -> None:
        self.app = app
        self._exact = {r.path: r for r in routes if not r.param_convertors}
        self._patterns = [r for r in routes if r.param_convertors]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._match(scope) if scope["type"] == "http" and scope["method"] == "POST" else None
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
