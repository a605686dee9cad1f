from __future__ import annotations

import pytest

from maas.errors import InvalidInput, KeyNotFound
from maas.registry.keys import KeyService
from maas.security.api_keys import KEY_PREFIX


def test_create_authenticate_revoke(keys: KeyService) -> None:
    assert not keys.has_keys()
    entity, secret = keys.create("acme", "ci", ["read", "predict"])
    assert secret.startswith("maas_") and entity.prefix in secret
    principal = keys.authenticate(secret)
    assert principal is not None and principal.tenant == "acme" and principal.allows("predict")
    assert not principal.allows("train")
    assert keys.has_keys()
    keys.revoke(entity.id)
    assert keys.authenticate(secret) is None
    assert keys.list_keys("acme")[0].revoked_at is not None


def test_the_secret_is_never_stored(keys: KeyService) -> None:
    entity, secret = keys.create("acme", "", ["read"])
    with keys.db.engine.connect() as conn:
        dump = repr(conn.exec_driver_sql("SELECT * FROM api_keys").fetchall())
    # What follows "maas_<prefix>_", whole: URL-safe base64, which may itself hold "_".
    random_part = secret.removeprefix(f"{KEY_PREFIX}{entity.prefix}_")
    assert len(random_part) >= 32 and secret not in dump and random_part not in dump


@pytest.mark.parametrize("key", ["", "maas_", "maas_zzzzzzzz_", "Bearer x", "maas_00000000_nope"])
def test_bad_keys_do_not_authenticate(keys: KeyService, key: str) -> None:
    keys.create("acme", "", ["read"])
    assert keys.authenticate(key) is None


@pytest.mark.parametrize(("tenant", "scopes"), [("", ["read"]), ("Bad Tenant", ["read"]), ("ok", []),
                                                 ("ok", ["root"])])
def test_invalid_key_requests(keys: KeyService, tenant: str, scopes: list[str]) -> None:
    with pytest.raises(InvalidInput):
        keys.create(tenant, "", scopes)


def test_revoke_unknown(keys: KeyService) -> None:
    with pytest.raises(KeyNotFound):
        keys.revoke("nope")


def test_audit_log(keys: KeyService) -> None:
    keys.record("acme", None, "POST /models", "/models", "201")
    entries = keys.audit_log("acme")
    assert [(e.action, e.outcome) for e in entries] == [("POST /models", "201")]
    assert keys.audit_log("other") == []
