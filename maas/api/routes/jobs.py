from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from maas.api.body import read_json, validate
from maas.api.deps import JobsDep, ReadDep, RegistryDep, ServicesDep, TrainDep
from maas.api.openapi import answers, errors, json_body
from maas.api.responses import JSONResponse
from maas.api.schemas.answers import JobList, JobOut, JobQueued
from maas.api.schemas.common import Limit, Offset
from maas.api.schemas.jobs import JobSubmit, job_list, job_public
from maas.datasets.schema import DatasetSchema
from maas.errors import InvalidInput
from maas.registry.jobs import JOB_KINDS, STATUSES
from maas.registry.service import check_name
from maas.training.spec import TrainSpec, resolve_spec

router = APIRouter(tags=["jobs"])
# Documented with their values; the job queue checks them with its own message.
JobStatus = Annotated[str | None, Query(json_schema_extra={"enum": list(STATUSES)})]
JobKind = Annotated[str | None, Query(json_schema_extra={"enum": list(JOB_KINDS)})]
# One event of /jobs/{id}/events, as OpenAPI 3.2's itemSchema (FastAPI's own SSE routes document theirs so).
SSE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "enum": ["progress", "end"]},
    "data": {"type": "string", "contentMediaType": "application/json",
             "description": "progress: the job (as GET /jobs/{id}); end: {status}."}}}
EVENT_POLL_SECONDS = 0.5


@router.post("/train", status_code=202, response_model=None,
             responses={**answers(JobQueued, 202, "Queued"), **errors(400, 401, 403, 404, 413, 415, 422)},
             openapi_extra=json_body(TrainSpec))
async def train(request: Request, principal: TrainDep, services: ServicesDep,
                idempotency_key: str | None = Header(default=None, max_length=128)) -> JSONResponse:
    """Queue a training job; answers at once with its id."""
    spec = validate(TrainSpec, await read_json(request))
    job = await run_in_threadpool(_submit_train, services, principal.tenant, spec, idempotency_key)
    return JSONResponse({"job_id": job.id, "status": job.status, "job": job_public(job)}, status_code=202,
                          headers={"Location": f"/jobs/{job.id}"})


@router.post("/jobs", status_code=202, response_model=None,
             responses={**answers(JobQueued, 202, "Queued"), **errors(400, 401, 403, 404, 413, 415, 422)},
             openapi_extra=json_body(JobSubmit))
async def submit_job(request: Request, principal: TrainDep, services: ServicesDep,
                     idempotency_key: str | None = Header(default=None, max_length=128)) -> JSONResponse:
    """Generic job submission: ``{"kind": "train", ...train spec}`` (other kinds come with their issues)."""
    body = await read_json(request)
    if not isinstance(body, dict) or body.get("kind", "train") != "train":
        raise InvalidInput("Only jobs of kind 'train' can be submitted here so far.")
    spec = validate(TrainSpec, {k: v for k, v in body.items() if k != "kind"})
    job = await run_in_threadpool(_submit_train, services, principal.tenant, spec, idempotency_key)
    return JSONResponse({"job_id": job.id, "status": job.status, "job": job_public(job)}, status_code=202)


def _submit_train(services: Any, tenant: str, spec: TrainSpec, idempotency_key: str | None) -> Any:
    # Resolve the dataset now so a typo is a 404 at submit time, not a failed job a minute later.
    dataset = services.registry.ensure_dataset(tenant, spec.dataset)
    # A CNN on a tabular dataset, an oversized network or a model name the registry would refuse at the end
    # is the client's 422 now, not a failed job later.
    resolve_spec(spec, DatasetSchema.from_dict(dataset.schema))
    if spec.model is not None:
        check_name("model", spec.model)
    body = spec.model_dump(mode="json", exclude_unset=True)  # what the user asked; defaults resolve in the runner
    body["model"] = spec.model or dataset.name
    return services.jobs.submit(tenant, "train", body, idempotency_key=idempotency_key)


@router.get("/jobs", response_model=None, responses={**answers(JobList), **errors(401, 403, 422)})
def list_jobs(principal: ReadDep, jobs: JobsDep, status: JobStatus = None, kind: JobKind = None,
              offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    return job_list(jobs.list_jobs(principal.tenant, status=status, kind=kind, offset=offset, limit=limit))


@router.get("/jobs/{job_id}", response_model=None, responses={**answers(JobOut), **errors(401, 403, 404)})
def get_job(job_id: str, principal: ReadDep, jobs: JobsDep) -> dict[str, Any]:
    return job_public(jobs.get(principal.tenant, job_id))


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=None,
             responses={**answers(JobOut, 202, "Cancelled, or flagged for its worker"), **errors(401, 403, 404, 409)})
def cancel_job(job_id: str, principal: TrainDep, jobs: JobsDep) -> dict[str, Any]:
    return job_public(jobs.cancel(principal.tenant, job_id))


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse, responses={
    200: {"description": "`progress` events with the job, then `end` with its status.",
          "content": {"text/event-stream": {"itemSchema": SSE_EVENT}}}, **errors(401, 403, 404)})
async def job_events(job_id: str, request: Request, principal: ReadDep, jobs: JobsDep) -> StreamingResponse:
    """Server-Sent Events: one ``progress`` event per change, then ``end`` when the job finishes."""
    first = await run_in_threadpool(jobs.get, principal.tenant, job_id)
    return StreamingResponse(_events(request, jobs, principal.tenant, first), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(request: Request, jobs: Any, tenant: str, job: Any) -> AsyncIterator[bytes]:
    last: bytes | None = None
    while True:
        payload = orjson.dumps(job_public(job))
        if payload != last:
            yield b"event: progress\ndata: " + payload + b"\n\n"
            last = payload
        if job.finished:
            yield b"event: end\ndata: " + orjson.dumps({"status": job.status}) + b"\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENT_POLL_SECONDS)
        job = await run_in_threadpool(jobs.get, tenant, job.id)


@router.get("/jobs/{job_id}/curves.png", response_class=Response, responses={
    200: {"description": "Loss and metric curves by epoch.", "content": {"image/png": {"schema": {
        "type": "string", "format": "binary"}}}}, **errors(401, 403, 404)})
async def job_curves(job_id: str, principal: ReadDep, jobs: JobsDep) -> Response:
    from maas.training.curves import plot_curves

    job = await run_in_threadpool(jobs.get, principal.tenant, job_id)
    png = await run_in_threadpool(plot_curves, job.history)
    return Response(png, media_type="image/png")


__all__ = ["RegistryDep", "router"]
