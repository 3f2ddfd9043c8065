"""Errors raised by services; the transports turn them into responses.

Each carries the HTTP-like status it maps to, so that REST and Socket.IO
refuse the same thing the same way.
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(ServiceError):
    status = 400
    code = "BAD_REQUEST"


class Unauthorized(ServiceError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(ServiceError):
    status = 403
    code = "FORBIDDEN"


class NotFound(ServiceError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ServiceError):
    status = 409
    code = "CONFLICT"


class TooLarge(ServiceError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class ValidationFailed(ServiceError):
    status = 422
    code = "VALIDATION_FAILED"


class RateLimited(ServiceError):
    status = 429
    code = "RATE_LIMITED"
