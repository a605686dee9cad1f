"""Log lines carry the request id of the request that wrote them."""

from __future__ import annotations

import logging

from maas.observability import context


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.request_id.get() or "-"
        return True


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger("maas")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
