from __future__ import annotations

from typing import Any

from pydantic import Field

from maas.api.schemas.common import Strict, iso
from maas.registry.entities import ApiKey


class KeyCreate(Strict):
    tenant: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(min_length=1)
    name: str = Field(default="", max_length=128)


def key_public(k: ApiKey) -> dict[str, Any]:
    return {"id": k.id, "tenant": k.tenant, "name": k.name, "prefix": k.prefix, "scopes": list(k.scopes),
            "created_at": iso(k.created_at), "last_used_at": iso(k.last_used_at), "revoked_at": iso(k.revoked_at)}
