from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from maas.api.body import media_type, read_model
from maas.api.deps import ManageDep, ReadDep, RegistryDep, TrainDep
from maas.api.forms import read_form, required_file, text_field
from maas.api.openapi import answers, errors, upload_body
from maas.api.responses import JSONResponse
from maas.api.schemas.answers import DatasetList, DatasetOut
from maas.api.schemas.common import Limit, Offset
from maas.api.schemas.datasets import DatasetCreate, dataset_list, dataset_public
from maas.errors import UnsupportedMediaType

router = APIRouter(tags=["datasets"])
UPLOAD_FIELDS = {"file": "The dataset file.", "name": "The dataset's name.",
                 "target": "The target column (default: target, label, y or class).",
                 "task": "classification or regression (default: inferred)."}


@router.post("/datasets", status_code=201, response_model=None,
             responses={**answers(DatasetOut, 201, "Created"), **errors(400, 401, 403, 409, 413, 415, 422)},
             openapi_extra=upload_body(UPLOAD_FIELDS, required=("file", "name"), json=DatasetCreate,
                                       description="A file (CSV, Parquet, JSONL or NPZ) or a built-in by name."))
async def create_dataset(request: Request, principal: TrainDep, registry: RegistryDep) -> JSONResponse:
    """Upload a file (multipart: ``file``, ``name``, ``target``, ``task``) or register a built-in (JSON)."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        form = await read_form(request)
        upload = await required_file(form, "file")
        name = text_field(form, "name", required=True) or ""
        target, task = text_field(form, "target"), text_field(form, "task")
        dataset = await run_in_threadpool(registry.upload_dataset, principal.tenant, name, upload.filename,
                                          upload.data, target, task)
    elif kind in ("application/json", "application/x-www-form-urlencoded", ""):
        body = await read_model(request, DatasetCreate)
        dataset = await run_in_threadpool(registry.register_builtin, principal.tenant, body.name, body.builtin)
    else:
        raise UnsupportedMediaType("Send multipart/form-data (a file) or JSON (a built-in dataset).")
    return JSONResponse(dataset_public(dataset), status_code=201)


@router.get("/datasets", response_model=None, responses={**answers(DatasetList), **errors(401, 403, 422)})
def list_datasets(principal: ReadDep, registry: RegistryDep, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    return dataset_list(registry.list_datasets(principal.tenant, offset, limit))


@router.get("/datasets/{ref}", response_model=None, responses={**answers(DatasetOut), **errors(401, 403, 404)})
def get_dataset(ref: str, principal: ReadDep, registry: RegistryDep) -> dict[str, Any]:
    return dataset_public(registry.get_dataset(principal.tenant, ref))


@router.delete("/datasets/{ref}", status_code=204, responses=errors(401, 403, 404, 409))
def delete_dataset(ref: str, principal: ManageDep, registry: RegistryDep) -> None:
    registry.delete_dataset(principal.tenant, ref)
