"""The registry service: datasets, models, versions, artifacts and aliases, always scoped to one tenant.

Files go to the artifact store first; the rows that reference them are committed afterwards, so the database
never points at a half-written file. Version numbers come from a unique key plus a bounded retry (and a row
lock on PostgreSQL), so concurrent registrations of one model never share or skip a number.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maas.datasets.builtin import BUILTIN_NAMES, builtin_file
from maas.datasets.parsers import detect_format, parse_dataset
from maas.datasets.schema import ParsedDataset
from maas.errors import (
    AliasNotFound,
    AlreadyExists,
    ArtifactNotFound,
    Conflict,
    DatasetInUse,
    DatasetNotFound,
    InvalidInput,
    InvalidModel,
    ModelNotFound,
    VersionInUse,
    VersionNotFound,
)
from maas.export.signature import read_onnx_signature
from maas.registry import repositories as repo
from maas.registry.db import Database
from maas.registry.entities import Dataset, Model, ModelVersion, Page, clamp_page
from maas.registry.orm import AliasRow, ArtifactRow, DatasetRow, JobRow, ModelRow, ModelVersionRow, utcnow
from maas.storage import ArtifactStore, StoredBlob

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: "$" would let a final newline in
ALIAS_RE = re.compile(r"\A[a-z][a-z0-9_-]{0,63}\Z")
MAX_VERSION_RETRIES = 64
AliasHook = Callable[[str, str], None]
SERVING_KEYS = ("max_batch_size", "max_delay_ms")  # per-model overrides of MAAS_MAX_BATCH_SIZE / _DELAY_MS


@dataclass(frozen=True)
class NewArtifact:
    kind: str
    blob: StoredBlob
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewVersion:
    """Everything a version is registered with besides its model name and tenant."""

    task: str
    artifacts: list[NewArtifact]
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None
    dataset: Dataset | None = None
    source_job_id: str | None = None
    description: str = ""


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(f"The {kind} name {name!r} is invalid: use 1-128 letters, digits, '.', '_' or '-'.")
    return name


class RegistryService:
    def __init__(self, db: Database, store: ArtifactStore) -> None:
        self.db = db
        self.store = store
        self._alias_hooks: list[AliasHook] = []

    def on_alias_change(self, hook: AliasHook) -> None:
        """Called with (tenant, model name) after an alias moves, a version goes or the serving settings change
        (cache invalidation)."""
        self._alias_hooks.append(hook)

    # --- datasets ------------------------------------------------------------------------------------
    def register_builtin(self, tenant: str, name: str, builtin: str) -> Dataset:
        if builtin not in BUILTIN_NAMES:
            raise InvalidInput(f"Unknown built-in dataset {builtin!r}; choose one of {', '.join(BUILTIN_NAMES)}.")
        data, fmt = builtin_file(builtin)
        return self._add_dataset(tenant, name, "builtin", data, fmt, target=None, task=None)

    def upload_dataset(self, tenant: str, name: str, filename: str, data: bytes,
                       target: str | None, task: str | None) -> Dataset:
        return self._add_dataset(tenant, name, "upload", data, detect_format(filename, data), target, task)

    def _add_dataset(self, tenant: str, name: str, source: str, data: bytes, fmt: str,
                     target: str | None, task: str | None) -> Dataset:
        check_name("dataset", name)
        with self.db.session() as s:
            if repo.find_dataset(s, tenant, name):
                raise AlreadyExists(f"A dataset named {name!r} already exists.")
        parsed = parse_dataset(data, fmt, target=target, task=task)
        blob = self.store.put_bytes(data)
        schema = parsed.schema.to_dict()
        with self.db.session() as s:
            row = DatasetRow(tenant=tenant, name=name, source=source, format=fmt, task=parsed.schema.task,
                             modality=parsed.schema.modality, n_rows=parsed.schema.n_rows, schema=schema,
                             sha256=blob.sha256, size_bytes=blob.size_bytes, path=_relative(blob))
            s.add(row)
            s.flush()
            return repo.dataset_entity(row)

    def list_datasets(self, tenant: str, offset: int = 0, limit: int = 50) -> Page:
        offset, limit = clamp_page(offset, limit)
        with self.db.session() as s:
            items, total = repo.list_datasets(s, tenant, offset, limit)
        return Page(items=items, total=total, offset=offset, limit=limit)

    def get_dataset(self, tenant: str, ref: str) -> Dataset:
        with self.db.session() as s:
            row = repo.find_dataset(s, tenant, ref)
            if row is None:
                raise DatasetNotFound(f"No dataset {ref!r}.")
            return repo.dataset_entity(row)

    def ensure_dataset(self, tenant: str, ref: str) -> Dataset:
        """The tenant's dataset ``ref``; a built-in name is registered for the tenant on first use."""
        try:
            return self.get_dataset(tenant, ref)
        except DatasetNotFound:
            if ref not in BUILTIN_NAMES:
                raise
        try:
            return self.register_builtin(tenant, ref, ref)
        except AlreadyExists:  # another request registered it first
            return self.get_dataset(tenant, ref)

    def delete_dataset(self, tenant: str, ref: str) -> None:
        with self.db.session() as s:
            row = repo.find_dataset(s, tenant, ref)
            if row is None:
                raise DatasetNotFound(f"No dataset {ref!r}.")
            if repo.count_dataset_references(s, row.id):
                raise DatasetInUse(f"The dataset {row.name!r} is the lineage of registered model versions.")
            sha = row.sha256
            s.delete(row)
        self._collect_blob(sha)

    def load_dataset(self, dataset: Dataset) -> ParsedDataset:
        data = self.store.read_bytes(dataset.sha256)
        schema = dataset.schema
        return parse_dataset(data, dataset.format, target=schema.get("target"), task=dataset.task)

    # --- models and versions -------------------------------------------------------------------------
    def import_onnx(self, tenant: str, name: str, data: bytes, metadata: dict[str, Any]) -> ModelVersion:
        check_name("model", name)
        signature = read_onnx_signature(data)
        classes = metadata.get("classes")
        task = _imported_task(metadata.get("task"), classes, signature.outputs[0].shape if signature.outputs else [])
        first = signature.inputs[0]
        _check_metadata_fits(classes, metadata.get("feature_names"), first.shape,
                             signature.outputs[0].shape if signature.outputs else [])
        input_schema = {"inputs": [t.to_dict() for t in signature.inputs], "input_shape": first.shape[1:],
                        "feature_names": metadata.get("feature_names")}
        output_schema = {"outputs": [t.to_dict() for t in signature.outputs], "classes": classes}
        blob = self.store.put_bytes(data)
        new = NewVersion(task=task, artifacts=[NewArtifact("onnx", blob, {"opset": signature.opset})],
                         input_schema=input_schema, output_schema=output_schema,
                         metrics=dict(metadata.get("metrics") or {}), tags=dict(metadata.get("tags") or {}),
                         lineage={"source": "import"}, description=str(metadata.get("description") or ""))
        return self.register_version(tenant, name, new)

    def register_version(self, tenant: str, name: str, new: NewVersion) -> ModelVersion:
        """Add version N+1 of ``name`` (creating the model on first use); safe under concurrency."""
        check_name("model", name)
        for attempt in range(MAX_VERSION_RETRIES):
            try:
                with self.db.session() as s:
                    return self._insert_version(s, tenant, name, new)
            except AlreadyExists:
                # Someone else took this number (or created the model) between our read and our insert.
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise Conflict(f"Could not allocate a version number for {name!r}; too much contention, try again.")

    def _insert_version(self, s: Session, tenant: str, name: str, new: NewVersion) -> ModelVersion:
        if new.source_job_id:
            existing = s.scalars(select(ModelVersionRow).where(
                ModelVersionRow.source_job_id == new.source_job_id)).first()
            if existing is not None:  # a re-run job registers once
                return repo.version_entity(existing, existing.model, repo.aliases_of_version(s, existing.id))
        model = repo.find_model(s, tenant, name, for_update=True)
        if model is None:
            model = ModelRow(tenant=tenant, name=name, task=new.task, description=new.description, next_version=1)
            s.add(model)
            s.flush()
        elif model.task != new.task:
            raise Conflict(f"The model {name!r} is a {model.task} model; this version is {new.task}.")
        number = max(model.next_version or 1, (repo.latest_version_number(s, model.id) or 0) + 1)
        model.next_version = number + 1
        row = ModelVersionRow(
            model_id=model.id, version=number, source_job_id=new.source_job_id,
            dataset_id=new.dataset.id if new.dataset else None,
            dataset_sha256=new.dataset.sha256 if new.dataset else None, architecture=new.architecture,
            hyperparameters=new.hyperparameters, input_schema=new.input_schema, output_schema=new.output_schema,
            metrics=new.metrics, tags=new.tags, lineage=new.lineage,
        )
        s.add(row)
        s.flush()
        for art in new.artifacts:
            s.add(ArtifactRow(model_version_id=row.id, kind=art.kind, path=_relative(art.blob),
                              sha256=art.blob.sha256, size_bytes=art.blob.size_bytes, metrics=art.metrics))
        s.flush()
        s.refresh(row)
        return repo.version_entity(row, model, [])

    def add_artifact(self, tenant: str, name: str, version: int, artifact: NewArtifact) -> ModelVersion:
        """Attach (or replace) one artifact kind on an existing version (exports, quantized variants)."""
        with self.db.session() as s:
            _model, row = self._version_rows(s, tenant, name, version)
            old = next((a for a in row.artifacts if a.kind == artifact.kind), None)
            if old is not None:
                s.delete(old)
                s.flush()
            s.add(ArtifactRow(model_version_id=row.id, kind=artifact.kind, path=_relative(artifact.blob),
                              sha256=artifact.blob.sha256, size_bytes=artifact.blob.size_bytes,
                              metrics=artifact.metrics))
        self._notify(tenant, name)
        return self.get_version(tenant, name, version)

    def list_models(self, tenant: str, offset: int = 0, limit: int = 50) -> Page:
        offset, limit = clamp_page(offset, limit)
        with self.db.session() as s:
            rows, total = repo.list_models(s, tenant, offset, limit)
            items = [repo.model_entity(r, repo.latest_version_number(s, r.id), repo.alias_map(s, r.id)) for r in rows]
        return Page(items=items, total=total, offset=offset, limit=limit)

    def get_model(self, tenant: str, name: str) -> Model:
        with self.db.session() as s:
            row = self._model_row(s, tenant, name)
            return repo.model_entity(row, repo.latest_version_number(s, row.id), repo.alias_map(s, row.id))

    def configure_serving(self, tenant: str, name: str, serving: dict[str, Any]) -> Model:
        """Replace the model's serving settings (already validated: ``SERVING_KEYS``, None = server default).

        Loaded versions pick them up with their next resolution (at once on this replica, within the
        engine's resolution TTL on the others).
        """
        unknown = set(serving) - set(SERVING_KEYS)
        if unknown:
            raise InvalidInput(f"Unknown serving settings {sorted(unknown)}; use {list(SERVING_KEYS)}.")
        with self.db.session() as s:
            row = self._model_row(s, tenant, name)
            row.serving = {key: value for key, value in serving.items() if value is not None}
        self._notify(tenant, name)
        return self.get_model(tenant, name)

    def list_versions(self, tenant: str, name: str, offset: int = 0, limit: int = 50) -> Page:
        offset, limit = clamp_page(offset, limit)
        with self.db.session() as s:
            model = self._model_row(s, tenant, name)
            rows, total = repo.list_versions(s, model.id, offset, limit)
            items = [repo.version_entity(r, model, repo.aliases_of_version(s, r.id)) for r in rows]
        return Page(items=items, total=total, offset=offset, limit=limit)

    def get_version(self, tenant: str, name: str, version: int) -> ModelVersion:
        with self.db.session() as s:
            model, row = self._version_rows(s, tenant, name, version)
            return repo.version_entity(row, model, repo.aliases_of_version(s, row.id))

    def resolve_version(self, tenant: str, name: str, ref: int | str | None) -> ModelVersion:
        """A version by number, by alias, or (``None``) the ``production`` alias, else the latest version."""
        with self.db.session() as s:
            model = self._model_row(s, tenant, name)
            number = self._resolve_number(s, model, ref)
            row = repo.find_version(s, model.id, number)
            if row is None:
                raise VersionNotFound(f"Model {name!r} has no version {number}.")
            return repo.version_entity(row, model, repo.aliases_of_version(s, row.id))

    def _resolve_number(self, s: Session, model: ModelRow, ref: int | str | None) -> int:
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
            return int(ref)
        if ref is not None:
            alias = repo.find_alias(s, model.id, ref)
            if alias is None:
                raise AliasNotFound(f"Model {model.name!r} has no alias {ref!r}.")
            return alias.model_version.version
        production = repo.find_alias(s, model.id, "production")
        if production is not None:
            return production.model_version.version
        latest = repo.latest_version_number(s, model.id)
        if latest is None:
            raise VersionNotFound(f"Model {model.name!r} has no versions yet.")
        return latest

    def delete_version(self, tenant: str, name: str, version: int) -> None:
        with self.db.session() as s:
            _model, row = self._version_rows(s, tenant, name, version)
            aliases = repo.aliases_of_version(s, row.id)
            if aliases:
                raise VersionInUse(f"Version {version} of {name!r} is aliased as {', '.join(aliases)}; "
                                   "move the alias first.", details=aliases)
            shas = [a.sha256 for a in row.artifacts]
            s.delete(row)
        for sha in shas:
            self._collect_blob(sha)
        self._notify(tenant, name)

    def artifact_path(self, tenant: str, name: str, version: int, kind: str) -> tuple[Path, str, int]:
        """(verified file path, sha256, size) of one artifact of a version."""
        found = self.get_version(tenant, name, version).artifact(kind)
        if found is None:
            raise ArtifactNotFound(f"Version {version} of {name!r} has no {kind!r} artifact.")
        return self.store.verified_path(found.sha256), found.sha256, found.size_bytes

    # --- aliases -------------------------------------------------------------------------------------
    def set_alias(self, tenant: str, name: str, alias: str, version: int) -> ModelVersion:
        if not ALIAS_RE.match(alias or ""):
            raise InvalidInput(f"The alias {alias!r} is invalid: lower-case letters, digits, '_' or '-', "
                               "starting with a letter.")
        with self.db.session() as s:
            model, row = self._version_rows(s, tenant, name, version)
            existing = repo.find_alias(s, model.id, alias)
            if existing is None:
                s.add(AliasRow(model_id=model.id, name=alias, model_version_id=row.id))
            else:
                existing.model_version_id = row.id
                existing.updated_at = utcnow()
        self._notify(tenant, name)
        return self.get_version(tenant, name, version)

    def delete_alias(self, tenant: str, name: str, alias: str) -> None:
        with self.db.session() as s:
            model = self._model_row(s, tenant, name)
            existing = repo.find_alias(s, model.id, alias)
            if existing is None:
                raise AliasNotFound(f"Model {name!r} has no alias {alias!r}.")
            s.delete(existing)
        self._notify(tenant, name)

    def counts(self) -> dict[str, dict[str, float]]:
        """Row counts for the registry gauges of /metrics (all tenants)."""
        with self.db.session() as s:
            jobs = dict(s.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all())
            return {
                "models": {"all": s.scalar(select(func.count()).select_from(ModelRow)) or 0},
                "model_versions": {"all": s.scalar(select(func.count()).select_from(ModelVersionRow)) or 0},
                "datasets": {"all": s.scalar(select(func.count()).select_from(DatasetRow)) or 0},
                "jobs": {status: float(jobs.get(status, 0)) for status in
                         ("queued", "running", "succeeded", "failed", "cancelled")},
            }

    # --- internals -----------------------------------------------------------------------------------
    def _model_row(self, s: Session, tenant: str, name: str) -> ModelRow:
        row = repo.find_model(s, tenant, name)
        if row is None:
            raise ModelNotFound(f"No model named {name!r}.")
        return row

    def _version_rows(self, s: Session, tenant: str, name: str, version: int) -> tuple[ModelRow, ModelVersionRow]:
        model = self._model_row(s, tenant, name)
        row = repo.find_version(s, model.id, version)
        if row is None:
            raise VersionNotFound(f"Model {name!r} has no version {version}.")
        return model, row

    def _collect_blob(self, sha256: str) -> None:
        """Delete a stored file once no dataset or artifact row refers to it (files are shared by content)."""
        with self.db.session() as s:
            used = s.scalar(select(ArtifactRow.id).where(ArtifactRow.sha256 == sha256).limit(1)) or s.scalar(
                select(DatasetRow.id).where(DatasetRow.sha256 == sha256).limit(1))
        if not used:
            self.store.delete(sha256)

    def _notify(self, tenant: str, name: str) -> None:
        for hook in self._alias_hooks:
            try:
                hook(tenant, name)
            except Exception:  # a cache hook must never fail a registry write
                log.exception("alias hook failed for %s/%s", tenant, name)


def _relative(blob: StoredBlob) -> str:
    return f"{blob.sha256[:2]}/{blob.sha256}"


def _check_metadata_fits(classes: list[Any] | None, feature_names: list[str] | None, input_shape: list[int],
                         output_shape: list[int]) -> None:
    """Refuse metadata that contradicts the graph: it would only fail later, on every prediction."""
    scores = output_shape[-1] if len(output_shape) >= 2 else -1
    # One score column with two classes is read as P(second class); any other static width must match.
    if classes and scores > 0 and len(classes) != scores and not (scores == 1 and len(classes) == 2):
        raise InvalidModel(f"The metadata names {len(classes)} classes but the model's first output gives "
                           f"{scores} scores per row.")
    features = input_shape[1] if len(input_shape) == 2 else -1
    if feature_names and (len(input_shape) != 2 or (features > 0 and len(feature_names) != features)):
        width = f"{features} values per row" if len(input_shape) == 2 else f"inputs of shape {input_shape}"
        raise InvalidModel(f"The metadata names {len(feature_names)} features but the model takes {width}.")


def _imported_task(task: Any, classes: Any, output_shape: list[int]) -> str:
    if task is not None:
        if task not in ("classification", "regression"):
            raise InvalidModel("task must be 'classification' or 'regression'.")
        return str(task)
    if classes:
        return "classification"
    return "regression" if (output_shape[-1:] or [1])[0] in (1, -1) and len(output_shape) <= 2 else "classification"
