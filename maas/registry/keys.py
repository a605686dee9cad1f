"""API keys: create (shown once), list, revoke, and the cached authentication the hot path relies on."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from maas.errors import InvalidInput, KeyNotFound
from maas.registry import repositories as repo
from maas.registry.db import Database
from maas.registry.entities import ApiKey, AuditEntry
from maas.registry.orm import ApiKeyRow, AuditRow, utcnow
from maas.security.api_keys import generate_key, hash_key, matches, prefix_of
from maas.security.principals import SCOPES, Principal

TENANT_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")
AUTH_CACHE_SECONDS = 30.0
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        self._has_keys: bool | None = None

    def create(self, tenant: str, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
        if not tenant or len(tenant) > 64 or set(tenant) - TENANT_CHARS:
            raise InvalidInput("tenant must be 1-64 lower-case letters, digits, '-' or '_'.")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidInput(f"scopes must be a non-empty subset of {list(SCOPES)}.", details=unknown or None)
        key, prefix = generate_key()
        with self.db.session() as s:
            row = ApiKeyRow(tenant=tenant, name=name[:128], prefix=prefix, hash=hash_key(key),
                            scopes=sorted(set(scopes)))
            s.add(row)
            s.flush()
            entity = repo.key_entity(row)
        self._has_keys = True
        return entity, key

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        with self.db.session() as s:
            return repo.list_keys(s, tenant)

    def revoke(self, key_id: str) -> ApiKey:
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                raise KeyNotFound(f"No API key {key_id!r}.")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            entity = repo.key_entity(row)
        with self._lock:
            self._cache.clear()
            self._has_keys = None
        return entity

    def has_keys(self) -> bool:
        if self._has_keys is None:
            with self.db.session() as s:
                self._has_keys = repo.count_active_keys(s) > 0
        return self._has_keys

    def authenticate(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None; cached so most requests skip the database."""
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        principal = self._lookup(key)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + AUTH_CACHE_SECONDS, principal)
        return principal

    def _lookup(self, key: str) -> Principal | None:
        prefix = prefix_of(key)
        if prefix is None:
            return None
        with self.db.session() as s:
            row = repo.find_key_by_prefix(s, prefix)
            if row is None or row.revoked_at is not None or not matches(key, row.hash):
                return None
            now = utcnow()
            last = repo.aware(row.last_used_at)
            if last is None or now - last > LAST_USED_RESOLUTION:
                row.last_used_at = now
            return Principal(tenant=row.tenant, scopes=frozenset(row.scopes), key_id=row.id)

    # --- audit log -----------------------------------------------------------------------------------
    def record(self, tenant: str, key_id: str | None, action: str, resource: str, outcome: str) -> None:
        with self.db.session() as s:
            s.add(AuditRow(tenant=tenant, key_id=key_id, action=action[:64], resource=resource[:256],
                           outcome=outcome[:32]))

    def audit_log(self, tenant: str, limit: int = 100) -> list[AuditEntry]:
        with self.db.session() as s:
            return repo.list_audit(s, tenant, min(max(limit, 1), 1000))
