"""One loaded model version: its backend, its single worker thread, its dynamic batcher.

The backend is loaded, warmed and measured on the same thread that will run its batches, so nothing
model-related ever executes on the event loop and a slow load never blocks other models' requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from maas.errors import InferenceFailed, MaasError
from maas.inference.backends.base import Backend, fixed_batch_size
from maas.inference.batcher import BatchObserver, DynamicBatcher, Outputs, Ticket
from maas.inference.footprint import FootprintMeter


class ModelRunner:
    def __init__(
        self,
        backend: Backend,
        *,
        input_shape: Sequence[int],
        max_batch_size: int,
        max_delay_ms: float = 0.0,
        max_queue: int = 1024,
        drain_timeout_s: float = 10.0,
        inline_below_s: float = 0.0,
        observer: BatchObserver | None = None,
        annotate: Callable[[Outputs], Outputs] | None = None,
        name: str = "model",
    ) -> None:
        self.backend = backend
        self._annotate = annotate  # once per batch, on the event loop: see DynamicBatcher's ``annotate``
        self._input_shape = [d if d > 0 else 1 for d in input_shape]  # dynamic dims warm up with 1
        self._max_batch_size = max_batch_size
        self._max_delay_ms = max_delay_ms
        self._fixed_batch: int | None = None  # a model exported with a fixed batch dimension takes no more
        self._batcher_options = {"max_delay_ms": max_delay_ms, "max_queue": max_queue, "observer": observer,
                                 "inline_below_s": inline_below_s}
        self._drain_timeout_s = drain_timeout_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"maas-{name}")
        self._batcher: DynamicBatcher | None = None
        self.footprint_bytes = 0
        self.load_seconds = 0.0
        self._one_row_seconds = 0.01  # measured by the warm-up; seeds the batcher's inline decision

    @property
    def queue_depth(self) -> int:
        return self._batcher.queue_depth if self._batcher else 0

    async def open(self) -> None:
        """Load, warm with a dummy batch and measure the footprint; then start accepting requests."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            self.footprint_bytes = await loop.run_in_executor(self._executor, self._load_and_warm)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self.load_seconds = time.perf_counter() - started
        self._batcher = DynamicBatcher(
            self.backend.predict,
            max_batch_size=self._max_batch_size,
            executor=self._executor,
            compute_estimate_s=self._one_row_seconds,
            annotate=self._annotate,
            **self._batcher_options,  # type: ignore[arg-type]
        )
        self._batcher.start()

    def submit(self, x: np.ndarray, deadline: float) -> Awaitable[Outputs]:
        """The batcher's ``submit``, handed out rather than awaited here: one coroutine less to suspend
        and resume on every request."""
        if self._batcher is None:
            raise RuntimeError("The model runner is not open.")
        return self._batcher.submit(x, deadline)

    def enqueue(self, ticket: Ticket) -> None:
        """The batcher's ``enqueue``: a ticket made by the caller joins the queue (refusals raise)."""
        if self._batcher is None:
            raise RuntimeError("The model runner is not open.")
        self._batcher.enqueue(ticket)

    @property
    def batching(self) -> tuple[int, float]:
        """(max_batch_size, max_delay_ms) in force."""
        return self._max_batch_size, self._max_delay_ms

    def configure(self, *, max_batch_size: int, max_delay_ms: float) -> None:
        """Change the batching settings of the loaded model (a model's own settings were edited)."""
        if self._fixed_batch is not None:
            max_batch_size = min(max_batch_size, self._fixed_batch)
        self._max_batch_size, self._max_delay_ms = max_batch_size, max_delay_ms
        if self._batcher is not None:
            self._batcher.configure(max_batch_size=max_batch_size, max_delay_ms=max_delay_ms)

    async def close(self) -> None:
        """Drain queued requests, then unload on the worker thread (after any batch still running there)."""
        if self._batcher is not None:
            await self._batcher.stop(self._drain_timeout_s)
        await asyncio.get_running_loop().run_in_executor(self._executor, self.backend.unload)
        self._executor.shutdown(wait=False)

    def _load_and_warm(self) -> int:
        meter = FootprintMeter()
        try:
            self.backend.load()
            fixed = self._fixed_batch = fixed_batch_size(self.backend.input_spec)
            if fixed is not None:  # a model exported with a fixed batch cannot take more rows
                self._max_batch_size = min(self._max_batch_size, fixed)
            # Warm with one row, then a full batch: first-run allocations (ORT arenas, kernels) happen now,
            # not in a user's request, and the measured footprint includes them.
            for rows in sorted({fixed or 1, self._max_batch_size}):
                self.backend.predict(np.zeros([rows, *self._input_shape], dtype=np.float32))
            self._one_row_seconds = self._time_one_batch(fixed or 1)
        except MaasError:
            raise
        except Exception as exc:  # ORT and torch raise many unrelated types for unloadable models
            raise InferenceFailed(
                "The model could not be loaded and warmed up.", details=[f"{type(exc).__name__}: {exc}"[:500]]
            ) from exc
        return meter.measure(self.backend.footprint_bytes)

    def _time_one_batch(self, rows: int) -> float:
        """The warm model's time for its smallest batch: the best of a few runs, as the first ones are noisy."""
        batch = np.zeros([rows, *self._input_shape], dtype=np.float32)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            self.backend.predict(batch)
            best = min(best, time.perf_counter() - started)
        return best
