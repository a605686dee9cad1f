from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict

from maas.registry.entities import MAX_INTEGER, MAX_PAGE


class Strict(BaseModel):
    """Request bodies: unknown fields are a 422, not silently ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)


# Paging parameters, documented with their bounds; the registry checks them (``clamp_page``) with its own message.
Offset = Annotated[int, Query(description="Items to skip.", json_schema_extra={"minimum": 0, "maximum": MAX_INTEGER})]
Limit = Annotated[int, Query(description=f"Items per page; more than {MAX_PAGE} is {MAX_PAGE}.",
                             json_schema_extra={"minimum": 1})]


class ListMeta(BaseModel):
    total: int
    offset: int
    limit: int
    next_offset: int | None


def page_meta(page: Any) -> dict[str, Any]:
    return {"total": page.total, "offset": page.offset, "limit": page.limit, "next_offset": page.next_offset}


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None
