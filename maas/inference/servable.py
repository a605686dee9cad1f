"""What the registry hands the inference engine: a resolved model version and its servable artifacts.

Defined here, below the registry's concerns, so the engine depends on a Protocol and the registry (or a test)
implements it: ``resolve(tenant, model, ref)`` with ``ref`` a version number, an alias, or None.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from maas.errors import ArtifactCorrupt, ArtifactNotFound

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ServableArtifact:
    kind: str  # "onnx", "onnx-int8", "onnx-fp16", "torch", ...
    path: Path  # for "torch": the safetensors file (the architecture lives on the version)
    sha256: str
    size_bytes: int

    def verify(self) -> None:
        """Refuse to serve a file that no longer matches the hash recorded when it was registered."""
        if not self.path.is_file():
            raise ArtifactNotFound(f"The {self.kind} artifact file is missing from the store.")
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        if digest.hexdigest() != self.sha256:
            raise ArtifactCorrupt(f"The {self.kind} artifact {self.sha256[:12]}… does not match its sha256.")


@dataclass(frozen=True)
class ServableVersion:
    tenant: str
    model: str
    version: int
    task: str  # "classification" | "regression"
    classes: list[Any] | None
    feature_names: list[str] | None
    input_shape: list[int]  # per sample, no batch dimension
    artifacts: dict[str, ServableArtifact]  # by kind
    architecture: dict[str, Any] | None
    default_variant: str  # the fastest accepted kind
    input_name: str = "input"  # the model's one input, as V2 requests name it
    max_batch_size: int | None = None  # the model's own batching settings; None = the server's
    max_delay_ms: float | None = None

    def artifact(self, variant: str | None) -> ServableArtifact:
        kind = variant or self.default_variant
        artifact = self.artifacts.get(kind)
        if artifact is None:
            raise ArtifactNotFound(
                f"Model {self.model!r} version {self.version} has no {kind!r} variant; "
                f"it has {sorted(self.artifacts)}."
            )
        return artifact


class VersionResolver(Protocol):
    def resolve(self, tenant: str, model: str, ref: int | str | None) -> ServableVersion:
        """``ref`` None = the ``production`` alias, else the latest version; raises ModelNotFound / VersionNotFound."""
        ...
