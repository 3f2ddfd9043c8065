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


class PreconditionFailed(ServiceError):
    """A conditional write whose item is no longer at a version the writer named.

    ``version``: the item's current version, for the writer to fetch and merge
    from; None when the writer may not read the item (it is told no more than
    a refusal would tell it).
    """

    status = 412
    code = "PRECONDITION_FAILED"

    def __init__(self, message: str, version: int | None = None) -> None:
        super().__init__(message)
        self.version = version


class TooLarge(ServiceError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class ValidationFailed(ServiceError):
    status = 422
    code = "VALIDATION_FAILED"


class RateLimited(ServiceError):
    status = 429
    code = "RATE_LIMITED"


def object_with(body: object, allowed: set[str] | frozenset[str], what: str) -> dict[str, object]:
    """``body`` as a JSON object with no keys but ``allowed``; a clear 400 otherwise."""
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        plural = "ies" if len(unknown) > 1 else "y"
        raise BadRequest(f"{what}: unknown propert{plural} {unknown}")
    return body
