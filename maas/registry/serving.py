"""The registry's side of the inference contract: a registered version as something the engine can serve.

``RegistryResolver.resolve`` reads the version (one database query, cached by the engine for a few seconds),
points every artifact at its file in the content-addressed store and picks the default variant: the fastest
kind whose export was accepted (its parity or accuracy check passed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maas.inference.servable import ServableArtifact, ServableVersion
from maas.registry.entities import Artifact, ModelVersion
from maas.registry.service import RegistryService
from maas.storage import ArtifactStore

QUANTIZED_PREFIX = "onnx-int8"
# Kinds the engine can run, fastest first on a CPU. fp16 only pays off on a GPU, so it is never the default.
_PREFERENCE = ("onnx", "torch")
_SERVABLE_PREFIXES = ("onnx", "torch", "pruned")


class RegistryResolver:
    """Implements ``maas.inference.servable.VersionResolver`` on top of the registry service."""

    def __init__(self, registry: RegistryService) -> None:
        self._registry = registry

    def resolve(self, tenant: str, model: str, ref: int | str | None) -> ServableVersion:
        return servable_version(self._registry.resolve_version(tenant, model, ref), self._registry.store)


def servable_version(version: ModelVersion, store: ArtifactStore) -> ServableVersion:
    """``version`` with its artifact files located in ``store`` and its default variant chosen."""
    inputs = version.input_schema.get("inputs") or [{}]
    artifacts = {
        a.kind: ServableArtifact(kind=a.kind, path=store.path_for(a.sha256), sha256=a.sha256, size_bytes=a.size_bytes)
        for a in version.artifacts
        if a.kind.startswith(_SERVABLE_PREFIXES)
    }
    return ServableVersion(
        tenant=version.tenant,
        model=version.model_name,
        version=version.version,
        task=version.task,
        classes=version.output_schema.get("classes"),
        feature_names=version.input_schema.get("feature_names"),
        input_shape=list(version.input_schema.get("input_shape") or []),
        artifacts=artifacts,
        architecture=version.architecture,
        default_variant=default_variant(version.artifacts),
        input_name=str(inputs[0].get("name") or "input"),
        max_batch_size=version.serving.get("max_batch_size"),
        max_delay_ms=version.serving.get("max_delay_ms"),
    )


def default_variant(artifacts: Iterable[Artifact]) -> str:
    """An accepted int8 variant, else ONNX (unless its parity check failed), else torch, else anything."""
    by_kind = {a.kind: a for a in artifacts}
    quantized = [a for k, a in by_kind.items() if k.startswith(QUANTIZED_PREFIX) and _accepted(a.metrics)]
    if quantized:
        return min(quantized, key=_measured_latency).kind
    for kind in _PREFERENCE:
        if kind in by_kind and _accepted(by_kind[kind].metrics, unknown=True):
            return kind
    for kind in _PREFERENCE:
        if kind in by_kind:
            return kind
    return next(iter(sorted(by_kind)), "onnx")


def _measured_latency(artifact: Artifact) -> tuple[float, str]:
    """The export step's own latency measurement when it made one (static int8 is usually the faster)."""
    latency = artifact.metrics.get("latency_ms")
    return (float(latency) if isinstance(latency, int | float) else float("inf"), artifact.kind)


def _accepted(metrics: dict[str, Any], *, unknown: bool = False) -> bool:
    """Quantized variants must have passed their check; a plain export counts as good unless it failed one."""
    accepted = metrics.get("accepted")
    return unknown if accepted is None else bool(accepted)
