"""The one hierarchy of domain failures.

Every failure a client can cause or observe is a ``MaasError`` subclass with a stable ``code``.
The HTTP status for each code lives in one table, ``maas.api.errors.STATUS_BY_CODE``; nothing
below the API layer knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class MaasError(Exception):
    """Base class: a human sentence plus a stable snake_case code and optional details."""

    code: str = "internal_error"

    def __init__(self, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body


# --- not found (404) -------------------------------------------------------------------------------
class NotFound(MaasError):
    code = "not_found"


class DatasetNotFound(NotFound):
    code = "dataset_not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class AliasNotFound(NotFound):
    code = "alias_not_found"


class ArtifactNotFound(NotFound):
    code = "artifact_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class KeyNotFound(NotFound):
    code = "key_not_found"


# --- conflicts (409) -------------------------------------------------------------------------------
class AlreadyExists(MaasError):
    code = "already_exists"


class Conflict(MaasError):
    code = "conflict"


class VersionInUse(Conflict):
    """A version that an alias points to cannot be deleted."""

    code = "version_in_use"


class DatasetInUse(Conflict):
    code = "dataset_in_use"


class JobNotCancellable(Conflict):
    code = "job_not_cancellable"


# --- bad input (400 / 413 / 415 / 422) --------------------------------------------------------------
class BadRequest(MaasError):
    code = "bad_request"


class MalformedJson(BadRequest):
    code = "malformed_json"


class InvalidInput(MaasError):
    code = "invalid_input"


class InvalidDataset(InvalidInput):
    code = "invalid_dataset"


class InvalidModel(InvalidInput):
    code = "invalid_model"


class InvalidSpec(InvalidInput):
    code = "invalid_spec"


class IdempotencyMismatch(InvalidInput):
    code = "idempotency_key_reused"


class PayloadTooLarge(MaasError):
    code = "payload_too_large"


class UnsupportedMediaType(MaasError):
    code = "unsupported_media_type"


# --- auth (401 / 403) ------------------------------------------------------------------------------
class Unauthenticated(MaasError):
    code = "unauthenticated"


class Forbidden(MaasError):
    code = "forbidden"


# --- server side (500 / 501 / 503 / 504) -------------------------------------------------------------
class Unavailable(MaasError):
    code = "unavailable"


class Overloaded(Unavailable):
    """The bounded queue of a model is full; the client should retry after ``retry_after`` seconds."""

    code = "overloaded"

    def __init__(self, message: str, retry_after: float = 1.0, details: list[Any] | None = None) -> None:
        super().__init__(message, details)
        self.retry_after = retry_after


class DeadlineExceeded(MaasError):
    code = "deadline_exceeded"


class ArtifactCorrupt(MaasError):
    """A stored file no longer matches the sha256 recorded for it."""

    code = "artifact_corrupt"


class InferenceFailed(MaasError):
    code = "inference_failed"


class NotImplementedYet(MaasError):
    code = "not_implemented"


class ConfigError(MaasError):
    """Settings that would be unsafe or cannot work; raised at start-up, never per request."""

    code = "config_error"
