from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from maas.errors import InferenceFailed
from maas.inference.cache import ModelCache

pytestmark = pytest.mark.anyio
MB = 2**20


class FakeModel:
    def __init__(self, name: str, footprint_bytes: int) -> None:
        self.name = name
        self.footprint_bytes = footprint_bytes
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class Loader:
    """Counts loads per key; each load takes a little while so concurrent callers overlap."""

    def __init__(self, sizes: dict[str, int] | None = None, fail: set[str] | None = None) -> None:
        self.sizes = sizes or {}
        self.fail = fail or set()
        self.loads: dict[str, int] = {}
        self.made: dict[str, FakeModel] = {}

    def __call__(self, key: str) -> Callable[[], Awaitable[FakeModel]]:
        async def load() -> FakeModel:
            self.loads[key] = self.loads.get(key, 0) + 1
            await asyncio.sleep(0.02)
            if key in self.fail:
                raise InferenceFailed(f"{key} is broken")
            self.made[key] = FakeModel(key, self.sizes.get(key, 10 * MB))
            return self.made[key]

        return load


async def test_concurrent_first_requests_share_one_load() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(100 * MB)
    loader = Loader()
    values = await asyncio.gather(*(cache.ensure("a", loader("a")) for _ in range(20)))
    assert loader.loads == {"a": 1}
    assert all(v is values[0] for v in values)
    assert cache.stats().loads == 1


async def test_least_recently_used_idle_models_are_evicted_past_the_budget() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(30 * MB)
    loader = Loader()
    for key in ("a", "b", "c"):
        await cache.ensure(key, loader(key))
    await cache.ensure("a", loader("a"))  # a is now the most recently used
    await cache.ensure("d", loader("d"))
    assert cache.loaded_keys() == ["c", "a", "d"]
    assert loader.made["b"].closed
    assert cache.stats().used_bytes == 30 * MB
    assert cache.stats().evictions == 1


async def test_a_model_in_use_is_never_evicted() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(20 * MB)
    loader = Loader()
    async with cache.lease("a", loader("a")) as busy:
        await cache.ensure("b", loader("b"))
        await cache.ensure("c", loader("c"))  # over budget: only b may go
        assert not busy.closed
        assert cache.loaded_keys() == ["a", "c"]
        await cache.ensure("d", loader("d"))
        assert cache.loaded_keys() == ["a", "d"]
    await cache.ensure("e", loader("e"))
    assert busy.closed  # idle now, and the least recently used
    assert cache.loaded_keys() == ["d", "e"]


async def test_everything_in_use_means_running_over_budget_rather_than_failing() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(10 * MB)
    loader = Loader()
    async with cache.lease("a", loader("a")), cache.lease("b", loader("b")):
        assert cache.stats().used_bytes == 20 * MB
    assert cache.stats().entries == 2


async def test_a_size_hint_frees_room_before_loading() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(20 * MB)
    loader = Loader()
    await cache.ensure("a", loader("a"))
    await cache.ensure("b", loader("b"))
    closed_before_load: list[bool] = []

    async def load_big() -> FakeModel:
        closed_before_load.append(loader.made["a"].closed)
        return FakeModel("big", 10 * MB)

    await cache.ensure("big", load_big, size_hint=10 * MB)
    assert closed_before_load == [True]


async def test_a_failed_load_reaches_every_waiter_and_the_next_request_retries() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(100 * MB)
    loader = Loader(fail={"a"})
    outcomes = await asyncio.gather(*(cache.ensure("a", loader("a")) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, InferenceFailed) for o in outcomes)
    assert loader.loads == {"a": 1}
    loader.fail.clear()
    assert (await cache.ensure("a", loader("a"))).name == "a"
    assert loader.loads == {"a": 2}


async def test_a_caller_that_gives_up_does_not_cancel_the_load_for_others() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(100 * MB)
    loader = Loader()
    impatient = asyncio.ensure_future(cache.ensure("a", loader("a")))
    patient = asyncio.ensure_future(cache.ensure("a", loader("a")))
    await asyncio.sleep(0.005)
    impatient.cancel()
    assert (await patient).name == "a"
    assert loader.loads == {"a": 1}


async def test_unloading_a_busy_model_waits_for_its_last_request() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(100 * MB)
    loader = Loader()
    async with cache.lease("a", loader("a")) as model:
        assert await cache.unload("a")
        assert cache.loaded_keys() == []
        assert not model.closed
    await asyncio.sleep(0)
    assert model.closed
    assert not await cache.unload("a")


async def test_close_unloads_everything_and_loaded_reports_each_model() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(100 * MB)
    loader = Loader(sizes={"a": 1 * MB, "b": 2 * MB})
    await cache.ensure("a", loader("a"))
    async with cache.lease("b", loader("b")):
        report = {m.key: (m.footprint_bytes, m.leases) for m in cache.loaded()}
    assert report == {"a": (1 * MB, 0), "b": (2 * MB, 1)}
    await cache.close()
    assert loader.made["a"].closed and loader.made["b"].closed
    assert cache.stats().used_bytes == 0


async def test_peek_reads_a_loaded_value_without_using_it() -> None:
    cache: ModelCache[str, FakeModel] = ModelCache(100 * MB)
    loader = Loader()
    for key in ("a", "b"):
        await cache.ensure(key, loader(key))
    hits = cache.stats().hits
    assert cache.peek("a") is loader.made["a"] and cache.peek("missing") is None
    assert cache.stats().hits == hits and cache.loaded_keys() == ["a", "b"]  # "a" is still least recently used
