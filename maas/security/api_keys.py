"""API key format and hashing.

A key is ``maas_<prefix>_<secret>``: the prefix (8 hex) finds the row, the secret (32 bytes, urlsafe) proves
it. Keys are random with 256 bits of entropy, so one SHA-256 is as safe as a slow password hash and keeps the
lookup cheap on the hot path; only the hash is stored, the key is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "maas_"


def generate_key() -> tuple[str, str]:
    """A fresh (key, prefix)."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(KEY_PREFIX):].partition("_")
    if not sep or len(prefix) != 8 or not secret:
        return None
    return prefix


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
