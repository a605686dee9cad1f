"""Tiny real artifacts and a resolver that serves them: the registry's side of the engine contract."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from maas.errors import ModelNotFound
from maas.inference.servable import ServableArtifact, ServableVersion


def write_artifact(path: Path, data: bytes, kind: str = "onnx") -> ServableArtifact:
    path.write_bytes(data)
    return ServableArtifact(kind=kind, path=path, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def make_servable(
    artifacts: dict[str, ServableArtifact],
    *,
    model: str = "affine",
    version: int = 1,
    task: str = "regression",
    classes: list[Any] | None = None,
    feature_names: list[str] | None = None,
    input_shape: list[int] | None = None,
    architecture: dict[str, Any] | None = None,
    tenant: str = "acme",
) -> ServableVersion:
    return ServableVersion(
        tenant=tenant, model=model, version=version, task=task, classes=classes, feature_names=feature_names,
        input_shape=input_shape or [4], artifacts=artifacts, architecture=architecture,
        default_variant=next(iter(artifacts), "onnx"),
    )


class FakeResolver:
    """The registry's side of the contract: refs map to versions; counts calls to show resolution caching."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str, int | str | None], ServableVersion] = {}
        self.calls = 0

    def add(self, servable: ServableVersion, *refs: int | str | None) -> None:
        for ref in (servable.version, *refs):
            self.versions[(servable.tenant, servable.model, ref)] = servable

    def resolve(self, tenant: str, model: str, ref: int | str | None) -> ServableVersion:
        self.calls += 1
        try:
            return self.versions[(tenant, model, ref)]
        except KeyError:
            raise ModelNotFound(f"No model {model!r} (ref {ref!r}).") from None
