"""Dynamic batching for one loaded model: a bounded queue, one consumer task, a future (or callback) a request.

Opportunistic by default: whenever the model can take a batch, the consumer takes everything already queued
(up to ``max_batch_size`` rows) and runs it at once, so a lone request never waits for company and a burst is
absorbed in as few model calls as possible. ``max_delay_ms > 0`` adds a timed window for callers who prefer
fuller batches to lower latency. The model runs on an executor thread, so the event loop keeps accepting --
except where the model's own time per request in the batch (a moving average) is under ``inline_below_s``:
handing a batch to a thread and back costs wake-ups on both sides and slows whatever the other core runs, so
a batch whose compute is small beside the event loop's own work for its requests (parsing, answering) runs on
the loop directly, and only while no batch is on the thread (a backend is never called from two threads at
once). Measured on 2 cores: the MLP's batches of ~24 one-row requests and its 64-row requests (~60 us each)
were faster inline; the CNN's 64-row requests (~220 us each) were faster on the thread, where their compute
overlaps the parsing of the next request. A batch is also sent to the thread when its estimated compute would
hold the loop longer than ``_INLINE_CAP`` times the limit (many requests of a slower model).

Batches on the thread are pipelined: while one runs, a second *full* batch (``max_batch_size`` rows queued)
is handed over too, up to ``max_in_flight`` (default 2), so the thread starts it the moment it finishes the
first instead of waiting for the event loop to wake up, answer and hand over again. A batch that is not full
waits for the thread instead, and takes everything that arrived meanwhile. The executor has one thread, so
batches still run one after another; the requests of a batch waiting there still count against the queue's
bound. Measured on 2 cores with 64-row CNN requests over V2 binary tensors:
1,290 -> 1,815 req/s.

Requests are validated before they get here (see ``codecs``), so one bad request never fails a batch; a batch
that fails anyway fails only its own requests. Back-pressure: a full queue answers ``Overloaded`` at once, a
request past its deadline gets ``DeadlineExceeded``, a cancelled waiter (client gone) leaves the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Protocol

import numpy as np

from maas.errors import DeadlineExceeded, InferenceFailed, MaasError, Overloaded, Unavailable
from maas.inference import collate

logger = logging.getLogger(__name__)
_INLINE_CAP = 8  # a batch runs inline only if its estimated compute is under this many times inline_below_s

RunBatch = Callable[[np.ndarray], dict[str, np.ndarray]]
Outputs = dict[str, np.ndarray]


class BatchObserver(Protocol):
    """Metrics hooks, so this module stays free of Prometheus globals (see ``observability``)."""

    def on_batch(self, rows: int, requests: int, seconds: float, failed: bool) -> None: ...

    def on_reject(self, reason: str) -> None:
        """``reason`` is ``overloaded`` or ``deadline``."""
        ...

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Called once by a new batcher: ``depth()`` is its queue depth now (read at scrape time)."""
        ...


class NullBatchObserver:
    def on_batch(self, rows: int, requests: int, seconds: float, failed: bool) -> None:
        pass

    def on_reject(self, reason: str) -> None:
        pass

    def watch_queue(self, depth: Callable[[], int]) -> None:
        pass


Landed = Callable[["Outputs | MaasError"], None]


class _Request:
    """One queued request that ``submit`` awaits through its future. Identity equality (the default):
    ``deque.remove`` must not compare numpy arrays.

    The batcher only calls ``done``, ``set_result`` and ``set_exception`` on a request; ``Ticket`` is the same
    request answered by a callback instead of a future.
    """

    __slots__ = ("deadline", "enqueued", "future", "rows", "x")

    def __init__(self, x: np.ndarray, deadline: float, future: asyncio.Future[Outputs]) -> None:
        self.x = x
        self.rows: int = x.shape[0]
        self.enqueued = time.monotonic()
        self.deadline = deadline
        self.future = future

    def done(self) -> bool:
        """Answered, failed or given up (its waiter cancelled): the batcher skips it."""
        return self.future.done()

    def set_result(self, outputs: Outputs) -> None:
        self.future.set_result(outputs)

    def set_exception(self, error: MaasError) -> None:
        self.future.set_exception(error)


_PENDING, _LANDED, _CANCELLED = 0, 1, 2  # the states of a Ticket


class Ticket(_Request):
    """A ``submit_nowait`` request: queued like any, answered by a callback; ``cancel`` drops it.

    One object per request (not a request, a callback and a handle to cancel them): the batcher's queue holds
    the ticket itself. The answer (``landed(outputs or error)``; a subclass overrides ``_deliver`` instead) is
    given at once, inside the batcher's own step (the batch's answer, a deadline, ``stop``), so it must be
    quick; an exception from it is logged, and never reaches the batch's other requests.
    """

    __slots__ = ("_batcher", "_landed", "_state")
    _batcher: DynamicBatcher  # set by ``DynamicBatcher.enqueue``

    def __init__(self, x: np.ndarray, deadline: float, landed: Landed | None = None) -> None:
        self.x = x  # _Request's attributes, set here rather than through its __init__: one call less
        self.rows = x.shape[0]
        self.enqueued = time.monotonic()
        self.deadline = deadline
        self._landed = landed
        self._state = _PENDING

    def done(self) -> bool:
        return self._state != _PENDING

    def set_result(self, outputs: Outputs) -> None:
        self._land(outputs)

    def set_exception(self, error: MaasError) -> None:
        self._land(error)

    def cancel(self) -> None:
        """Drop the request (from the queue, or from its batch's answers): no answer will be delivered."""
        if self._state == _PENDING:
            self._state = _CANCELLED
            self._batcher._discard(self)

    def _land(self, result: Outputs | MaasError) -> None:
        if self._state != _PENDING:
            return
        self._state = _LANDED
        try:
            self._deliver(result)
        except Exception:
            logger.exception("A request's answer callback failed")

    def _deliver(self, result: Outputs | MaasError) -> None:
        self._landed(result)  # type: ignore[misc]  # set unless a subclass delivers otherwise


class DynamicBatcher:
    _loop: asyncio.AbstractEventLoop  # the loop that runs the batcher, from ``start`` on

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int,
        max_delay_ms: float = 0.0,
        max_queue: int = 1024,
        executor: Executor | None = None,
        observer: BatchObserver | None = None,
        inline_below_s: float = 0.0,
        compute_estimate_s: float = 0.01,
        max_in_flight: int = 2,
        annotate: Callable[[Outputs], Outputs] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1.")
        self._run_batch = run_batch
        # Applied to a whole batch's outputs before they are split (postprocess.annotate: labels and scores once
        # per batch). On the event loop, not the model's thread: that thread should hold the GIL as little as
        # possible besides the model call (which releases it), or the loop waits for it while parsing requests.
        self._annotate = annotate
        self._max_batch_size = max_batch_size
        self._max_delay = max_delay_ms / 1000.0
        self._max_queue = max_queue
        self._executor = executor
        self._observer = observer or NullBatchObserver()
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0  # rows of the requests in _queue
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Batches handed to the executor, not yet answered, oldest first, with their requests.
        self._in_flight: dict[asyncio.Task[None], list[_Request]] = {}
        self._max_in_flight = max_in_flight
        self._closing = False
        self._batch_seconds = 0.01  # moving average of one model call; sizes Retry-After
        self._inline_below_s = inline_below_s
        # Moving average of the model's own time per request of a batch: decides where the next batch runs.
        self._compute_per_request = compute_estimate_s
        self._deadline_timer: asyncio.TimerHandle | None = None  # see _check_deadlines_at
        self._deadline_check_at = math.inf
        self._observer.watch_queue(lambda: self.queue_depth)

    @property
    def queue_depth(self) -> int:
        """Requests waiting: queued, or in a batch that was handed to the thread early and waits there."""
        return len(self._queue) + self._waiting_on_thread()

    @property
    def batches_in_flight(self) -> int:
        """Batches handed to the model's thread and not yet answered (at most ``max_in_flight``)."""
        return len(self._in_flight)

    @property
    def accepting(self) -> bool:
        return self._task is not None and not self._closing

    def configure(self, *, max_batch_size: int, max_delay_ms: float) -> None:
        """New batching settings, taken by the next batch (the consumer reads them afresh for each)."""
        self._max_batch_size = max_batch_size
        self._max_delay = max_delay_ms / 1000.0

    def start(self) -> None:
        if self._task is None:
            # Kept, not looked up per request: on CPython 3.11 each lookup makes a getpid() system call.
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._consume(), name="maas-batcher")

    async def submit(self, x: np.ndarray, deadline: float) -> Outputs:
        """Queue ``x`` (``[n, *input_shape]``) and wait for its outputs; ``deadline`` is a ``time.monotonic()``."""
        future: asyncio.Future[Outputs] = self._loop.create_future()
        request = _Request(x, deadline, future)
        self._enqueue(request)
        try:
            return await future
        finally:
            if future.cancelled():
                self._discard(request)

    def submit_nowait(self, x: np.ndarray, deadline: float, landed: Landed) -> Ticket:
        """Queue ``x`` like ``submit``, without a future or a task: ``landed(outputs or error)`` is called once.

        Refusals (closed, full queue, deadline passed) raise here, as from ``submit``; every later outcome,
        errors included, goes to ``landed``, called from the batcher's own step on the event loop. The ticket
        cancels the request (its client hung up): it leaves the queue and ``landed`` is not called.
        """
        ticket = Ticket(x, deadline, landed)
        self.enqueue(ticket)
        return ticket

    def enqueue(self, ticket: Ticket) -> None:
        """Queue a ticket made by the caller (a ``Ticket`` subclass that delivers its own way); refusals raise."""
        ticket._batcher = self
        self._enqueue(ticket)

    def _enqueue(self, request: _Request) -> None:
        if self._task is None or self._closing:  # not self.accepting: a property call less per request
            raise Unavailable("The model is not accepting requests right now (it is being unloaded).")
        waiting = len(self._queue)
        if len(self._in_flight) > 1:  # see queue_depth
            waiting += self._waiting_on_thread()
        if waiting >= self._max_queue:
            self._observer.on_reject("overloaded")
            raise Overloaded(
                f"The model's queue is full ({self._max_queue} requests waiting); retry shortly.",
                retry_after=self._retry_after(),
            )
        deadline = request.deadline
        if deadline <= request.enqueued:
            raise DeadlineExceeded("The request's deadline passed before it could be queued.")
        self._queue.append(request)
        self._queued_rows += request.rows
        if deadline < self._deadline_check_at:
            self._check_deadlines_at(deadline)
        self._wakeup.set()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop accepting, let the queue drain for up to ``drain_timeout`` s, then fail what is left."""
        self._closing = True
        self._wakeup.set()
        if self._task is None or self._task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), drain_timeout)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            leftovers = list(self._queue)
            self._queue.clear()
            self._queued_rows = 0
            _fail(leftovers, _unloaded())
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
                self._deadline_timer, self._deadline_check_at = None, math.inf

    # --- the consumer ------------------------------------------------------------------------------------
    async def _consume(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        await self._settle()
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._thread_busy():
                    self._wakeup.clear()  # set again by a new request or a batch coming back
                    await self._wakeup.wait()
                    continue
                if self._max_delay > 0 and not self._closing:
                    await self._wait_for_company()
                batch = self._take()
                if not batch:
                    continue
                if self._runs_inline(len(batch)):
                    self._execute_inline(batch)
                else:
                    self._dispatch(batch)
        except asyncio.CancelledError:  # stop() gave up draining: the batches on the thread fail too
            for task in self._in_flight:
                task.cancel()
            await self._settle()
            raise

    def _runs_inline(self, requests: int) -> bool:
        """Whether a batch of ``requests`` should run on the event loop (see the module's docstring)."""
        if self._in_flight:
            return False
        per_request = self._compute_per_request
        return per_request < self._inline_below_s and per_request * requests < _INLINE_CAP * self._inline_below_s

    def _waiting_on_thread(self) -> int:
        """Requests in the batches handed over behind the one that runs (the oldest): they still wait.

        One whose client hung up (its future cancelled) no longer counts, as if it had left the queue.
        """
        if len(self._in_flight) < 2:
            return 0
        return sum(not r.done() for batch in list(self._in_flight.values())[1:] for r in batch)

    def _thread_busy(self) -> bool:
        """Whether the next batch should wait for one on the thread to come back.

        A second batch is handed over early only when it is full: at most ``max_in_flight`` are out, and
        sending a few rows ahead would cost a whole model call for them while the rest of a burst piles up.
        """
        flying = len(self._in_flight)
        if flying >= self._max_in_flight:
            return True
        return flying > 0 and not self._closing and self._queued_rows < self._max_batch_size

    async def _settle(self) -> None:
        """Wait until every batch handed to the executor has been answered (or failed)."""
        while self._in_flight:
            await asyncio.wait(list(self._in_flight))

    def _take(self) -> list[_Request]:
        """Everything queued that fits in one batch (always at least one request, however many rows)."""
        taken: list[_Request] = []
        rows = 0
        while self._queue:
            head = self._queue[0]
            if head.done():  # expired or cancelled while queued
                self._queue.popleft()
                self._queued_rows -= head.rows
                continue
            if taken and rows + head.rows > self._max_batch_size:
                break
            taken.append(self._queue.popleft())
            rows += head.rows
        self._queued_rows -= rows
        return taken

    async def _wait_for_company(self) -> None:
        until = self._queue[0].enqueued + self._max_delay
        while not self._closing and self._queued_rows < self._max_batch_size:
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _dispatch(self, batch: list[_Request]) -> None:
        task = self._loop.create_task(self._execute(batch), name="maas-batch")
        self._in_flight[task] = batch
        task.add_done_callback(self._landed)

    def _landed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._wakeup.set()  # the consumer may be waiting for the thread

    async def _execute(self, batch: list[_Request]) -> None:
        """Run ``batch`` on the executor thread and answer its requests."""
        started = time.perf_counter()
        try:
            inputs, offsets = collate.stack([r.x for r in batch])
            outputs = await self._loop.run_in_executor(self._executor, self._timed_run, inputs, len(batch))
        except asyncio.CancelledError:  # stop() gave up draining: this batch's waiters must not hang
            _fail(batch, _unloaded())
            raise
        except Exception as exc:  # any backend failure belongs to this batch's requests only
            self._finish(batch, [], exc, started)
        else:
            self._finish(batch, offsets, outputs, started)

    def _execute_inline(self, batch: list[_Request]) -> None:
        """Run ``batch`` on the event loop (a cheap model: see the module's docstring) and answer its requests."""
        started = time.perf_counter()
        try:
            inputs, offsets = collate.stack([r.x for r in batch])
            outputs = self._timed_run(inputs, len(batch))
        except Exception as exc:  # as above: this batch's requests only
            self._finish(batch, [], exc, started)
        else:
            self._finish(batch, offsets, outputs, started)

    def _finish(self, batch: list[_Request], offsets: list[int], result: Outputs | Exception, started: float) -> None:
        """Answer ``batch`` with its share of ``result`` each (or fail it with ``result``), then report it."""
        error = result if isinstance(result, Exception) else None
        if not isinstance(result, Exception):
            try:
                parts = collate.split(result if self._annotate is None else self._annotate(result), offsets)
            except Exception as exc:  # outputs that do not fit the batch (an imported model's quirk)
                error = exc
            else:
                for request, part in zip(batch, parts, strict=True):
                    if not request.done():
                        request.set_result(part)
        if error is not None:
            logger.warning("A batch of %d requests failed: %s", len(batch), error)
            _fail(batch, _as_maas_error(error))
        seconds = time.perf_counter() - started
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
        rows = sum(r.rows for r in batch)
        self._observer.on_batch(rows, len(batch), seconds, error is not None)

    def _timed_run(self, inputs: np.ndarray, requests: int) -> Outputs:
        started = time.perf_counter()
        outputs = self._run_batch(inputs)
        per_request = (time.perf_counter() - started) / requests
        self._compute_per_request = 0.8 * self._compute_per_request + 0.2 * per_request
        return outputs

    # --- deadlines -------------------------------------------------------------------------------------
    # One timer per batcher, armed for the earliest deadline of the requests waiting (queued or on the thread),
    # instead of one per request: a libuv timer started and cancelled measured ~4 us, a tenth of a small
    # model's whole request. Deadlines mostly share one timeout, so the timer fires about once per timeout
    # and re-arms for the oldest request still waiting.
    def _check_deadlines_at(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_check_at = when
        delay = max(0.0, when - time.monotonic())
        self._deadline_timer = self._loop.call_later(delay, self._expire_due)

    def _expire_due(self) -> None:
        """Fail every waiting request whose deadline has passed; re-arm for the earliest one left."""
        self._deadline_timer, self._deadline_check_at = None, math.inf
        now = time.monotonic()
        expired = [r for r in self._waiting() if r.deadline <= now and not r.done()]
        if expired:
            self._queue = deque(r for r in self._queue if r.deadline > now)
            self._queued_rows = sum(r.rows for r in self._queue)
            error = DeadlineExceeded("The prediction did not finish before its deadline; the server is busy.")
            for request in expired:
                self._observer.on_reject("deadline")
                request.set_exception(error)
        earliest = min((r.deadline for r in self._waiting() if not r.done()), default=math.inf)
        if earliest < math.inf:
            self._check_deadlines_at(earliest)

    def _waiting(self) -> Iterator[_Request]:
        yield from self._queue
        for batch in self._in_flight.values():
            yield from batch

    # --- helpers of the waiters ------------------------------------------------------------------------

    def _discard(self, request: _Request) -> None:
        try:
            self._queue.remove(request)
        except ValueError:  # already taken into a batch
            return
        self._queued_rows -= request.rows

    def _retry_after(self) -> float:
        batches_ahead = self.queue_depth / self._max_batch_size + 1
        return float(max(1, math.ceil(self._batch_seconds * batches_ahead)))


def _fail(requests: list[_Request], error: MaasError) -> None:
    for request in requests:
        if not request.done():
            request.set_exception(error)


def _unloaded() -> MaasError:
    return Unavailable("The model was unloaded before this request could run.")


def _as_maas_error(exc: Exception) -> MaasError:
    if isinstance(exc, MaasError):
        return exc
    return InferenceFailed("The model failed to run this batch.", details=[f"{type(exc).__name__}: {exc}"[:500]])
