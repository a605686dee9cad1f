"""Queries and row <-> entity conversion. Every function takes the session of the caller's unit of work."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from maas.registry.entities import (
    MAX_VERSION,
    ApiKey,
    Artifact,
    AuditEntry,
    Dataset,
    Job,
    Model,
    ModelVersion,
)
from maas.registry.orm import (
    AliasRow,
    ApiKeyRow,
    ArtifactRow,
    AuditRow,
    DatasetRow,
    JobRow,
    ModelRow,
    ModelVersionRow,
)


def aware(ts: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if ts is None or ts.tzinfo is not None:
        return ts
    return ts.replace(tzinfo=UTC)


# --- datasets ----------------------------------------------------------------------------------------
def dataset_entity(row: DatasetRow) -> Dataset:
    return Dataset(
        id=row.id, tenant=row.tenant, name=row.name, source=row.source, format=row.format, task=row.task,
        modality=row.modality, n_rows=row.n_rows, schema=row.schema, sha256=row.sha256,
        size_bytes=row.size_bytes, created_at=aware(row.created_at),  # type: ignore[arg-type]
    )


def find_dataset(session: Session, tenant: str, ref: str) -> DatasetRow | None:
    by_id = select(DatasetRow).where(DatasetRow.tenant == tenant, DatasetRow.id == ref)
    by_name = select(DatasetRow).where(DatasetRow.tenant == tenant, DatasetRow.name == ref)
    return session.scalars(by_id).first() or session.scalars(by_name).first()


def list_datasets(session: Session, tenant: str, offset: int, limit: int) -> tuple[list[Dataset], int]:
    query = select(DatasetRow).where(DatasetRow.tenant == tenant)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(DatasetRow.created_at, DatasetRow.id).offset(offset).limit(limit))
    return [dataset_entity(r) for r in rows], total


def count_dataset_references(session: Session, dataset_id: str) -> int:
    query = select(func.count()).select_from(ModelVersionRow).where(ModelVersionRow.dataset_id == dataset_id)
    return session.scalar(query) or 0


# --- models, versions, artifacts, aliases ------------------------------------------------------------
def artifact_entity(row: ArtifactRow) -> Artifact:
    return Artifact(id=row.id, kind=row.kind, sha256=row.sha256, size_bytes=row.size_bytes,
                    metrics=row.metrics or {}, created_at=aware(row.created_at))  # type: ignore[arg-type]


def version_entity(row: ModelVersionRow, model: ModelRow, aliases: list[str]) -> ModelVersion:
    return ModelVersion(
        id=row.id, model_id=model.id, model_name=model.name, tenant=model.tenant, version=row.version,
        task=model.task, source_job_id=row.source_job_id, dataset_id=row.dataset_id,
        dataset_sha256=row.dataset_sha256, architecture=row.architecture, hyperparameters=row.hyperparameters,
        input_schema=row.input_schema or {}, output_schema=row.output_schema or {}, metrics=row.metrics or {},
        tags=row.tags or {}, lineage=row.lineage or {}, created_at=aware(row.created_at),  # type: ignore[arg-type]
        artifacts=tuple(artifact_entity(a) for a in row.artifacts), aliases=tuple(sorted(aliases)),
        serving=dict(model.serving or {}),
    )


def model_entity(row: ModelRow, latest: int | None, aliases: dict[str, int]) -> Model:
    return Model(id=row.id, tenant=row.tenant, name=row.name, task=row.task, description=row.description,
                 created_at=aware(row.created_at), latest_version=latest, aliases=aliases,  # type: ignore[arg-type]
                 serving=dict(row.serving or {}))


def find_model(session: Session, tenant: str, name: str, *, for_update: bool = False) -> ModelRow | None:
    query = select(ModelRow).where(ModelRow.tenant == tenant, ModelRow.name == name)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def list_models(session: Session, tenant: str, offset: int, limit: int) -> tuple[list[ModelRow], int]:
    query = select(ModelRow).where(ModelRow.tenant == tenant)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(ModelRow.name).offset(offset).limit(limit)).all()
    return list(rows), total


def latest_version_number(session: Session, model_id: str) -> int | None:
    return session.scalar(select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model_id))


def alias_map(session: Session, model_id: str) -> dict[str, int]:
    query = (select(AliasRow.name, ModelVersionRow.version)
             .join(ModelVersionRow, AliasRow.model_version_id == ModelVersionRow.id)
             .where(AliasRow.model_id == model_id))
    return {name: version for name, version in session.execute(query)}


def find_version(session: Session, model_id: str, version: int) -> ModelVersionRow | None:
    if not 0 < version <= MAX_VERSION:  # no such row, and the version column could not even hold the number
        return None
    query = (select(ModelVersionRow).options(selectinload(ModelVersionRow.artifacts))
             .where(ModelVersionRow.model_id == model_id, ModelVersionRow.version == version))
    return session.scalars(query).first()


def list_versions(session: Session, model_id: str, offset: int, limit: int) -> tuple[list[ModelVersionRow], int]:
    query = select(ModelVersionRow).where(ModelVersionRow.model_id == model_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.options(selectinload(ModelVersionRow.artifacts))
                           .order_by(ModelVersionRow.version).offset(offset).limit(limit)).all()
    return list(rows), total


def find_alias(session: Session, model_id: str, name: str) -> AliasRow | None:
    return session.scalars(select(AliasRow).where(AliasRow.model_id == model_id, AliasRow.name == name)).first()


def aliases_of_version(session: Session, version_id: str) -> list[str]:
    return list(session.scalars(select(AliasRow.name).where(AliasRow.model_version_id == version_id)))


def version_row_by_id(session: Session, version_id: str) -> ModelVersionRow | None:
    query = select(ModelVersionRow).options(selectinload(ModelVersionRow.artifacts)).where(
        ModelVersionRow.id == version_id)
    return session.scalars(query).first()


# --- api keys -----------------------------------------------------------------------------------------
def key_entity(row: ApiKeyRow) -> ApiKey:
    return ApiKey(id=row.id, tenant=row.tenant, name=row.name, prefix=row.prefix, scopes=tuple(row.scopes),
                  created_at=aware(row.created_at), last_used_at=aware(row.last_used_at),  # type: ignore[arg-type]
                  revoked_at=aware(row.revoked_at))


def find_key_by_prefix(session: Session, prefix: str) -> ApiKeyRow | None:
    return session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).first()


def count_active_keys(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))) or 0


def list_keys(session: Session, tenant: str | None) -> list[ApiKey]:
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at)
    if tenant is not None:
        query = query.where(ApiKeyRow.tenant == tenant)
    return [key_entity(r) for r in session.scalars(query)]


# --- audit ---------------------------------------------------------------------------------------------
def audit_entity(row: AuditRow) -> AuditEntry:
    return AuditEntry(id=row.id, ts=aware(row.ts), tenant=row.tenant, key_id=row.key_id,  # type: ignore[arg-type]
                      action=row.action, resource=row.resource, outcome=row.outcome)


def list_audit(session: Session, tenant: str, limit: int) -> list[AuditEntry]:
    query = select(AuditRow).where(AuditRow.tenant == tenant).order_by(AuditRow.id.desc()).limit(limit)
    return [audit_entity(r) for r in session.scalars(query)]


# --- jobs ----------------------------------------------------------------------------------------------
def job_entity(row: JobRow, result: tuple[str, int] | None = None) -> Job:
    return Job(
        id=row.id, tenant=row.tenant, kind=row.kind, status=row.status, spec=row.spec, progress=row.progress or {},
        history=list(row.history or []), error=row.error, attempts=row.attempts, lease_owner=row.lease_owner,
        lease_expires_at=aware(row.lease_expires_at), checkpoint=row.checkpoint,
        result_version_id=row.result_version_id, result_model=result[0] if result else None,
        result_version=result[1] if result else None, cancel_requested=row.cancel_requested,
        idempotency_key=row.idempotency_key, created_at=aware(row.created_at),  # type: ignore[arg-type]
        started_at=aware(row.started_at), finished_at=aware(row.finished_at),
    )


def job_result(session: Session, row: JobRow) -> tuple[str, int] | None:
    if row.result_version_id is None:
        return None
    query = (select(ModelRow.name, ModelVersionRow.version)
             .join(ModelVersionRow, ModelVersionRow.model_id == ModelRow.id)
             .where(ModelVersionRow.id == row.result_version_id))
    found = session.execute(query).first()
    return (found[0], found[1]) if found else None


def find_job(session: Session, job_id: str, tenant: str | None = None, *, for_update: bool = False) -> JobRow | None:
    query = select(JobRow).where(JobRow.id == job_id)
    if tenant is not None:
        query = query.where(JobRow.tenant == tenant)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def find_job_by_idempotency_key(session: Session, tenant: str, key: str) -> JobRow | None:
    return session.scalars(select(JobRow).where(JobRow.tenant == tenant, JobRow.idempotency_key == key)).first()


def list_jobs(session: Session, tenant: str, filters: dict[str, Any], offset: int, limit: int
              ) -> tuple[list[Job], int]:
    query = select(JobRow).where(JobRow.tenant == tenant)
    for column in ("status", "kind"):
        if filters.get(column):
            query = query.where(getattr(JobRow, column) == filters[column])
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(JobRow.created_at.desc(), JobRow.id).offset(offset).limit(limit)).all()
    return [job_entity(r, job_result(session, r)) for r in rows], total
