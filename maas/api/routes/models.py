from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from maas.api.body import media_type, read_model, validate
from maas.api.deps import ManageDep, ReadDep, RegistryDep, ServicesDep
from maas.api.forms import read_form, required_file, text_field
from maas.api.openapi import answers, errors, json_body, upload_body
from maas.api.responses import JSONResponse
from maas.api.schemas.answers import ModelList, ModelOut, VersionList, VersionOut
from maas.api.schemas.common import Limit, Offset
from maas.api.schemas.models import (
    AliasUpdate,
    ImportMetadata,
    ServingUpdate,
    model_list,
    model_public,
    version_list,
    version_public,
)
from maas.errors import InvalidInput, MalformedJson, UnsupportedMediaType

router = APIRouter(tags=["models"])
IMPORT_FIELDS = {"file": "The ONNX model.", "name": "The model's name (a new version if it exists).",
                 "metadata": "JSON: task, classes, feature_names, description, tags, metrics (all optional)."}

ARTIFACT_FILENAMES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "onnx-int8-static": "model.int8s.onnx",
                      "onnx-fp16": "model.fp16.onnx", "torch": "model.safetensors", "pruned": "model.pruned.onnx",
                      "tokenizer": "tokenizer.json"}


@router.post("/models", status_code=201, response_model=None,
             responses={**answers(VersionOut, 201, "Created"), **errors(400, 401, 403, 413, 415, 422)},
             openapi_extra=upload_body(IMPORT_FIELDS, required=("file", "name")))
async def import_model(request: Request, principal: ManageDep, registry: RegistryDep) -> JSONResponse:
    """Import an ONNX model trained elsewhere as the next version of ``name`` (multipart: file, name, metadata)."""
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType("Import a model with multipart/form-data: fields 'file', 'name', 'metadata'.")
    form = await read_form(request)
    upload = await required_file(form, "file")
    name = text_field(form, "name", required=True) or ""
    metadata = _metadata(text_field(form, "metadata"))
    version = await run_in_threadpool(registry.import_onnx, principal.tenant, name, upload.data,
                                      metadata.model_dump(exclude_none=True))
    return JSONResponse(version_public(version), status_code=201)


def _metadata(raw: str | None) -> ImportMetadata:
    if raw is None:
        return ImportMetadata()
    try:
        return validate(ImportMetadata, orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise MalformedJson("The 'metadata' field must be a JSON object.") from exc


@router.get("/models", response_model=None, responses={**answers(ModelList), **errors(401, 403, 422)})
def list_models(principal: ReadDep, registry: RegistryDep, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    return model_list(registry.list_models(principal.tenant, offset, limit))


@router.get("/models/{name}", response_model=None, responses={**answers(ModelOut), **errors(401, 403, 404)})
def get_model(name: str, principal: ReadDep, registry: RegistryDep) -> dict[str, Any]:
    return model_public(registry.get_model(principal.tenant, name))


@router.put("/models/{name}/serving", response_model=None,
            responses={**answers(ModelOut), **errors(400, 401, 403, 404, 413, 415, 422)},
            openapi_extra=json_body(ServingUpdate))
async def put_serving(name: str, request: Request, principal: ManageDep, registry: RegistryDep) -> dict[str, Any]:
    """The model's own dynamic-batching settings (e.g. a larger ``max_batch_size`` for a GPU model)."""
    body = await read_model(request, ServingUpdate)
    model = await run_in_threadpool(registry.configure_serving, principal.tenant, name, body.model_dump())
    return model_public(model)


@router.get("/models/{name}/versions", response_model=None,
            responses={**answers(VersionList), **errors(401, 403, 404, 422)})
def list_versions(name: str, principal: ReadDep, registry: RegistryDep, offset: Offset = 0, limit: Limit = 50
                  ) -> dict[str, Any]:
    return version_list(registry.list_versions(principal.tenant, name, offset, limit))


@router.get("/models/{name}/versions/{version}", response_model=None,
            responses={**answers(VersionOut), **errors(401, 403, 404, 422)})
def get_version(name: str, version: int, principal: ReadDep, registry: RegistryDep) -> dict[str, Any]:
    return version_public(registry.get_version(principal.tenant, name, version))


@router.delete("/models/{name}/versions/{version}", status_code=204, responses=errors(401, 403, 404, 409, 422))
def delete_version(name: str, version: int, principal: ManageDep, registry: RegistryDep) -> None:
    registry.delete_version(principal.tenant, name, version)


@router.get("/models/{name}/versions/{version}/artifacts/{kind}", responses=errors(401, 403, 404, 422),
            response_class=FileResponse)
def download_artifact(name: str, version: int, kind: str, principal: ReadDep, registry: RegistryDep) -> FileResponse:
    path, sha, _size = registry.artifact_path(principal.tenant, name, version, kind)
    filename = f"{name}-v{version}-{ARTIFACT_FILENAMES.get(kind, kind)}"
    return FileResponse(path, media_type="application/octet-stream", filename=filename,
                        headers={"X-Content-SHA256": sha})


@router.put("/models/{name}/aliases/{alias}", response_model=None,
            responses={**answers(VersionOut), **errors(400, 401, 403, 404, 413, 415, 422, 503)},
            openapi_extra=json_body(AliasUpdate))
async def put_alias(name: str, alias: str, request: Request, principal: ManageDep, services: ServicesDep
                    ) -> dict[str, Any]:
    """Promote (or roll back): point ``alias`` at a version. The version is loaded and warmed first."""
    body = await read_model(request, AliasUpdate)
    if services.engine is not None:
        await services.engine.warm(principal.tenant, name, body.version)
    version = await run_in_threadpool(services.registry.set_alias, principal.tenant, name, alias, body.version)
    return version_public(version)


@router.delete("/models/{name}/aliases/{alias}", status_code=204, responses=errors(401, 403, 404, 422))
def delete_alias(name: str, alias: str, principal: ManageDep, registry: RegistryDep) -> None:
    if alias.isdigit():
        raise InvalidInput("Aliases are names, not version numbers.")
    registry.delete_alias(principal.tenant, name, alias)
