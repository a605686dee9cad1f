"""The inference engine: resolve a model reference, lease its loaded runner from the cache, batch, answer.

``resolver -> cache -> runner (batcher -> backend)``. Resolutions are cached for a few seconds, because the
resolver reads the database and a prediction should not; ``invalidate`` drops them at once on this replica
(other replicas follow within ``resolve_ttl_s``). Moving an alias: ``await warm(tenant, model, new_version)``
loads and warms the new version *before* traffic can reach it, then invalidates the model's resolutions.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from maas.config import Settings
from maas.errors import DeadlineExceeded, InvalidInput, MaasError, Unavailable
from maas.inference import postprocess as post
from maas.inference.backends import build_backend
from maas.inference.backends.base import Backend, TensorSpec
from maas.inference.batcher import BatchObserver, NullBatchObserver, Outputs, Ticket
from maas.inference.cache import CachedModel, CacheObserver, CacheStats, Lease, ModelCache, NullCacheObserver
from maas.inference.runner import ModelRunner
from maas.inference.servable import ServableArtifact, ServableVersion, VersionResolver

BackendFactory = Callable[[ServableVersion, ServableArtifact, Settings], Backend]
_Ref = int | str | None


class ModelKey(NamedTuple):
    """What the cache and the metrics know a loaded model by (a tuple: built and hashed on every request)."""

    tenant: str
    model: str
    version: int
    variant: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.model}/{self.version}/{self.variant}"


class Prediction(NamedTuple):
    """One request's answer (a tuple: built on every request, ~1 us cheaper than a frozen dataclass)."""

    model: str
    version: int
    variant: str
    outputs: dict[str, np.ndarray]


Landing = Prediction | MaasError  # what ``infer_nowait`` hands its callback


class Flight(Ticket):
    """A request that ``infer_nowait`` queued (the batcher's ticket itself): it holds its lease on the model
    until it lands or is cancelled."""

    __slots__ = ("_done", "_lease", "_servable", "_variant")

    def __init__(self, x: np.ndarray, deadline: float, servable: ServableVersion, variant: str,
                 lease: Lease[ModelRunner], done: Callable[[Landing], None]) -> None:
        super().__init__(x, deadline)
        self._servable = servable
        self._variant = variant
        self._lease: Lease[ModelRunner] | None = lease
        self._done = done

    def _deliver(self, result: Outputs | MaasError) -> None:
        """The batcher's answer: release the model, then hand the prediction (or the error) on."""
        lease = self._lease
        if lease is None:
            return
        self._lease = None
        lease.release()
        if isinstance(result, MaasError):
            self._done(result)
        else:
            self._done(Prediction(self._servable.model, self._servable.version, self._variant, result))

    def cancel(self) -> None:
        """Drop the request (its client hung up): it leaves the queue, and its callback is not called."""
        lease = self._lease
        if lease is None:
            return
        self._lease = None
        super().cancel()
        lease.release()


@dataclass(frozen=True)
class ModelMetadata:
    """What V2 ``GET /v2/models/{name}`` shows: the resolved version and its tensors."""

    servable: ServableVersion
    variant: str
    platform: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


class InferenceObserver(CacheObserver[ModelKey], Protocol):
    """Everything the engine reports; ``observability.metrics`` implements it with labelled collectors."""

    def batch_observer(self, key: ModelKey) -> BatchObserver: ...


class NullInferenceObserver(NullCacheObserver):
    def batch_observer(self, key: ModelKey) -> BatchObserver:
        return NullBatchObserver()


class InferenceEngine:
    def __init__(
        self,
        settings: Settings,
        resolver: VersionResolver,
        metrics_observer: InferenceObserver | None = None,
        *,
        backend_factory: BackendFactory = build_backend,
        resolve_ttl_s: float = 5.0,
        drain_timeout_s: float = 10.0,
    ) -> None:
        self._settings = settings
        self._resolver = resolver
        self._observer: InferenceObserver = metrics_observer or NullInferenceObserver()
        self._backend_factory = backend_factory
        self._resolve_ttl_s = resolve_ttl_s
        self._drain_timeout_s = drain_timeout_s
        self._cache: ModelCache[ModelKey, ModelRunner] = ModelCache(
            int(settings.model_cache_mb * 2**20), self._observer
        )
        self._resolved: dict[tuple[str, str, _Ref], tuple[ServableVersion, float]] = {}
        self._resolving: dict[tuple[str, str, _Ref], asyncio.Future[ServableVersion]] = {}
        self._load_lock = asyncio.Lock()  # one load at a time: RSS deltas stay attributable, peaks bounded
        self._accepting = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._accepting = True

    @property
    def accepting(self) -> bool:
        """True between ``start`` and ``stop``: V2 ``/v2/health/ready`` reports it."""
        return self._accepting

    async def stop(self) -> None:
        """Refuse new work, let every runner drain its queue, unload everything."""
        self._accepting = False
        await self._cache.close()

    # --- resolution ------------------------------------------------------------------------------------
    def resolved(self, tenant: str, model: str, ref: _Ref = None) -> ServableVersion | None:
        """``resolve``'s answer if it is cached and fresh, else None: no await, for the hot path."""
        cached = self._resolved.get((tenant, model, ref))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    async def resolve(self, tenant: str, model: str, ref: _Ref = None) -> ServableVersion:
        """The version ``ref`` names (None: production alias, else latest); cached for ``resolve_ttl_s``."""
        cached = self.resolved(tenant, model, ref)
        if cached is not None:
            return cached
        key = (tenant, model, ref)
        # Single flight: a burst of cold requests costs the database one query, not one per request.
        pending = self._resolving.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self._resolver.resolve, tenant, model, ref))
            self._resolving[key] = pending
            pending.add_done_callback(lambda done: self._resolved_now(key, done))
        return await asyncio.shield(pending)

    def invalidate(self, tenant: str, model: str) -> None:
        """Forget this model's resolutions (an alias moved, a version was added or deleted).

        Safe from any thread: registry hooks fire on the threads that wrote the registry, while these tables
        belong to the event loop. A call from elsewhere is queued on the loop; callbacks run in order, so it
        runs before the loop learns that the registry write returned (e.g. before the PUT alias answers).
        """
        loop = self._loop
        if loop is not None and not loop.is_closed() and not _running_on(loop):
            try:
                loop.call_soon_threadsafe(self._forget, tenant, model)
                return
            except RuntimeError:  # the loop closed meanwhile: nobody reads the tables any more
                pass
        self._forget(tenant, model)

    def _forget(self, tenant: str, model: str) -> None:
        for table in (self._resolved, self._resolving):
            for key in [k for k in table if k[:2] == (tenant, model)]:
                del table[key]

    # --- serving ---------------------------------------------------------------------------------------
    async def predict(
        self, tenant: str, model: str, ref: _Ref, variant: str | None, x: np.ndarray, deadline: float | None = None
    ) -> Prediction:
        """Resolve ``ref`` and run ``x`` through it; see ``infer``."""
        self._check_accepting()
        return await self.infer(await self.resolve(tenant, model, ref), variant, x, deadline)

    async def infer(
        self, servable: ServableVersion, variant: str | None, x: np.ndarray, deadline: float | None = None
    ) -> Prediction:
        """Run ``x`` (float32 ``[N, *input_shape]``, decoded by ``codecs``) through an already resolved version.

        The API resolves once, decodes the body against that version's shape and feature names, then calls
        this, so an alias moving in between cannot pair one version's decoding with another's model.
        ``deadline`` is a ``time.monotonic()`` value (default: now + ``request_timeout_s``) and covers a cold
        load as well as the queue.
        """
        self._check_accepting()
        deadline = deadline if deadline is not None else time.monotonic() + self._settings.request_timeout_s
        _check_shape(x, servable)
        key, artifact = self._key(servable, variant)
        # A loaded model (the common case) is leased without an await or a timeout context (~5 us saved).
        lease = self._cache.acquire_loaded(key) or await self._acquire(servable, key, artifact, deadline)
        try:
            outputs = await lease.value.submit(x, deadline)
        finally:
            lease.release()
        return Prediction(servable.model, servable.version, key.variant, outputs)

    def infer_nowait(
        self, servable: ServableVersion, variant: str | None, x: np.ndarray, done: Callable[[Landing], None]
    ) -> Flight | None:
        """``infer`` without a task or an await, for a version whose variant is loaded; None when it is not.

        Then nothing was queued: await ``infer``, which loads it. Refusals (a wrong shape, an unknown variant, a
        full queue, a stopped engine) raise here as from ``infer``; every later outcome, the prediction or a
        ``MaasError``, goes to ``done`` once, on the event loop. ``Flight.cancel`` drops the request instead.
        The deadline is now + ``request_timeout_s``.
        """
        self._check_accepting()
        _check_shape(x, servable)
        key, _ = self._key(servable, variant)
        lease = self._cache.acquire_loaded(key)
        if lease is None:
            return None
        flight = Flight(x, time.monotonic() + self._settings.request_timeout_s, servable, key.variant, lease, done)
        try:
            lease.value.enqueue(flight)
        except BaseException:
            lease.release()
            raise
        return flight

    async def _acquire(
        self, servable: ServableVersion, key: ModelKey, artifact: ServableArtifact, deadline: float
    ) -> Lease[ModelRunner]:
        """Load (or wait for the load of) ``key`` within the request's deadline."""
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await self._cache.acquire(key, lambda: self._open(servable, key, artifact), artifact.size_bytes)
        except TimeoutError:
            raise DeadlineExceeded("The model is still loading; retry in a moment.") from None

    async def load(self, tenant: str, model: str, ref: _Ref = None, variant: str | None = None) -> ModelKey:
        """Load (and warm) a version explicitly, e.g. ``POST /v2/repository/models/{name}/load``."""
        servable = await self.resolve(tenant, model, ref)
        return await self._ensure(servable, variant)

    async def warm(self, tenant: str, model: str, ref: _Ref = None) -> ServableVersion:
        """Load and warm what ``ref`` names now (bypassing cached resolutions), then let traffic move to it."""
        servable = await asyncio.to_thread(self._resolver.resolve, tenant, model, ref)
        await self._ensure(servable, None)
        self.invalidate(tenant, model)
        return servable

    async def unload(
        self, tenant: str, model: str, ref: _Ref = None, variant: str | None = None
    ) -> list[ModelKey]:
        """Unload the loaded variants of one version (or of every version when ``ref`` is None)."""
        version = None if ref is None else (await self.resolve(tenant, model, ref)).version
        keys = [
            k for k in self._cache.loaded_keys()
            if (k.tenant, k.model) == (tenant, model)
            and version in (None, k.version)
            and variant in (None, k.variant)
        ]
        for key in keys:
            await self._cache.unload(key)
        return keys

    async def ready(self, tenant: str, model: str, ref: _Ref = None, variant: str | None = None) -> bool:
        """True when the version resolves and its artifact is on disk (it loads on first use if not loaded)."""
        servable = await self.resolve(tenant, model, ref)
        _, artifact = self._key(servable, variant)
        return await asyncio.to_thread(artifact.path.is_file)

    async def metadata(
        self, tenant: str, model: str, ref: _Ref = None, variant: str | None = None
    ) -> ModelMetadata:
        """The resolved version's tensors as the loaded backend reports them (loads it if needed)."""
        servable = await self.resolve(tenant, model, ref)
        key, artifact = self._key(servable, variant)
        async with self._cache.lease(key, lambda: self._open(servable, key, artifact), artifact.size_bytes) as runner:
            input_name, outputs = runner.backend.input_spec.name, runner.backend.output_specs
        labels = post.label_spec(servable)
        return ModelMetadata(
            servable=servable,
            variant=key.variant,
            platform="pytorch_libtorch" if key.variant == "torch" else "onnxruntime_onnx",
            inputs=[TensorSpec(input_name, "FP32", [-1, *servable.input_shape])],
            outputs=[*outputs, labels] if labels else outputs,
        )

    def loaded(self) -> list[CachedModel[ModelKey]]:
        return self._cache.loaded()

    def stats(self) -> CacheStats:
        return self._cache.stats()

    @staticmethod
    def postprocess(servable: ServableVersion, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """``/predict`` answer: labels in the dataset's own classes (+ probabilities), or regression values."""
        return post.postprocess(servable, outputs)

    @staticmethod
    def v2_outputs(servable: ServableVersion, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """V2 answer tensors: the model's outputs plus a ``label`` tensor for classifiers."""
        return post.with_labels(servable, outputs)

    # --- internals -------------------------------------------------------------------------------------
    def _check_accepting(self) -> None:
        if not self._accepting:
            raise Unavailable("The inference engine is not running (the server is starting or stopping).")

    def _resolved_now(self, key: tuple[str, str, _Ref], done: asyncio.Future[ServableVersion]) -> None:
        failed = done.cancelled() or done.exception() is not None  # also marks a failure as retrieved
        if self._resolving.get(key) is not done:  # invalidated meanwhile: its answer may be stale
            return
        del self._resolving[key]
        if not failed:
            servable = done.result()
            self._resolved[key] = (servable, time.monotonic() + self._resolve_ttl_s)
            self._configure_loaded(servable)

    def _batching(self, servable: ServableVersion) -> dict[str, Any]:
        """The model's own batching settings where it has them, else the server's."""
        delay = servable.max_delay_ms
        return {"max_batch_size": servable.max_batch_size or self._settings.max_batch_size,
                "max_delay_ms": self._settings.max_delay_ms if delay is None else delay}

    def _configure_loaded(self, servable: ServableVersion) -> None:
        """Hand a fresh resolution's batching settings to the loaded variants of that version.

        Resolutions are fresh at least every ``resolve_ttl_s`` and at once after ``invalidate``, which the
        registry triggers when a model's settings change: no per-request check is needed.
        """
        batching = self._batching(servable)
        for key in self._cache.loaded_keys():
            if key.tenant == servable.tenant and key.model == servable.model and key.version == servable.version:
                runner = self._cache.peek(key)  # not a use: no hit counted, no LRU recency gained
                if runner is not None:
                    runner.configure(**batching)

    def _key(self, servable: ServableVersion, variant: str | None) -> tuple[ModelKey, ServableArtifact]:
        artifact = servable.artifact(variant)
        return ModelKey(servable.tenant, servable.model, servable.version, artifact.kind), artifact

    async def _ensure(self, servable: ServableVersion, variant: str | None) -> ModelKey:
        key, artifact = self._key(servable, variant)
        await self._cache.ensure(key, lambda: self._open(servable, key, artifact), artifact.size_bytes)
        return key

    async def _open(self, servable: ServableVersion, key: ModelKey, artifact: ServableArtifact) -> ModelRunner:
        self._check_accepting()
        async with self._load_lock:
            await asyncio.to_thread(artifact.verify)
            runner = ModelRunner(
                self._backend_factory(servable, artifact, self._settings),
                input_shape=servable.input_shape,
                **self._batching(servable),
                max_queue=self._settings.max_queue,
                drain_timeout_s=self._drain_timeout_s,
                inline_below_s=self._settings.inline_batch_us / 1e6,
                observer=self._observer.batch_observer(key),
                annotate=functools.partial(post.annotate, servable),
                name=str(key),
            )
            await runner.open()
        return runner


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs on this thread
        return False


def _check_shape(x: np.ndarray, servable: ServableVersion) -> None:
    """A cheap guard for callers that bypass the codecs: a wrong shape must not fail a whole batch."""
    expected = servable.input_shape
    if x.dtype == np.float32 and list(x.shape[1:]) == expected:  # the codecs' output: no per-dimension walk
        return
    if x.ndim != len(expected) + 1 or any(e not in (-1, a) for a, e in zip(x.shape[1:], expected, strict=True)):
        dims = ", ".join(map(str, expected))
        raise InvalidInput(f"The input has shape {list(x.shape)}; the model takes [N, {dims}].")
    if x.dtype != np.float32:
        raise InvalidInput(f"The input has dtype {x.dtype}; the engine takes float32 (decode it with the codecs).")
