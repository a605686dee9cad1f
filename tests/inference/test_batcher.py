from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from maas.errors import DeadlineExceeded, InferenceFailed, MaasError, Overloaded, Unavailable
from maas.inference.batcher import DynamicBatcher, Outputs

pytestmark = pytest.mark.anyio

POISON = -1.0  # a row holding this makes the fake model fail its whole batch


class AffineModel:
    """2x + 1, recording every batch; ``hold()`` makes the next batches block until ``release()``."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self._gate = threading.Event()
        self._gate.set()
        self.entered = threading.Event()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.entered.set()
        self._gate.wait(5)
        self.batches.append(batch.shape[0])
        if (batch == POISON).any():
            raise RuntimeError("boom")
        return {"y": batch * 2 + 1}


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []
        self.rejects: list[str] = []

    def on_batch(self, rows: int, requests: int, seconds: float, failed: bool) -> None:
        self.batches.append((rows, requests))

    def on_reject(self, reason: str) -> None:
        self.rejects.append(reason)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.depth = depth


@pytest.fixture
def model() -> AffineModel:
    return AffineModel()


@pytest.fixture
def observer() -> Recorder:
    return Recorder()


async def submit_by_callback(batcher: DynamicBatcher, x: np.ndarray, deadline: float) -> Outputs:
    """``submit`` through ``submit_nowait``: what ``landed`` receives, as a future's result or exception."""
    landing: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()

    def landed(result: Outputs | MaasError) -> None:
        if isinstance(result, MaasError):
            landing.set_exception(result)
        else:
            landing.set_result(result)

    ticket = batcher.submit_nowait(x, deadline, landed)
    try:
        return await asyncio.shield(landing)
    except asyncio.CancelledError:
        ticket.cancel()  # what the protocol does when a client hangs up
        raise


@pytest.fixture
async def plain_batchers(model: AffineModel, observer: Recorder) -> AsyncIterator[Callable[..., DynamicBatcher]]:
    """Makes started batchers around ``model`` on one thread; stops them all at the end."""
    executor = ThreadPoolExecutor(1)
    made: list[DynamicBatcher] = []

    def make(**options: float) -> DynamicBatcher:
        settings = {"max_batch_size": 8, "max_delay_ms": 0.0, "max_queue": 100, **options}
        batcher = DynamicBatcher(model, executor=executor, observer=observer, **settings)  # type: ignore[arg-type]
        batcher.start()
        made.append(batcher)
        return batcher

    yield make
    model.release()
    for batcher in made:
        await batcher.stop(1.0)
    executor.shutdown()


@pytest.fixture(params=["future", "callback"])
def make_batcher(plain_batchers: Callable[..., DynamicBatcher], request: pytest.FixtureRequest) -> object:
    """Batchers whose ``submit`` is their own (a future per request) or goes through ``submit_nowait``."""

    def make(**options: float) -> DynamicBatcher:
        batcher = plain_batchers(**options)
        if request.param == "callback":
            batcher.submit = functools.partial(submit_by_callback, batcher)  # type: ignore[method-assign]
        return batcher

    return make


async def eventually(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


def rows(value: float, n: int = 1) -> np.ndarray:
    return np.full([n, 4], value, dtype=np.float32)


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def wait_until_running(model: AffineModel) -> None:
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 5)


@pytest.mark.parametrize(
    ("max_batch_size", "sizes"), [(1, [1] * 5), (4, [1] * 10), (8, [3, 3, 3, 1, 5]), (64, [2] * 40)]
)
async def test_concurrent_requests_get_their_own_rows_in_batches_no_larger_than_allowed(
    make_batcher, model: AffineModel, max_batch_size: int, sizes: list[int]
) -> None:
    batcher = make_batcher(max_batch_size=max_batch_size)
    results = await asyncio.gather(*(batcher.submit(rows(i, n), soon()) for i, n in enumerate(sizes)))
    for i, (n, out) in enumerate(zip(sizes, results, strict=True)):
        np.testing.assert_array_equal(out["y"], rows(2 * i + 1, n))
    assert sum(model.batches) == sum(sizes)
    assert max(model.batches) <= max_batch_size


async def test_a_lone_request_does_not_wait_for_company(make_batcher) -> None:
    batcher = make_batcher(max_batch_size=64)
    started = time.perf_counter()
    out = await batcher.submit(rows(4.0), soon())
    assert out["y"][0, 0] == 9.0
    assert time.perf_counter() - started < 0.4  # no timed window (a 0.5 s one would show; slack for a slow CI VM)


async def test_everything_queued_while_the_model_is_busy_runs_as_one_batch(make_batcher, model: AffineModel,
                                                                          observer: Recorder) -> None:
    batcher = make_batcher(max_batch_size=8)
    model.hold()
    first = asyncio.ensure_future(batcher.submit(rows(0), soon()))
    await wait_until_running(model)
    rest = [asyncio.ensure_future(batcher.submit(rows(i), soon())) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    assert batcher.queue_depth == 5
    assert observer.depth() == 5  # what a scrape reads while the batch still runs
    model.release()
    await asyncio.gather(first, *rest)
    assert model.batches == [1, 5]


@pytest.mark.parametrize(("max_in_flight", "handed_over"), [(2, 2), (1, 1)])
async def test_a_full_batch_is_handed_to_the_thread_while_another_runs(
    make_batcher, model: AffineModel, max_in_flight: int, handed_over: int
) -> None:
    batcher = make_batcher(max_batch_size=2, max_in_flight=max_in_flight)
    model.hold()
    first = asyncio.ensure_future(batcher.submit(rows(0, 2), soon()))
    await wait_until_running(model)
    rest = [asyncio.ensure_future(batcher.submit(rows(i, 2), soon())) for i in (1, 2)]
    await asyncio.sleep(0.01)
    # Pipelined: the second full batch already waits on the thread, only the third is still queued; both
    # still count as waiting (against the queue's bound, and in the queue-depth gauge).
    assert (batcher.batches_in_flight, batcher.queue_depth) == (handed_over, 2)
    model.release()
    results = await asyncio.gather(first, *rest)
    assert [r["y"][0, 0] for r in results] == [1.0, 3.0, 5.0]
    assert model.batches == [2, 2, 2]


async def test_a_batch_that_is_not_full_waits_for_the_thread_and_gathers_what_arrives(
    make_batcher, model: AffineModel
) -> None:
    batcher = make_batcher(max_batch_size=8)
    model.hold()
    first = asyncio.ensure_future(batcher.submit(rows(0), soon()))
    await wait_until_running(model)
    rest = []
    for i in range(1, 4):  # arriving one by one while the model is busy: not one extra model call each
        rest.append(asyncio.ensure_future(batcher.submit(rows(i), soon())))
        await asyncio.sleep(0.005)
    model.release()
    await asyncio.gather(first, *rest)
    assert model.batches == [1, 3]


class TimedModel:
    """Costs ``per_row`` seconds a row and notes the thread that ran each batch."""

    def __init__(self, per_row: float) -> None:
        self.per_row = per_row
        self.threads: list[str] = []

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.per_row * batch.shape[0])
        return {"y": batch * 2 + 1}


@pytest.mark.parametrize(
    ("per_row", "requests", "rows_each", "inline"),
    [
        (1e-5, 8, 1, True),  # a small model's batch of one-row requests
        (1e-5, 1, 64, True),  # one bulk request of a small model: 0.64 ms of compute, under 2 ms a request
        (2e-4, 1, 20, False),  # one bulk request of a slower model: 4 ms of compute for it, over 2 ms
        (1e-3, 2, 1, True),  # 2 ms for the batch, but 1 ms a request
        (1e-3, 20, 1, False),  # 1 ms a request, but 20 of them would hold the loop 20 ms, over 8x the limit
    ],
)
async def test_a_batch_runs_inline_when_its_compute_per_request_is_under_the_limit(
    per_row: float, requests: int, rows_each: int, inline: bool
) -> None:
    timed = TimedModel(per_row)
    executor = ThreadPoolExecutor(1, thread_name_prefix="model")
    batcher = DynamicBatcher(timed, max_batch_size=64, executor=executor, inline_below_s=2e-3,
                             compute_estimate_s=per_row * rows_each)
    batcher.start()
    for _ in range(3):  # the moving average follows what the batches really cost
        results = await asyncio.gather(*(batcher.submit(rows(i, rows_each), soon()) for i in range(requests)))
        assert [r["y"][0, 0] for r in results] == [2 * i + 1 for i in range(requests)]
    await batcher.stop(1.0)
    executor.shutdown()
    assert len(timed.threads) == 3
    on_loop = threading.current_thread().name
    assert all((name == on_loop) == inline for name in timed.threads), timed.threads


async def test_a_timed_window_gathers_requests_when_max_delay_is_set(make_batcher, model: AffineModel) -> None:
    batcher = make_batcher(max_batch_size=8, max_delay_ms=100)
    tasks = []
    for i in range(3):
        tasks.append(asyncio.ensure_future(batcher.submit(rows(i), soon())))
        await asyncio.sleep(0.005)
    await asyncio.gather(*tasks)
    assert model.batches == [3]


async def test_a_full_batch_does_not_wait_for_the_window(make_batcher, model: AffineModel) -> None:
    batcher = make_batcher(max_batch_size=2, max_delay_ms=5000)
    started = time.perf_counter()
    await asyncio.gather(batcher.submit(rows(1), soon()), batcher.submit(rows(2), soon()))
    assert time.perf_counter() - started < 1.0
    assert model.batches == [2]


async def test_a_request_past_its_deadline_gets_deadline_exceeded(make_batcher, model: AffineModel, observer) -> None:
    batcher = make_batcher()
    model.hold()
    blocker = asyncio.ensure_future(batcher.submit(rows(0), soon()))
    await wait_until_running(model)
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(rows(1), soon(0.05))
    assert batcher.queue_depth == 0  # the expired request left the queue at once
    assert observer.rejects == ["deadline"]
    model.release()
    await blocker
    assert model.batches == [1]  # and never ran


async def test_deadlines_expire_in_their_own_order_whatever_the_order_of_arrival(
    make_batcher, model: AffineModel, observer
) -> None:
    # One timer serves every waiting request: it must re-arm for a later arrival with an earlier deadline, and
    # for the requests still waiting once the earliest has expired; the batch on the thread expires too.
    batcher = make_batcher()
    model.hold()
    running = asyncio.ensure_future(batcher.submit(rows(0), soon(0.3)))
    await wait_until_running(model)
    patient = asyncio.ensure_future(batcher.submit(rows(1), soon(0.6)))
    hasty = asyncio.ensure_future(batcher.submit(rows(2), soon(0.1)))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await hasty
    assert 0.05 < time.monotonic() - started < 0.25 and not patient.done() and not running.done()
    with pytest.raises(DeadlineExceeded):
        await running  # its batch still holds the thread
    with pytest.raises(DeadlineExceeded):
        await patient
    assert 0.45 < time.monotonic() - started < 0.9
    assert observer.rejects == ["deadline"] * 3 and batcher.queue_depth == 0
    model.release()
    assert (await batcher.submit(rows(3), soon())) is not None  # the batcher still serves


async def test_a_deadline_already_past_is_refused_at_once(make_batcher) -> None:
    with pytest.raises(DeadlineExceeded):
        await make_batcher().submit(rows(1), time.monotonic() - 1)


async def test_a_full_queue_answers_overloaded_with_a_retry_hint(make_batcher, model: AffineModel, observer) -> None:
    batcher = make_batcher(max_queue=2)
    model.hold()
    running = asyncio.ensure_future(batcher.submit(rows(0), soon()))
    await wait_until_running(model)
    queued = [asyncio.ensure_future(batcher.submit(rows(i), soon())) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as caught:
        await batcher.submit(rows(3), soon())
    assert caught.value.retry_after >= 1
    assert observer.rejects == ["overloaded"]
    model.release()
    await asyncio.gather(running, *queued)


async def test_a_failing_batch_fails_only_its_own_requests(make_batcher, model: AffineModel, observer) -> None:
    batcher = make_batcher(max_batch_size=8)
    model.hold()
    doomed = asyncio.ensure_future(batcher.submit(rows(POISON), soon()))
    await wait_until_running(model)
    neighbours = [asyncio.ensure_future(batcher.submit(rows(i), soon())) for i in (1, 2)]
    await asyncio.sleep(0.01)
    model.release()
    with pytest.raises(InferenceFailed) as caught:
        await doomed
    assert caught.value.details == ["RuntimeError: boom"]
    first, second = await asyncio.gather(*neighbours)
    assert first["y"][0, 0] == 3.0 and second["y"][0, 0] == 5.0
    assert [b for b in observer.batches] == [(1, 1), (2, 2)]


async def test_a_cancelled_waiter_leaves_the_queue_and_is_skipped(make_batcher, model: AffineModel) -> None:
    batcher = make_batcher(max_batch_size=8)
    model.hold()
    running = asyncio.ensure_future(batcher.submit(rows(0), soon()))
    await wait_until_running(model)
    gone = asyncio.ensure_future(batcher.submit(rows(1, 3), soon()))
    kept = asyncio.ensure_future(batcher.submit(rows(2), soon()))
    await asyncio.sleep(0)
    gone.cancel()  # the client disconnected
    await asyncio.sleep(0)
    assert batcher.queue_depth == 1
    model.release()
    await running
    assert (await kept)["y"][0, 0] == 5.0
    assert model.batches == [1, 1]


async def test_stop_drains_the_queue_then_refuses_new_requests(make_batcher, model: AffineModel) -> None:
    batcher = make_batcher(max_batch_size=2)
    model.hold()
    pending = [asyncio.ensure_future(batcher.submit(rows(i), soon())) for i in range(5)]
    await wait_until_running(model)
    stopping = asyncio.ensure_future(batcher.stop(drain_timeout=5))
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable):
        await batcher.submit(rows(9), soon())
    model.release()
    await stopping
    results = await asyncio.gather(*pending)
    assert [r["y"][0, 0] for r in results] == [1.0, 3.0, 5.0, 7.0, 9.0]


async def test_stop_fails_what_it_could_not_drain_in_time(make_batcher, model: AffineModel) -> None:
    batcher = make_batcher(max_batch_size=1)
    model.hold()
    pending = [asyncio.ensure_future(batcher.submit(rows(i), soon())) for i in range(3)]
    await wait_until_running(model)
    await batcher.stop(drain_timeout=0.05)
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(o, Unavailable) for o in outcomes)


async def test_a_callback_that_fails_does_not_touch_the_rest_of_its_batch(plain_batchers, model: AffineModel,
                                                                         observer: Recorder) -> None:
    batcher = plain_batchers(max_batch_size=8)
    model.hold()
    running = asyncio.ensure_future(batcher.submit(rows(0), soon()))
    await wait_until_running(model)
    landed: list[float] = []

    def broken(result: Outputs | MaasError) -> None:
        raise RuntimeError("a bug in an answer")

    batcher.submit_nowait(rows(1), soon(), broken)
    batcher.submit_nowait(rows(2), soon(), lambda result: landed.append(result["y"][0, 0]))  # type: ignore[index]
    model.release()
    await running
    await eventually(lambda: len(observer.batches) == 2)  # the second batch has been answered
    assert landed == [5.0]
    assert observer.batches == [(1, 1), (2, 2)]


async def test_a_ticket_cancelled_while_its_batch_runs_gets_no_callback(plain_batchers, model: AffineModel) -> None:
    batcher = plain_batchers(max_batch_size=8)
    model.hold()
    landed: list[object] = []
    ticket = batcher.submit_nowait(rows(1), soon(), landed.append)
    await wait_until_running(model)
    ticket.cancel()  # taken into a batch already: it runs, but its answer is not delivered
    ticket.cancel()  # twice is harmless
    model.release()
    assert (await batcher.submit(rows(2), soon()))["y"][0, 0] == 5.0
    assert landed == []
    assert model.batches == [1, 1]


async def test_submit_nowait_refuses_at_once_what_submit_would(plain_batchers, model: AffineModel) -> None:
    batcher = plain_batchers(max_batch_size=1, max_queue=1)
    model.hold()
    landed: list[object] = []
    with pytest.raises(DeadlineExceeded):
        batcher.submit_nowait(rows(3), time.monotonic() - 1, landed.append)
    batcher.submit_nowait(rows(1), soon(), landed.append)
    await wait_until_running(model)
    batcher.submit_nowait(rows(2), soon(), landed.append)
    with pytest.raises(Overloaded):
        batcher.submit_nowait(rows(3), soon(), landed.append)
    model.release()
    await batcher.stop(5)
    with pytest.raises(Unavailable):
        batcher.submit_nowait(rows(4), soon(), landed.append)
    assert [out["y"][0, 0] for out in landed] == [3.0, 5.0]  # type: ignore[index]
