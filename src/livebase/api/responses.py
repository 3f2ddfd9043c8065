"""JSON responses encoded with orjson, in the ``{data}`` / ``{error}`` shapes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # Decimals travel as strings, as Sequelize/BAASIX and Directus send them,
    # so that no precision is lost on the way to JavaScript.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(status: int, message: str, code: str) -> ORJSONResponse:
    return ORJSONResponse({"error": {"message": message, "code": code}}, status_code=status)
