"""Turn a finished training run into model version N+1 with its artifacts, metrics and lineage."""

from __future__ import annotations

from typing import Any

from maas.registry.entities import Dataset, Job, ModelVersion
from maas.registry.service import NewArtifact, NewVersion, RegistryService
from maas.storage import StoredBlob


def register_training_result(registry: RegistryService, job: Job, dataset: Dataset,
                             result: dict[str, Any]) -> ModelVersion:
    schema = dataset.schema
    input_shape = list(schema.get("input_shape") or [])
    output = "probabilities" if dataset.task == "classification" else "prediction"
    n_out = len(schema.get("classes") or []) if dataset.task == "classification" else 1
    artifacts = [NewArtifact(a["kind"], _blob(registry, a), a.get("metrics") or {}) for a in result["artifacts"]]
    new = NewVersion(
        task=dataset.task, artifacts=artifacts,
        input_schema={"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, *input_shape]}],
                      "input_shape": input_shape,
                      "feature_names": schema.get("features") if dataset.modality == "tabular" else None},
        output_schema={"outputs": [{"name": output, "datatype": "FP32", "shape": [-1, n_out]}],
                       "classes": schema.get("classes")},
        metrics=result["metrics"], lineage={**result.get("lineage", {}), "job_id": job.id},
        architecture=result["architecture"], hyperparameters=result.get("hyperparameters"),
        dataset=dataset, source_job_id=job.id, tags={"dataset": dataset.name},
    )
    return registry.register_version(job.tenant, job.spec.get("model") or dataset.name, new)


def _blob(registry: RegistryService, artifact: dict[str, Any]) -> StoredBlob:
    sha = artifact["sha256"]
    return StoredBlob(sha256=sha, size_bytes=int(artifact["size_bytes"]), path=registry.store.path_for(sha))
