"""Every failure becomes ``{"error": {"message", "code"}}``, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from livebase.api.conditional import etag
from livebase.api.responses import ORJSONResponse, error_response
from livebase.services.errors import PreconditionFailed, ServiceError

_log = logging.getLogger("livebase.api")

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    412: "PRECONDITION_FAILED",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def _validation_message(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    if error.get("type") == "json_invalid":
        return "request body is not valid JSON"
    message = str(error.get("msg", "invalid input"))
    return f"{location}: {message}" if location else message


async def _service_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, PreconditionFailed) and exc.version is not None:
        # The current version, to fetch and merge from (docs/rest.md, "Conditional writes").
        tag = etag(exc.version)
        error = {"message": exc.message, "code": exc.code, "etag": tag}
        return ORJSONResponse({"error": error}, status_code=exc.status, headers={"ETag": tag})
    return error_response(exc.status, exc.message, exc.code)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    message = _validation_message(errors[0]) if errors else "invalid request"
    return error_response(400, message, "BAD_REQUEST")


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "request refused"
    response = error_response(exc.status_code, message, _HTTP_CODES.get(exc.status_code, "ERROR"))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal server error", "INTERNAL_ERROR")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
