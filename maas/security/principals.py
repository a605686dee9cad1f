"""Who is calling: a tenant, the key that proved it, and what that key may do."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

SCOPES = ("read", "predict", "train", "manage")
ADMIN = "admin"
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Principal:
    tenant: str
    scopes: frozenset[str]
    key_id: str | None = None

    def allows(self, scope: str) -> bool:
        # admin may do anything; manage implies the lesser scopes of its own tenant.
        if ADMIN in self.scopes or scope in self.scopes:
            return True
        return "manage" in self.scopes and scope in SCOPES

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes


@cache  # a frozen value, asked for on every request of a keyless local server
def anonymous_local() -> Principal:
    """No keys configured and a loopback bind: act as the default tenant with every scope but admin."""
    return Principal(tenant=DEFAULT_TENANT, scopes=frozenset(SCOPES), key_id=None)


@cache
def bootstrap_admin() -> Principal:
    return Principal(tenant=DEFAULT_TENANT, scopes=frozenset({ADMIN, *SCOPES}), key_id="admin")
