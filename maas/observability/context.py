"""Request context in contextvars: logs and metrics read it without it being passed around."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)
model: contextvars.ContextVar[str | None] = contextvars.ContextVar("model", default=None)


@contextmanager
def request_context(rid: str) -> Iterator[None]:
    token = request_id.set(rid)
    try:
        yield
    finally:
        request_id.reset(token)
