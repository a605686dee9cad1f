from __future__ import annotations

from typing import Any

from pydantic import Field

from maas.api.schemas.common import Strict, iso, page_meta
from maas.registry.entities import Dataset, Page


class DatasetCreate(Strict):
    """``POST /datasets`` with JSON: register one of the built-in datasets for this tenant."""

    name: str = Field(min_length=1, max_length=128)
    builtin: str


def dataset_public(d: Dataset) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "source": d.source, "format": d.format, "task": d.task,
            "modality": d.modality, "n_rows": d.n_rows, "schema": d.schema, "sha256": d.sha256,
            "size_bytes": d.size_bytes, "created_at": iso(d.created_at)}


def dataset_list(page: Page) -> dict[str, Any]:
    return {"items": [dataset_public(d) for d in page.items], **page_meta(page)}
