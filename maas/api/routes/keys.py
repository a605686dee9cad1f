from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from maas.api.body import read_model
from maas.api.deps import AdminDep, KeysDep, ManageDep
from maas.api.openapi import answers, errors, json_body
from maas.api.responses import JSONResponse
from maas.api.schemas.answers import AuditLog, KeyCreated, KeyList, KeyOut
from maas.api.schemas.keys import KeyCreate, key_public

router = APIRouter(tags=["keys"])
AuditLimit = Annotated[int, Query(description="The newest entries, 1 to 1000 (clamped).")]


@router.post("/keys", status_code=201, response_model=None,
             responses={**answers(KeyCreated, 201, "Created"), **errors(400, 401, 403, 413, 415, 422)},
             openapi_extra=json_body(KeyCreate))
async def create_key(request: Request, _admin: AdminDep, keys: KeysDep) -> JSONResponse:
    """Create a key; the secret is in this answer only."""
    body = await read_model(request, KeyCreate)
    entity, secret = await run_in_threadpool(keys.create, body.tenant, body.name, body.scopes)
    return JSONResponse({**key_public(entity), "key": secret}, status_code=201)


@router.get("/keys", response_model=None, responses={**answers(KeyList), **errors(401, 403)})
def list_keys(_admin: AdminDep, keys: KeysDep, tenant: str | None = None) -> dict[str, Any]:
    return {"items": [key_public(k) for k in keys.list_keys(tenant)]}


@router.delete("/keys/{key_id}", response_model=None, responses={**answers(KeyOut), **errors(401, 403, 404)})
def revoke_key(key_id: str, _admin: AdminDep, keys: KeysDep) -> dict[str, Any]:
    return key_public(keys.revoke(key_id))


@router.get("/audit", response_model=None, responses={**answers(AuditLog), **errors(401, 403, 422)})
def audit_log(principal: ManageDep, keys: KeysDep, limit: AuditLimit = 100) -> dict[str, Any]:
    return {"items": [{"ts": e.ts.isoformat(), "key_id": e.key_id, "action": e.action, "resource": e.resource,
                       "outcome": e.outcome} for e in keys.audit_log(principal.tenant, limit)]}
