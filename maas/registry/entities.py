"""Frozen entities: what everything above the repositories sees instead of ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maas.errors import InvalidInput

MAX_PAGE = 500
# Numbers from clients beyond what the database's columns hold never reach SQL (SQLite raises OverflowError,
# PostgreSQL "out of range"): an offset is a 64-bit integer there, a version number a 32-bit one.
MAX_INTEGER = 2**63 - 1
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Dataset:
    id: str
    tenant: str
    name: str
    source: str  # builtin | upload
    format: str
    task: str
    modality: str
    n_rows: int
    schema: dict[str, Any]
    sha256: str
    size_bytes: int
    created_at: datetime


@dataclass(frozen=True)
class Artifact:
    id: str
    kind: str
    sha256: str
    size_bytes: int
    metrics: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ModelVersion:
    id: str
    model_id: str
    model_name: str
    tenant: str
    version: int
    task: str
    source_job_id: str | None
    dataset_id: str | None
    dataset_sha256: str | None
    architecture: dict[str, Any] | None
    hyperparameters: dict[str, Any] | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    metrics: dict[str, Any]
    tags: dict[str, Any]
    lineage: dict[str, Any]
    created_at: datetime
    artifacts: tuple[Artifact, ...] = ()
    aliases: tuple[str, ...] = ()
    serving: dict[str, Any] = field(default_factory=dict)  # the model's serving settings (see Model.serving)

    def artifact(self, kind: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.kind == kind), None)


@dataclass(frozen=True)
class Model:
    id: str
    tenant: str
    name: str
    task: str
    description: str
    created_at: datetime
    latest_version: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)
    serving: dict[str, Any] = field(default_factory=dict)  # overrides of the server's batching settings


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Job:
    id: str
    tenant: str
    kind: str
    status: str
    spec: dict[str, Any]
    progress: dict[str, Any]
    history: list[dict[str, Any]]
    error: str | None
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    checkpoint: str | None
    result_version_id: str | None
    result_model: str | None
    result_version: int | None
    cancel_requested: bool
    idempotency_key: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in {"succeeded", "failed", "cancelled"}


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: datetime
    tenant: str
    key_id: str | None
    action: str
    resource: str
    outcome: str


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next_offset`` is None on the last page."""

    items: list[Any]
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        nxt = self.offset + self.limit
        return nxt if nxt < self.total else None


def clamp_page(offset: int, limit: int) -> tuple[int, int]:
    if not 0 <= offset <= MAX_INTEGER or limit < 1:
        raise InvalidInput(f"offset must be between 0 and {MAX_INTEGER}, and limit at least 1.")
    return offset, min(limit, MAX_PAGE)
