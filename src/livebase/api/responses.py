"""JSON responses encoded with orjson, in the ``{data}`` / ``{error}`` shapes."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from livebase.encoding import dumps


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(status: int, message: str, code: str) -> ORJSONResponse:
    return ORJSONResponse({"error": {"message": message, "code": code}}, status_code=status)
