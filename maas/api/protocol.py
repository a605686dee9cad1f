"""maas's HTTP/1.1 protocol: uvicorn's httptools protocol, with the inference hot path served beneath ASGI.

Measured on 2 cores (wrk at 64 connections, one JSON row of 64 floats, a server that parses it with orjson and
answers a constant): through uvicorn's ASGI interface ~25 us a request, of which the interface itself (the
scope dict, the request/response cycle and its Event, and the app's ``receive()`` and two ``send()`` calls with
their header checks) is ~16 us; answered from the protocol's own callbacks, with a task per request, ~9 us. On a
small model that interface cost more than the model's share of its batch, so ``HotPathProtocol`` answers a
``POST`` to a hot route (``HotPath``'s: ``/predict`` and V2 ``infer``) itself. Once the body is in, it calls
``HotPath.start``: the endpoint's steps run at once, the request joins its model's queue, and the batcher's
callback writes the answer to the transport when the batch has run -- no task and no coroutine per request.
Where a step would have to await (a version not yet resolved, a model not yet loaded), a task calls
``HotPath.answer`` (the endpoint's handler) instead and writes its answer the same way. Either way the request
id and metrics are ``HotPath``'s, and the endpoints, their validation, batching and errors are the same.

Every other request takes uvicorn's path unchanged, into the ASGI app: other routes and methods, a body without
a declared length (chunked) or over the limit (``HotPath`` answers its 413), ``Expect: 100-continue``, HTTP/1.0,
a query string or an escaped path, an upgrade, and a request pipelined behind one still being answered. While a
hot request is answered, a stand-in takes uvicorn's per-connection cycle slot, so that uvicorn's pipelining,
keep-alive, graceful shutdown (``server_state.tasks``) and hang-up handling treat it as any request in progress.
A client that hangs up cancels its hot request (its task, or its exchange): it leaves its model's queue, and
counts as a 499.

This leans on uvicorn's protocol internals (the parser callbacks, ``cycle``, ``pipeline``, ``tasks``,
``on_response_complete``), so the uvicorn versions it was tested with are the ones ``pyproject.toml`` admits.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from maas.api.hotpath import Exchange, HotPath, MaasAPI
from maas.api.raw import Answer
from maas.observability.middleware import Scope


class _Unused:
    def set(self) -> None:
        """uvicorn sets its cycle's ``message_event`` when the connection is lost; a hot request has none."""


class _HotCycle:
    """Stands in uvicorn's cycle slot while a hot request is answered (the attributes uvicorn reads and sets)."""

    message_event: ClassVar[_Unused] = _Unused()
    __slots__ = ("disconnected", "keep_alive", "response_complete")

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive  # uvicorn's shutdown() clears it: the answer then closes the connection
        self.disconnected = False
        self.response_complete = False


class HotPathProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that answers hot requests without ASGI; see the module docstring."""

    hot_path: ClassVar[HotPath]
    app_object: ClassVar[MaasAPI]
    _route: Any = None  # the hot route of the request being read, else None
    _hot_task: asyncio.Task[None] | None = None  # the hot request being answered on this connection, in a task
    _hot_exchange: Exchange | None = None  # or without one (HotPath.start)
    # uvicorn's cycles still being answered that a pipelined request displaced from ``self.cycle``: uvicorn marks
    # only ``self.cycle`` disconnected when the connection is lost, so their answer would be written to a closed
    # transport (uvloop raises; a client that half-closes after pipelining got a logged 500 for each).
    _ahead: tuple[Any, ...] = ()

    @classmethod
    def serving(cls, app: MaasAPI) -> type[HotPathProtocol]:
        """This protocol bound to ``app`` (uvicorn's ``http=``), or ValueError when ``app`` has no hot path."""
        hot_path = app.hot_path
        if hot_path is None:
            raise ValueError("the app has no hot path to serve")
        return type("HotPathProtocol", (cls,), {"hot_path": hot_path, "app_object": app})

    def on_message_begin(self) -> None:
        # uvicorn builds the ASGI scope here; a hot request needs none, so on_headers_complete builds it for the rest.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._route = None

    def on_headers_complete(self) -> None:
        if self._take_hot():
            return
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()  # the scope, as uvicorn builds it; then uvicorn's own handling
        self.url, self.expect_100_continue = url, expect_100_continue
        self.headers.extend(headers)
        ahead = self.cycle
        super().on_headers_complete()
        if ahead is not None and ahead is not self.cycle and not ahead.response_complete:
            self._ahead = (*(c for c in self._ahead if not c.response_complete), ahead)

    def _take_hot(self) -> bool:
        """Whether this request is one the hot path answers here (then it is set up to be read)."""
        parser = self.parser
        if (parser.get_method() != b"POST" or parser.get_http_version() != "1.1" or self.expect_100_continue
                or parser.should_upgrade() or (self.cycle is not None and not self.cycle.response_complete)
                or self.limit_concurrency is not None or self.root_path):
            return False
        # str's ``in``, not bytes': ``b"?" in url`` first tries its operand as an integer and raises (and clears)
        # a TypeError inside: 264,782 instructions a /predict against 271,777 (callgrind, bench_instructions.py).
        path = self.url.decode("latin-1")
        if "?" in path or "%" in path:
            return False
        headers = dict(self.headers)
        declared = headers.get(b"content-length")
        if declared is None or not declared.isdigit() or int(declared) > self.hot_path.limit:
            return False
        scope: Scope = {"type": "http", "method": "POST", "path": path, "headers": self.headers, "app": self.app_object,
                        "client": self.client, "state": {}}
        route = self.hot_path.route_for(path, scope)
        if route is None:
            return False
        scope["route"] = route
        self._route, self._scope, self._headers, self._body = route, scope, headers, bytearray()
        self.cycle = _HotCycle(parser.should_keep_alive())  # type: ignore[assignment]
        return True

    def on_body(self, body: bytes) -> None:
        if self._route is None:
            super().on_body(body)
        else:
            self._body += body

    def on_message_complete(self) -> None:
        if self._route is None:
            super().on_message_complete()
            return
        cycle: _HotCycle = self.cycle  # type: ignore[assignment]  # set by _take_hot (cast() is a call)
        route, scope, headers, body = self._route, self._scope, self._headers, bytes(self._body)
        self._route = self._scope = self._headers = self._body = None  # type: ignore[assignment]
        exchange = self.hot_path.start(route, scope, headers, body, functools.partial(self._write, cycle))
        if exchange is not None:
            if not exchange.answered:
                self._hot_exchange = exchange
            return
        task = self._hot_task = self.loop.create_task(self._answer(cycle, route, scope, headers, body))
        self.tasks.add(task)  # a graceful shutdown waits for it
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, cycle: _HotCycle, route: Any, scope: Scope, headers: dict[bytes, bytes],
                      body: bytes) -> None:
        try:
            answer = await self.hot_path.answer(route, scope, headers, body)
        except asyncio.CancelledError:
            return  # the client hung up (connection_lost), or a shutdown ran out of time
        finally:
            self._hot_task = None
        self._write(cycle, answer)

    def _write(self, cycle: _HotCycle, answer: Answer) -> None:
        self._hot_exchange = None
        transport = self.transport
        if transport.is_closing():
            return
        content = [STATUS_LINE[answer.status]]
        for name, value in self.server_state.default_headers:  # the date, as uvicorn sends it
            content += (name, b": ", value, b"\r\n")
        content += (b"content-type: ", answer.content_type, b"\r\ncontent-length: %d\r\n" % len(answer.body))
        for name, value in answer.headers:  # our own names; values never hold CR or LF (llhttp rejects them)
            content += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", answer.body)
        transport.write(b"".join(content))
        cycle.response_complete = True
        if not cycle.keep_alive:
            transport.close()
        self.on_response_complete()  # uvicorn's: the next pipelined request, else the keep-alive timer

    # --- keep-alive -----------------------------------------------------------------------------------
    # uvicorn arms a fresh timer after every answer and cancels it when the next request's bytes arrive: a
    # libuv timer started and stopped, and a handle made, per request. Here a connection's timer is armed once
    # and stays armed across requests; when it fires it closes the connection only if it has been idle for the
    # whole timeout since its last answer, and otherwise re-arms for the rest (or not at all while a request is
    # in progress: that request's answer arms it again). What a client sees is uvicorn's timeout unchanged.
    _idle_since: float | None = None  # loop time of the last answer; None while a request is in progress

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this when bytes arrive and when an answer is complete: the connection is busy.
        self._idle_since = None

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive timer kept armed (see above).
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_due)

    def _keep_alive_due(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None:  # a request is in progress: its answer arms the timer again
            return
        remaining = since + self.timeout_keep_alive - self.loop.time()
        if remaining > 0:
            self.timeout_keep_alive_task = self.loop.call_later(remaining, self._keep_alive_due)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        timer, self.timeout_keep_alive_task = self.timeout_keep_alive_task, None
        if timer is not None:
            timer.cancel()
        task, exchange = self._hot_task, self._hot_exchange
        if task is not None:
            task.cancel()  # the request leaves its model's queue
        if exchange is not None:
            self._hot_exchange = None
            exchange.cancel()  # the same, for a request answered without a task
        for cycle in self._ahead:
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._ahead = ()
        super().connection_lost(exc)
