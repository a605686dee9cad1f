"""The raw ASGI endpoints of inference (``/predict``, V2): requests and answers without Starlette objects.

FastAPI's dependency injection and body validation, and even Starlette's ``Request``/``Response`` objects,
cost more per request than a small model's share of its batch (measured: ~40 us of a ~120 us request), so
these endpoints read the body and the two headers they need straight from the ASGI messages, authenticate
with ``deps.authenticate`` and send prebuilt header lists. A handler is ``async (RawRequest) -> Answer``;
``RawEndpoint`` makes it an ASGI app that both the router and ``hotpath.HotPath`` can call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson

from maas.api.body import JSON_TYPES
from maas.api.deps import Services, authenticate
from maas.errors import (
    Forbidden,
    InvalidInput,
    MaasError,
    MalformedJson,
    Overloaded,
    Unavailable,
    UnsupportedMediaType,
)
from maas.inference.engine import InferenceEngine
from maas.inference.servable import ServableVersion
from maas.observability.middleware import (
    CLIENT_GONE,
    STATUS_CLIENT_GONE,
    BodyTooLarge,
    Message,
    Receive,
    Scope,
    Send,
    too_large_body,
)
from maas.security.principals import Principal

log = logging.getLogger(__name__)

JSON = b"application/json"
_PLAIN_JSON_TYPES = frozenset(t.encode() for t in JSON_TYPES)
Ref = int | str | None
_EMPTY: dict[str, str] = {}


@dataclass(slots=True)
class Answer:
    body: bytes
    status: int = 200
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def send(self, send: Send) -> None:
        headers = [(b"content-type", self.content_type), (b"content-length", b"%d" % len(self.body)), *self.headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


class RawRequest:
    """The scope, its headers as a dict (ASGI header names are lower case) and the whole body."""

    __slots__ = ("body", "headers", "scope", "services")

    def __init__(self, scope: Scope, body: bytes, headers: dict[bytes, bytes]) -> None:
        self.scope = scope
        self.headers = headers
        self.body = body
        self.services: Services = scope["app"].services  # see hotpath.MaasAPI

    @property
    def path_params(self) -> dict[str, Any]:
        return self.scope.get("path_params") or _EMPTY

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")


Handler = Callable[[RawRequest], Awaitable[Answer]]
Reply = Callable[[Answer], None]
Task = asyncio.Task[Any]


class Pending(Protocol):
    """A request a ``Starter`` has under way: ``cancel`` drops it (its client hung up) and no reply comes."""

    def cancel(self) -> None: ...


Starter = Callable[[RawRequest, Reply], Pending | None]
"""A handler's form without a task (see ``RawEndpoint``): answers by ``reply``, now or later, exactly once, and
returns what is under way; or returns None, having started nothing and replied nothing, where it would have to
await (then the handler answers the request)."""


class _Answered:
    def cancel(self) -> None:
        """Replied already: nothing to cancel."""


ANSWERED: Pending = _Answered()  # what a starter returns when it has replied already


class RawEndpoint:
    """An ASGI app around ``handler``: read the whole body, run it, send its answer.

    Reached two ways: through FastAPI's router, inside ``RequestMiddleware`` (the V2 metadata and repository
    routes), and straight from ``hotpath.HotPath`` (``/predict``, V2 ``infer``), which calls ``respond`` with
    the body limit and request id that the middleware would otherwise have handled.

    A client that hangs up while its request still waits (in its model's queue, mostly) cancels the handler, so
    the request leaves the queue instead of holding its place until the deadline. Nothing is sent then;
    ``CLIENT_GONE`` in the scope tells the request metrics to count a 499, as nginx names it.

    ``start``, where an endpoint has one, is the same handler without a task or an await, for the common case
    (here: a cached version of a loaded model): ``protocol.HotPathProtocol`` tries it first, and runs ``handler``
    in a task only where it returns None (see ``inference_route``). Through ASGI the endpoint tries it first too,
    and awaits its reply, so that both ways in answer alike.
    """

    def __init__(self, handler: Handler, start: Starter | None = None) -> None:
        self.handler = handler
        self.start = start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.respond(scope, receive, send)

    async def respond(self, scope: Scope, receive: Receive, send: Send, *, limit: int | None = None,
                      request_id: bytes | None = None, headers: dict[bytes, bytes] | None = None) -> int:
        """Answer the request; returns the status sent (``STATUS_CLIENT_GONE`` when the client hung up).

        With ``limit``, a body that declares or turns out to be larger gets a 413 unread (or unfinished).
        With ``request_id``, the answer carries it as ``X-Request-ID``. ``headers`` is the scope's headers
        as a dict, when the caller has built it already.
        """
        if headers is None:
            headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if limit is not None and declared is not None and declared.isdigit() and int(declared) > limit:
            answer = json_answer(too_large_body(limit), 413)
        else:
            try:
                body = await _read_body(receive, limit)
            except BodyTooLarge:
                answer = json_answer(too_large_body(limit or 0), 413)
            else:
                request = RawRequest(scope, body, headers)
                waiting = _Waiting.of(asyncio.get_running_loop())
                task = asyncio.current_task()
                waiting.add(task, receive)
                try:
                    answer = await self._answer(request)
                except asyncio.CancelledError:
                    if not waiting.remove(task):
                        raise
                    scope[CLIENT_GONE] = True
                    return STATUS_CLIENT_GONE
                finally:
                    waiting.remove(task)  # a no-op after the line above
        if request_id is not None:
            answer.headers.append((b"x-request-id", request_id))
        await answer.send(send)
        return answer.status

    async def _answer(self, request: RawRequest) -> Answer:
        """The handler's answer: through ``start`` where it can, so both ways in share it; else awaited."""
        if self.start is not None:
            replied: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            pending = self.start(request, functools.partial(_settle, replied))
            if pending is not None:
                try:
                    return await replied
                except asyncio.CancelledError:  # the client hung up: the request leaves its model's queue
                    pending.cancel()
                    raise
        return await self.handler(request)


def _settle(future: asyncio.Future[Answer], answer: Answer) -> None:
    if not future.done():
        future.set_result(answer)


class _Waiting:
    """One event loop's requests that wait for their answer; cancels one whose client disconnects meanwhile.

    Listening for the disconnect costs a ``receive()`` task per request, which measured as more than the rest
    of a small model's request; so a request is only listened for once it has waited ``LISTEN_AFTER_S``, and
    most are answered long before. Until then it is one entry in a dict by task (added and removed: ~0.3 us).
    One timer per loop, armed for the oldest entry, starts the listening of every request that has waited long
    enough. The design before, an object per request queued until a sweep up to 50 ms after its answer (holding
    ``receive``, and with it the server's whole request cycle), measured ~4 us of a ~30 us request at 64 clients.
    """

    LISTEN_AFTER_S = 0.05
    _by_loop: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waiting]] = weakref.WeakKeyDictionary()
    _last: ClassVar[_Waiting | None] = None  # the server's one loop, found without a weak-key lookup per request
    __slots__ = ("__weakref__", "_listening", "_loop", "_queued", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queued: dict[Task, tuple[Receive, float]] = {}  # not yet listened for, oldest first
        self._listening: dict[Task, asyncio.Future[Message]] = {}  # a disconnect is this future's result
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Waiting:
        last = cls._last
        if last is not None and last._loop is loop:
            return last
        waiting = cls._by_loop.get(loop)
        if waiting is None:
            waiting = cls._by_loop[loop] = cls(loop)
        cls._last = waiting
        return waiting

    def add(self, task: Task | None, receive: Receive) -> None:
        """``task`` waits for its answer; ``receive`` tells when its client disconnects."""
        if task is None:  # not run in a task (never so under an ASGI server): nothing to cancel
            return
        now = self._loop.time()
        self._queued[task] = (receive, now)
        if self._timer is None:
            self._timer = self._loop.call_at(now + self.LISTEN_AFTER_S, self._sweep)

    def remove(self, task: Task | None) -> bool:
        """``task`` is done waiting (any number of calls); whether it was cancelled for a disconnect."""
        if task is None or self._queued.pop(task, None) is not None or not self._listening:
            return False
        listening = self._listening.pop(task, None)
        if listening is None:
            return False
        if not listening.done():
            listening.cancel()
            return False
        return _disconnected(listening)

    def _sweep(self) -> None:
        self._timer = None
        due = self._loop.time() - self.LISTEN_AFTER_S
        while self._queued:
            task, (receive, since) = next(iter(self._queued.items()))  # the oldest: dicts keep arrival order
            if since > due:
                self._timer = self._loop.call_at(since + self.LISTEN_AFTER_S, self._sweep)
                return
            del self._queued[task]
            listening = self._listening[task] = asyncio.ensure_future(receive())
            listening.add_done_callback(functools.partial(self._on_message, task))

    def _on_message(self, task: Task, listening: asyncio.Future[Message]) -> None:
        if self._listening.get(task) is listening and _disconnected(listening):
            task.cancel()  # remove() then reads the disconnect from the same future


def _disconnected(listening: asyncio.Future[Message]) -> bool:
    if listening.cancelled() or listening.exception() is not None:
        return False
    return listening.result().get("type") == "http.disconnect"


async def _read_body(receive: Receive, limit: int | None = None) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if limit is not None and len(body) > limit:
            raise BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):  # a disconnect ends the loop; the parse then fails cleanly
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


# --- the steps every handler takes ---------------------------------------------------------------------
def engine_of(services: Services) -> InferenceEngine:
    if services.engine is None:
        raise Unavailable("This server runs without an inference engine.")
    return services.engine


def authorize(request: RawRequest, *scopes: str) -> Principal:
    """The caller, who must hold one of ``scopes``; kept in the scope state like ``deps.get_principal`` does."""
    authorization = request.header(b"authorization")
    principal = authenticate(request.services, {"authorization": authorization} if authorization else _EMPTY)
    for scope in scopes:
        if principal.allows(scope):
            break
    else:
        raise Forbidden(f"This API key lacks the {scopes[0]!r} scope.")
    request.scope.setdefault("state", {})["principal"] = principal
    return principal


def json_object(request: RawRequest) -> dict[str, Any]:
    """The body as a JSON object: 415 for a non-JSON type, 400 when it does not parse, 422 if not an object.

    Like ``body.read_json``, a missing type or curl's default form type is accepted as JSON.
    """
    declared = request.headers.get(b"content-type", b"")
    if declared not in _PLAIN_JSON_TYPES:  # the common spellings skip the parsing below
        kind = declared.decode("latin-1").split(";")[0].strip().lower()
        if kind not in JSON_TYPES and not kind.endswith("+json"):
            raise UnsupportedMediaType(f"Send JSON (application/json), not {kind!r}.")
    try:
        document = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        if not request.body.strip():
            raise MalformedJson("The request body is empty; send a JSON object.") from None
        raise MalformedJson(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(document, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return document


def version_ref(value: Any, field: str = "version") -> Ref:
    """A version number, an alias, or None (the ``production`` alias, else the latest version)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and value:
        return int(value) if value.isascii() and value.isdigit() else value  # "¹".isdigit(), int("¹") fails
    raise InvalidInput(f'"{field}" must be a version number or an alias name.')


def json_answer(content: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> Answer:
    """``content`` as JSON; numpy arrays as orjson writes them (see ``postprocess.postprocess``)."""
    return Answer(orjson.dumps(content, default=_as_list, option=orjson.OPT_SERIALIZE_NUMPY), status, JSON,
                  headers or [])


def _as_list(value: Any) -> Any:
    """What orjson's numpy support refuses (arrays of objects, or not C-contiguous), written as lists."""
    tolist = getattr(value, "tolist", None)
    if tolist is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return tolist()


def error_answer(error: MaasError, body: dict[str, Any], status: int) -> Answer:
    """``body`` in the protocol's error shape; an overloaded model's 503 tells when to retry (whole seconds)."""
    if status >= 500:
        log.warning("%s: %s", error.code, error.message)
    headers = [(b"retry-after", b"%d" % max(1, round(error.retry_after)))] if isinstance(error, Overloaded) else []
    return json_answer(body, status, headers)


class Timing:
    """One inference request's outcome for the metrics: its model once resolved, its status, its duration."""

    __slots__ = ("servable", "services", "started")

    def __init__(self, services: Services) -> None:
        self.services = services
        self.servable: ServableVersion | None = None
        self.started = time.perf_counter()

    def finish(self, answer: Answer, error: MaasError | None = None) -> Answer:
        observer = self.services.inference_metrics
        if observer is None:
            return answer
        if error is not None:
            observer.observe_error(self.servable.model if self.servable else None, error.code)
        if self.servable is not None:
            seconds = time.perf_counter() - self.started
            observer.observe_request(self.servable.model, self.servable.version, answer.status, seconds)
        return answer
