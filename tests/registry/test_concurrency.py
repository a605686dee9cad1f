"""Version numbers are allocated safely: 20 concurrent imports of one model give 1..20, on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from maas.registry.service import RegistryService
from tests.factories import affine_onnx


def test_concurrent_imports_get_distinct_gapless_versions(registry: RegistryService) -> None:
    blob = affine_onnx()
    with ThreadPoolExecutor(max_workers=20) as pool:
        versions = list(pool.map(lambda _i: registry.import_onnx("t1", "race", blob, {}).version, range(20)))
    assert sorted(versions) == list(range(1, 21))
    listed = registry.list_versions("t1", "race", limit=100)
    assert [v.version for v in listed.items] == list(range(1, 21))
    assert registry.list_models("t1").total == 1
