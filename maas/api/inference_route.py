"""An inference route (``/predict``, V2 ``infer``) as its steps, served awaited or by callback alike.

Each route says how to read its request, decode its inputs against the resolved version, write its answer
and its errors (``InferenceSteps``); ``inference_endpoint`` turns those steps into a ``RawEndpoint`` with both
forms: the handler, which awaits what it must (a version not yet resolved, a model not yet loaded), and its
``start``, which runs the same steps without a task where nothing needs awaiting, and replies from the
batcher's callback once the batch ran. What that saves is the task per request beneath ASGI: its chain of
coroutines suspended on a future in the model's queue and a second turn of the event loop to answer. Over HTTP
the MLP's one-row requests at 64 clients measured 1.13-1.26x as fast (README, Performance). In-process, where
the callers are tasks anyway, the callback form is no faster: its objects cost what the frames did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from maas.api.deps import Services
from maas.api.raw import ANSWERED, Answer, Pending, RawEndpoint, RawRequest, Ref, Reply, Timing, json_answer
from maas.errors import MaasError
from maas.inference.engine import InferenceEngine, Landing, Prediction
from maas.inference.servable import ServableVersion
from maas.observability import context
from maas.observability.middleware import INTERNAL_ERROR

log = logging.getLogger(__name__)
Parsed = TypeVar("Parsed")


class Target(Generic[Parsed]):
    """What ``InferenceSteps.read`` found: whose request, for which model and version, and its parsed body."""

    __slots__ = ("engine", "model", "parsed", "ref", "tenant")

    def __init__(self, engine: InferenceEngine, tenant: str, model: str, ref: Ref, parsed: Parsed) -> None:
        self.engine = engine
        self.tenant = tenant
        self.model = model
        self.ref = ref
        self.parsed = parsed


class InferenceSteps(Protocol[Parsed]):
    def read(self, request: RawRequest) -> Target[Parsed]:
        """Authorize and parse the request (MaasError for a bad one); no await, nothing changed."""
        ...

    def decode(self, parsed: Parsed, servable: ServableVersion) -> tuple[np.ndarray, str | None]:
        """The model's input, decoded against ``servable`` (its shape, names, tokenizer), and the variant asked."""
        ...

    def answer(self, parsed: Parsed, servable: ServableVersion, prediction: Prediction) -> Answer: ...

    def error(self, error: MaasError) -> Answer:
        """``error`` in the route's own error shape and status."""
        ...


def inference_endpoint(steps: InferenceSteps[Any]) -> RawEndpoint:
    """The endpoint of an inference route: its awaited handler, and its ``start`` without a task."""

    async def handle(request: RawRequest) -> Answer:
        timing = Timing(request.services)
        try:
            target = steps.read(request)
            engine = target.engine
            servable = await engine.resolve(target.tenant, target.model, target.ref)  # cached ones at once
            timing.servable = servable
            x, variant = steps.decode(target.parsed, servable)
            prediction = await engine.infer(servable, variant, x)
            answer = steps.answer(target.parsed, servable, prediction)
        except MaasError as exc:
            return timing.finish(steps.error(exc), exc)
        return timing.finish(answer)

    def start(request: RawRequest, reply: Reply) -> Pending | None:
        call = _Call(request.services, steps, reply)
        try:
            target = steps.read(request)
            engine = target.engine
            servable = engine.resolved(target.tenant, target.model, target.ref)
            if servable is None:  # the handler resolves it (a database read, off the loop)
                return None
            call.servable = servable
            call.parsed = parsed = target.parsed
            x, variant = steps.decode(parsed, servable)
            return engine.infer_nowait(servable, variant, x, call.landed)  # None: not loaded, the handler loads it
        except MaasError as exc:
            reply(call.finish(steps.error(exc), exc))
            return ANSWERED

    return RawEndpoint(handle, start)


class _Call(Timing):
    """A request that ``start`` has under way: its timing, and what its answer needs once the batch ran."""

    __slots__ = ("parsed", "reply", "request_id", "steps")

    def __init__(self, services: Services, steps: InferenceSteps[Any], reply: Reply) -> None:
        super().__init__(services)
        self.steps = steps
        self.reply = reply
        self.request_id = context.request_id.get()  # for the log lines of a failure, which come later
        self.parsed: Any = None

    def landed(self, result: Landing) -> None:
        """The answer once the batch ran (or failed, or the deadline passed); on the event loop."""
        steps, servable = self.steps, self.servable
        assert servable is not None  # set before the request was queued
        error = result if isinstance(result, MaasError) else None
        if error is None:
            try:
                answer = steps.answer(self.parsed, servable, result)  # type: ignore[arg-type]  # a Prediction
            except MaasError as exc:
                error = exc
            except Exception:  # a bug: the client still gets its JSON 500
                with self._logging():
                    log.exception("unhandled error answering an inference request")
                answer = json_answer(INTERNAL_ERROR, 500)
        if error is not None:
            with self._logging():  # what the warnings of a failure log with
                answer = steps.error(error)
        self.reply(self.finish(answer, error))

    @contextlib.contextmanager
    def _logging(self) -> Iterator[None]:
        token = context.request_id.set(self.request_id)
        try:
            yield
        finally:
            context.request_id.reset(token)
