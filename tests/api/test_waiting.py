"""``raw._Waiting``: a request is listened for only once it has waited, and a disconnect then cancels it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maas.api.raw import _Waiting

SHORT = _Waiting.LISTEN_AFTER_S
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Client:
    """An ASGI ``receive`` that reports a disconnect once ``hang_up()`` is called; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._gone = asyncio.Event()

    def hang_up(self) -> None:
        self._gone.set()

    async def receive(self) -> dict[str, Any]:
        self.calls += 1
        await self._gone.wait()
        return {"type": "http.disconnect"}


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Poll ``condition()`` (timers fire late on a loaded machine: no test here counts on their precision)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def wait_as_a_request(waiting: _Waiting, client: Client, seconds: float) -> str:
    task = asyncio.current_task()
    waiting.add(task, client.receive)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if not waiting.remove(task):
            raise
        return "gone"
    finally:
        waiting.remove(task)
    return "answered"


async def test_a_quick_request_is_never_listened_for() -> None:
    waiting, client = _Waiting(asyncio.get_running_loop()), Client()
    results = await asyncio.gather(*(wait_as_a_request(waiting, client, SHORT / 10) for _ in range(50)))
    await asyncio.sleep(SHORT * 1.5)  # the timer fires on an empty table
    assert results == ["answered"] * 50
    assert client.calls == 0
    assert not waiting._queued and not waiting._listening


async def test_a_request_whose_client_hangs_up_while_it_waits_is_cancelled() -> None:
    waiting, leaving, staying = _Waiting(asyncio.get_running_loop()), Client(), Client()
    gone = asyncio.ensure_future(wait_as_a_request(waiting, leaving, 10))
    kept = asyncio.ensure_future(wait_as_a_request(waiting, staying, 1.0))
    await until(lambda: leaving.calls == 1 and staying.calls == 1)  # both have waited long enough
    leaving.hang_up()
    assert await asyncio.wait_for(gone, 1) == "gone"
    assert await kept == "answered"  # a neighbour is not disturbed, and its listener goes with it
    assert not waiting._queued and not waiting._listening


async def test_a_cancellation_that_is_not_a_hang_up_propagates() -> None:
    waiting, client = _Waiting(asyncio.get_running_loop()), Client()
    task = asyncio.ensure_future(wait_as_a_request(waiting, client, 10))
    await until(lambda: client.calls == 1)
    task.cancel()  # e.g. the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not waiting._queued and not waiting._listening


async def test_later_arrivals_are_listened_for_in_their_own_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Waiting, "LISTEN_AFTER_S", 0.4)
    waiting = _Waiting(asyncio.get_running_loop())
    first, second = Client(), Client()
    tasks = [asyncio.ensure_future(wait_as_a_request(waiting, first, 1.0))]
    await asyncio.sleep(0.2)
    tasks.append(asyncio.ensure_future(wait_as_a_request(waiting, second, 1.0)))
    await until(lambda: first.calls == 1)
    assert second.calls == 0  # it has waited ~0.2 s of its 0.4
    await until(lambda: second.calls == 1)
    assert [await t for t in tasks] == ["answered", "answered"]
