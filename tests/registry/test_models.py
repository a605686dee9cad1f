"""Models, versions, aliases and artifacts through the registry service, on both databases."""

from __future__ import annotations

import pytest

from maas.errors import (
    AliasNotFound,
    ArtifactCorrupt,
    Conflict,
    InvalidInput,
    InvalidModel,
    ModelNotFound,
    VersionInUse,
    VersionNotFound,
)
from maas.registry.service import RegistryService
from tests.factories import affine_onnx, classifier_onnx


def test_import_creates_versions_with_signature(registry: RegistryService) -> None:
    v1 = registry.import_onnx("t1", "clf", classifier_onnx(), {"classes": ["a", "b", "c"]})
    v2 = registry.import_onnx("t1", "clf", classifier_onnx(), {"classes": ["a", "b", "c"]})
    assert (v1.version, v2.version) == (1, 2)
    assert v1.task == "classification"
    assert v1.input_schema["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert v1.output_schema["classes"] == ["a", "b", "c"]
    onnx_artifact = v1.artifact("onnx")
    assert onnx_artifact is not None and onnx_artifact.size_bytes > 0 and len(onnx_artifact.sha256) == 64
    assert registry.get_model("t1", "clf").latest_version == 2


def test_regression_task_inferred_from_single_output(registry: RegistryService) -> None:
    version = registry.import_onnx("t1", "reg", affine_onnx(n_in=1), {})
    assert version.task == "regression"


def test_tenants_are_isolated(registry: RegistryService) -> None:
    registry.import_onnx("t1", "m", affine_onnx(), {})
    with pytest.raises(ModelNotFound):
        registry.get_model("t2", "m")
    assert registry.list_models("t2").total == 0
    assert registry.import_onnx("t2", "m", affine_onnx(), {}).version == 1


@pytest.mark.parametrize("blob", [b"", b"garbage", b"\x80\x04\x95pickle", affine_onnx()[:40]])
def test_bad_onnx_is_refused_and_nothing_is_stored(registry: RegistryService, blob: bytes) -> None:
    with pytest.raises(InvalidModel):
        registry.import_onnx("t1", "m", blob, {})
    assert registry.list_models("t1").total == 0
    assert not [p for p in registry.store.root.rglob("*") if p.is_file()]


@pytest.mark.parametrize(("metadata", "needle"), [
    ({"classes": ["a", "b"]}, "names 2 classes but the model's first output gives 3 scores"),
    ({"classes": ["a", "b", "c", "d"]}, "names 4 classes"),
    ({"classes": ["a", "b", "c"], "feature_names": ["w", "x"]}, "names 2 features but the model takes 4 values"),
])
def test_metadata_that_contradicts_the_graph_is_refused(registry: RegistryService, metadata: dict[str, list[str]],
                                                        needle: str) -> None:
    with pytest.raises(InvalidModel, match=needle):
        registry.import_onnx("t1", "m", classifier_onnx(), metadata)
    assert registry.list_models("t1").total == 0


def test_one_score_column_may_carry_two_classes(registry: RegistryService) -> None:
    version = registry.import_onnx("t1", "binary", classifier_onnx(n_in=2, n_classes=1), {"classes": ["no", "yes"]})
    assert version.output_schema["classes"] == ["no", "yes"]


def test_aliases_promote_and_roll_back(registry: RegistryService) -> None:
    for _ in range(3):
        registry.import_onnx("t1", "m", affine_onnx(), {})
    assert registry.resolve_version("t1", "m", None).version == 3  # no production alias: latest
    registry.set_alias("t1", "m", "production", 2)
    assert registry.resolve_version("t1", "m", None).version == 2
    assert registry.resolve_version("t1", "m", "production").version == 2
    registry.set_alias("t1", "m", "production", 1)  # rollback = moving the alias
    assert registry.resolve_version("t1", "m", "1").version == 1
    assert registry.get_model("t1", "m").aliases == {"production": 1}
    registry.delete_alias("t1", "m", "production")
    with pytest.raises(AliasNotFound):
        registry.resolve_version("t1", "m", "production")


def test_alias_hook_fires(registry: RegistryService) -> None:
    seen: list[tuple[str, str]] = []
    registry.on_alias_change(lambda tenant, name: seen.append((tenant, name)))
    registry.import_onnx("t1", "m", affine_onnx(), {})
    registry.set_alias("t1", "m", "staging", 1)
    assert seen == [("t1", "m")]


@pytest.mark.parametrize("alias", ["", "1", "Prod", "with space", "x" * 65])
def test_bad_alias_names(registry: RegistryService, alias: str) -> None:
    registry.import_onnx("t1", "m", affine_onnx(), {})
    with pytest.raises(InvalidInput):
        registry.set_alias("t1", "m", alias, 1)


def test_delete_version_refused_while_aliased(registry: RegistryService) -> None:
    registry.import_onnx("t1", "m", affine_onnx(), {})
    registry.import_onnx("t1", "m", affine_onnx(weight=3), {})
    registry.set_alias("t1", "m", "production", 1)
    with pytest.raises(VersionInUse):
        registry.delete_version("t1", "m", 1)
    registry.delete_version("t1", "m", 2)
    with pytest.raises(VersionNotFound):
        registry.get_version("t1", "m", 2)
    assert registry.import_onnx("t1", "m", affine_onnx(), {}).version == 3  # numbers are never reused


def test_deleting_a_version_keeps_files_other_versions_share(registry: RegistryService) -> None:
    v1 = registry.import_onnx("t1", "m", affine_onnx(), {})
    registry.import_onnx("t1", "m", affine_onnx(), {})  # same bytes, same content address
    registry.delete_version("t1", "m", 1)
    sha = v1.artifacts[0].sha256
    path, found_sha, _ = registry.artifact_path("t1", "m", 2, "onnx")
    assert found_sha == sha and path.is_file()


def test_corrupted_artifact_is_detected(registry: RegistryService) -> None:
    registry.import_onnx("t1", "m", affine_onnx(), {})
    path, _, _ = registry.artifact_path("t1", "m", 1, "onnx")
    path.write_bytes(b"tampered")
    with pytest.raises(ArtifactCorrupt):
        registry.artifact_path("t1", "m", 1, "onnx")


def test_task_conflict(registry: RegistryService) -> None:
    registry.import_onnx("t1", "m", classifier_onnx(), {"classes": [0, 1, 2]})
    with pytest.raises(Conflict):
        registry.import_onnx("t1", "m", affine_onnx(n_in=1), {"task": "regression"})


def test_pagination(registry: RegistryService) -> None:
    for i in range(5):
        registry.import_onnx("t1", f"m{i}", affine_onnx(), {})
    page = registry.list_models("t1", offset=0, limit=2)
    assert [m.name for m in page.items] == ["m0", "m1"] and page.total == 5 and page.next_offset == 2
    assert registry.list_models("t1", offset=4, limit=2).next_offset is None


def test_serving_settings_are_kept_per_model_and_reach_its_versions(registry: RegistryService) -> None:
    from maas.registry.serving import RegistryResolver

    fired: list[tuple[str, str]] = []
    registry.on_alias_change(lambda tenant, name: fired.append((tenant, name)))
    registry.import_onnx("t1", "m", affine_onnx(), {})
    registry.import_onnx("t2", "m", affine_onnx(), {})
    model = registry.configure_serving("t1", "m", {"max_batch_size": 512, "max_delay_ms": None})
    assert model.serving == {"max_batch_size": 512}  # None = the server's setting, not stored
    assert fired == [("t1", "m")]  # the engine's cue to hand the settings to loaded versions
    servable = RegistryResolver(registry).resolve("t1", "m", None)
    assert (servable.max_batch_size, servable.max_delay_ms) == (512, None)
    assert registry.get_model("t2", "m").serving == {}  # the other tenant's model of that name is untouched
    with pytest.raises(InvalidInput, match="Unknown serving settings"):
        registry.configure_serving("t1", "m", {"threads": 4})
    with pytest.raises(ModelNotFound):
        registry.configure_serving("t3", "m", {"max_batch_size": 8})
    assert registry.get_model("t1", "m").serving == {"max_batch_size": 512}
