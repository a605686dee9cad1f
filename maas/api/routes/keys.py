from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from maas.api.body import read_model
from maas.api.deps import AdminDep, KeysDep, ManageDep
from maas.api.responses import JSONResponse
from maas.api.schemas.keys import KeyCreate, key_public

router = APIRouter(tags=["keys"])


@router.post("/keys", status_code=201)
async def create_key(request: Request, _admin: AdminDep, keys: KeysDep) -> JSONResponse:
    """Create a key; the secret is in this answer only."""
    body = await read_model(request, KeyCreate)
    entity, secret = await run_in_threadpool(keys.create, body.tenant, body.name, body.scopes)
    return JSONResponse({**key_public(entity), "key": secret}, status_code=201)


@router.get("/keys")
def list_keys(_admin: AdminDep, keys: KeysDep, tenant: str | None = None) -> dict[str, Any]:
    return {"items": [key_public(k) for k in keys.list_keys(tenant)]}


@router.delete("/keys/{key_id}")
def revoke_key(key_id: str, _admin: AdminDep, keys: KeysDep) -> dict[str, Any]:
    return key_public(keys.revoke(key_id))


@router.get("/audit")
def audit_log(principal: ManageDep, keys: KeysDep, limit: int = 100) -> dict[str, Any]:
    return {"items": [{"ts": e.ts.isoformat(), "key_id": e.key_id, "action": e.action, "resource": e.resource,
                       "outcome": e.outcome} for e in keys.audit_log(principal.tenant, limit)]}
