"""What the worker and its child process tell each other.

The worker writes a job file (JSON) that names everything the child needs, so the child never touches the
database. The child answers with one JSON event per line on stdout, prefixed so stray prints cannot be
mistaken for events.
"""

from __future__ import annotations

from typing import Any

import orjson

EVENT_PREFIX = b"@@maas "
EXIT_CANCELLED = 75  # the child stopped because it was asked to (SIGTERM); its checkpoint is current


def encode_event(kind: str, **fields: Any) -> bytes:
    return EVENT_PREFIX + orjson.dumps({"event": kind, **fields}, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def decode_event(line: bytes) -> dict[str, Any] | None:
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = orjson.loads(line[len(EVENT_PREFIX):])
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
