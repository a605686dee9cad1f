from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from maas.api.schemas.common import Strict, iso, page_meta
from maas.registry.entities import Model, ModelVersion, Page


class AliasUpdate(Strict):
    version: int = Field(ge=1)


class ServingUpdate(Strict):
    """``PUT /models/{name}/serving``: the model's own batching settings; an omitted or null one is the server's."""

    max_batch_size: int | None = Field(default=None, ge=1, le=4096)
    max_delay_ms: float | None = Field(default=None, ge=0, le=1000)


class ImportMetadata(Strict):
    """The optional ``metadata`` form field of ``POST /models``."""

    task: str | None = None
    classes: list[str | int | float] | None = None
    feature_names: list[str] | None = None
    description: str | None = Field(default=None, max_length=2000)
    tags: dict[str, Any] | None = None
    metrics: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = None

    @field_validator("classes")
    @classmethod
    def _distinct(cls, classes: list[str | int | float] | None) -> list[str | int | float] | None:
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError("classes must be distinct: each is the label of one model output")
        return classes


def version_public(v: ModelVersion) -> dict[str, Any]:
    return {
        "model": v.model_name, "version": v.version, "task": v.task, "metrics": v.metrics, "tags": v.tags,
        "artifacts": [{"kind": a.kind, "sha256": a.sha256, "size_bytes": a.size_bytes, "metrics": a.metrics,
                       "created_at": iso(a.created_at)} for a in v.artifacts],
        "aliases": list(v.aliases),
        "lineage": {"job_id": v.source_job_id, "dataset_id": v.dataset_id, "dataset_sha256": v.dataset_sha256,
                    "hyperparameters": v.hyperparameters, **v.lineage},
        "architecture": v.architecture, "input_schema": v.input_schema, "output_schema": v.output_schema,
        "created_at": iso(v.created_at),
    }


def model_public(m: Model) -> dict[str, Any]:
    return {"name": m.name, "task": m.task, "description": m.description, "latest_version": m.latest_version,
            "aliases": m.aliases, "serving": m.serving, "created_at": iso(m.created_at)}


def model_list(page: Page) -> dict[str, Any]:
    return {"items": [model_public(m) for m in page.items], **page_meta(page)}


def version_list(page: Page) -> dict[str, Any]:
    return {"items": [version_public(v) for v in page.items], **page_meta(page)}
