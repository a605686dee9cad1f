"""The answers of the registry, job and key routes, for the OpenAPI document (DESIGN §4's shapes).

The routes build their answers as dicts (``dataset_public``, ``job_public``, ...) and FastAPI sends them as they
are; these models describe them to the document's readers only (``openapi.answers``), so a field added to an
answer is never filtered out by a model that lags behind. ``tests/api/test_openapi.py`` validates real answers
against them, and every model allows more fields than it names, as §4 says clients must.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from maas.api.schemas.common import ListMeta


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Health(_Answer):
    status: str
    version: str


class Readiness(_Answer):
    status: str = Field(description="ready or not_ready")
    checks: dict[str, bool]


class DatasetOut(_Answer):
    id: str
    name: str
    source: str = Field(description="upload or builtin")
    format: str
    task: str
    modality: str
    n_rows: int
    schema_: dict[str, Any] = Field(alias="schema", description="features, input_shape, target, classes, ...")
    sha256: str
    size_bytes: int
    created_at: str | None


class DatasetList(ListMeta):
    items: list[DatasetOut]


class JobModel(_Answer):
    name: str
    version: int | None


class JobOut(_Answer):
    id: str
    kind: str
    status: str
    spec: dict[str, Any]
    progress: dict[str, Any] = Field(description="epoch, epochs, and whatever the job reports")
    history: list[dict[str, Any]] = Field(description="One entry per epoch: train_loss, val_loss, val_accuracy, ...")
    error: str | None
    attempts: int
    model: JobModel | None = Field(description="The registered version, once the job succeeded.")
    cancel_requested: bool
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class JobList(ListMeta):
    items: list[JobOut]


class JobQueued(_Answer):
    job_id: str
    status: str
    job: JobOut


class ModelOut(_Answer):
    name: str
    task: str | None
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    serving: dict[str, Any] = Field(description="The model's own batching settings; {} for the server's.")
    created_at: str | None


class ModelList(ListMeta):
    items: list[ModelOut]


class ArtifactOut(_Answer):
    kind: str
    sha256: str
    size_bytes: int
    metrics: dict[str, Any] | None
    created_at: str | None


class VersionOut(_Answer):
    model: str
    version: int
    task: str | None
    metrics: dict[str, Any] | None
    tags: dict[str, Any] | None
    artifacts: list[ArtifactOut]
    aliases: list[str]
    lineage: dict[str, Any] = Field(description="job_id, dataset_id, dataset_sha256, hyperparameters, ...")
    architecture: dict[str, Any] | None
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    created_at: str | None


class VersionList(ListMeta):
    items: list[VersionOut]


class KeyOut(_Answer):
    id: str
    tenant: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class KeyCreated(KeyOut):
    key: str = Field(description="The secret: shown in this answer only.")


class KeyList(_Answer):
    items: list[KeyOut]


class AuditEntryOut(_Answer):
    ts: str
    key_id: str | None
    action: str
    resource: str
    outcome: str


class AuditLog(_Answer):
    items: list[AuditEntryOut]
