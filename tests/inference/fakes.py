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


def doubling_torch_version(folder: Path) -> ServableVersion:
    """maas's own serving module for ``y = 2x + 1`` (4 -> 9), stored as torch weights (imports torch)."""
    import torch

    from maas.training.serving import serving_module_from_document
    from maas.training.weights import save_weights

    document = {"format": "maas.architecture/v1", "architecture": {"type": "linear"}, "input_shape": [4],
                "n_outputs": 4, "image_shape": None, "task": "regression", "preprocessing": {}}
    module = serving_module_from_document(document)
    with torch.no_grad():
        linear: Any = module.network[1]  # type: ignore[index]
        linear.weight.copy_(torch.eye(4) * 2)
        linear.bias.fill_(1.0)
    weights = write_artifact(folder / "weights", save_weights(module.state_dict()), kind="torch")
    return make_servable({"torch": weights}, architecture=document)
