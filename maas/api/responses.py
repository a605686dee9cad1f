"""orjson-rendered JSON responses (FastAPI's own JSONResponse is deprecated).

A ``starlette.responses.JSONResponse`` by class, so that FastAPI documents a route's JSON answer from its
return annotation (it documents any other response class as a string).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
