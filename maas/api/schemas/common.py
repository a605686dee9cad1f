from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Request bodies: unknown fields are a 422, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ListMeta(BaseModel):
    total: int
    offset: int
    limit: int
    next_offset: int | None


def page_meta(page: Any) -> dict[str, Any]:
    return {"total": page.total, "offset": page.offset, "limit": page.limit, "next_offset": page.next_offset}


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None
