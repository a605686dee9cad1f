"""Multipart form reading with clear 4xx errors for missing or oversized parts."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from maas.errors import InvalidInput, PayloadTooLarge

MAX_FIELD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


async def read_form(request: Request) -> FormData:
    limit = request.app.state.services.settings.max_upload_bytes
    try:
        return await request.form(max_files=4, max_fields=32, max_part_size=MAX_FIELD_BYTES)
    except PayloadTooLarge:
        raise
    except Exception as exc:  # python-multipart raises several types for broken bodies
        if "too large" in str(exc).lower() or "exceeded" in str(exc).lower():
            raise PayloadTooLarge(f"A form part is larger than the limit ({limit} bytes for files).") from exc
        raise InvalidInput(f"The multipart body could not be parsed: {exc}.") from exc


async def required_file(form: FormData, field: str) -> Upload:
    part = form.get(field)
    if not isinstance(part, UploadFile):
        raise InvalidInput(f"The form field {field!r} must be a file upload.")
    data = await part.read()
    if not data:
        raise InvalidInput(f"The uploaded {field!r} is empty.")
    return Upload(filename=part.filename or "", data=data)


def text_field(form: FormData, field: str, *, required: bool = False) -> str | None:
    value = form.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"The form field {field!r} is required.")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"The form field {field!r} must be text, not a file.")
    return value.strip()
