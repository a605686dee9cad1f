"""An LRU cache of loaded models under a memory budget, with leases so nothing in use is ever unloaded.

- Single flight: concurrent first requests for a key share one load.
- Budget: after a load (footprints are measured, see ``footprint``) the least recently used *idle* entries
  are unloaded until the total fits; before a load, a size hint frees room early so peaks stay bounded.
  If every other entry is in use the cache runs over budget rather than failing requests.
- Leases: an entry with leases is never closed; an explicit ``unload`` of a busy entry takes it out of the
  index at once (new requests load afresh) and closes it when its last lease is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

logger = logging.getLogger(__name__)


class Cacheable(Protocol):
    @property
    def footprint_bytes(self) -> int: ...

    async def close(self) -> None: ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Cacheable)
K_contra = TypeVar("K_contra", contravariant=True)


class CacheObserver(Protocol[K_contra]):
    """Metrics hooks (load seconds, bytes, evictions) without importing Prometheus here."""

    def on_load(self, key: K_contra, seconds: float, footprint_bytes: int) -> None: ...

    def on_evict(self, key: K_contra, reason: str) -> None:
        """``reason`` is ``budget`` or ``unload``."""
        ...

    def on_usage(self, used_bytes: int, entries: int) -> None: ...


class NullCacheObserver:
    def on_load(self, key: Any, seconds: float, footprint_bytes: int) -> None:
        pass

    def on_evict(self, key: Any, reason: str) -> None:
        pass

    def on_usage(self, used_bytes: int, entries: int) -> None:
        pass


@dataclass(frozen=True)
class CachedModel(Generic[K]):
    key: K
    footprint_bytes: int
    leases: int
    load_seconds: float
    idle_seconds: float


@dataclass(frozen=True)
class CacheStats:
    budget_bytes: int
    used_bytes: int
    entries: int
    loads: int
    hits: int
    evictions: int


@dataclass(eq=False)
class _Entry(Generic[V]):
    value: V
    load_seconds: float
    leases: int = 0
    last_used: float = field(default_factory=time.monotonic)
    retired: bool = False
    closed: bool = False


class Lease(Generic[V]):
    """A hold on a cached value; ``release()`` exactly once (or use ``ModelCache.lease``)."""

    __slots__ = ("_cache", "_entry", "value")

    def __init__(self, cache: ModelCache[Any, V], entry: _Entry[V]) -> None:
        self._cache = cache
        self._entry: _Entry[V] | None = entry
        self.value = entry.value

    def release(self) -> None:
        if self._entry is not None:
            self._cache._release(self._entry)
            self._entry = None


class ModelCache(Generic[K, V]):
    def __init__(self, budget_bytes: int, observer: CacheObserver[K] | None = None) -> None:
        self._budget = budget_bytes
        self._observer: CacheObserver[K] = observer or NullCacheObserver()
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()  # least recently used first
        self._loading: dict[K, asyncio.Task[None]] = {}
        self._retired: set[_Entry[V]] = set()  # unloaded while in use: closed on their last release
        self._closing: set[asyncio.Task[None]] = set()
        self._used = 0
        self._loads = self._hits = self._evictions = 0

    # --- use -----------------------------------------------------------------------------------------
    async def acquire(self, key: K, load: Callable[[], Awaitable[V]], size_hint: int = 0) -> Lease[V]:
        """A lease on ``key``'s value, loading it with ``load()`` unless it is cached or already loading."""
        while True:
            lease = self.acquire_loaded(key)
            if lease is not None:
                return lease
            task = self._loading.get(key)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._load(key, load, size_hint))
                task.add_done_callback(_retrieve)
                self._loading[key] = task
            # shield: a caller that gives up (deadline, disconnect) must not cancel the load for the others.
            await asyncio.shield(task)
            # Loop: the entry is normally there now; if it was evicted meanwhile, load it again.

    def acquire_loaded(self, key: K) -> Lease[V] | None:
        """A lease on ``key`` if it is loaded right now, else None; no await, for the hot path's common case."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        entry.leases += 1
        self._hits += 1
        return Lease(self, entry)

    @contextlib.asynccontextmanager
    async def lease(self, key: K, load: Callable[[], Awaitable[V]], size_hint: int = 0) -> AsyncIterator[V]:
        held = await self.acquire(key, load, size_hint)
        try:
            yield held.value
        finally:
            held.release()

    async def ensure(self, key: K, load: Callable[[], Awaitable[V]], size_hint: int = 0) -> V:
        """Load ``key`` if needed (explicit load / warm-up) without keeping a lease."""
        held = await self.acquire(key, load, size_hint)
        held.release()
        return held.value

    def peek(self, key: K) -> V | None:
        """``key``'s loaded value, if any, without a lease, a hit counted or its recency touched."""
        entry = self._entries.get(key)
        return entry.value if entry else None

    # --- unload --------------------------------------------------------------------------------------
    async def unload(self, key: K) -> bool:
        """Take ``key`` out of the cache; it is closed now, or when its last lease is released."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        await self._retire(key, entry, "unload")
        return True

    async def close(self) -> None:
        """Shutdown: close every value now, leased or not; values drain their own in-flight work first."""
        entries = [*self._entries.values(), *self._retired]
        self._entries.clear()
        self._retired.clear()
        self._used = 0
        await asyncio.gather(*(self._close(entry) for entry in entries), *self._closing, return_exceptions=True)

    # --- views ---------------------------------------------------------------------------------------
    def loaded_keys(self) -> list[K]:
        return list(self._entries)

    def loaded(self) -> list[CachedModel[K]]:
        now = time.monotonic()
        return [
            CachedModel(key, e.value.footprint_bytes, e.leases, e.load_seconds, now - e.last_used)
            for key, e in self._entries.items()
        ]

    def stats(self) -> CacheStats:
        return CacheStats(self._budget, self._used, len(self._entries), self._loads, self._hits, self._evictions)

    # --- internals -----------------------------------------------------------------------------------
    async def _load(self, key: K, load: Callable[[], Awaitable[V]], size_hint: int) -> None:
        try:
            await self._make_room(size_hint, protect=None)
            started = time.perf_counter()
            value = await load()
            seconds = time.perf_counter() - started
            self._loads += 1
            self._entries[key] = _Entry(value, seconds)
            self._used += value.footprint_bytes
            self._observer.on_load(key, seconds, value.footprint_bytes)
            self._observer.on_usage(self._used, len(self._entries))
            await self._make_room(0, protect=key)
        finally:
            self._loading.pop(key, None)

    async def _make_room(self, incoming: int, protect: K | None) -> None:
        """Evict idle entries, least recently used first, until ``incoming`` more bytes fit the budget."""
        victims: list[tuple[K, _Entry[V]]] = []
        needed = self._used + incoming - self._budget
        for key, entry in self._entries.items():
            if needed <= 0:
                break
            if entry.leases == 0 and key != protect:
                victims.append((key, entry))
                needed -= entry.value.footprint_bytes
        for key, _ in victims:
            del self._entries[key]
        for key, entry in victims:
            self._evictions += 1
            await self._retire(key, entry, "budget")
        if self._used + incoming > self._budget:
            logger.warning(
                "Model cache over budget: %.1f MiB used of %.1f MiB (the other models are in use).",
                (self._used + incoming) / 2**20, self._budget / 2**20,
            )

    async def _retire(self, key: K, entry: _Entry[V], reason: str) -> None:
        entry.retired = True
        self._used -= entry.value.footprint_bytes
        self._observer.on_evict(key, reason)
        self._observer.on_usage(self._used, len(self._entries))
        if entry.leases == 0:
            await self._close(entry)
        else:
            self._retired.add(entry)

    def _release(self, entry: _Entry[V]) -> None:
        entry.leases -= 1
        entry.last_used = time.monotonic()
        if entry.retired and entry.leases == 0 and entry in self._retired:  # an unload waited for this request
            self._retired.discard(entry)
            task = asyncio.get_running_loop().create_task(self._close(entry))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close(self, entry: _Entry[V]) -> None:
        if not entry.closed:
            entry.closed = True
            await entry.value.close()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a failed load's exception as seen: its waiters may all have gone away already."""
    if not task.cancelled():
        task.exception()
