"""Conditional requests on items: ``ETag``, ``If-Match`` and ``If-None-Match`` (RFC 9110 §13).

An item's entity tag is its version (``services/versions.py``), quoted:
``"57"``. Tags are compared as RFC 9110 says: ``If-Match`` strongly, so a
weak tag (``W/"57"``) never matches; ``If-None-Match`` weakly. ``*``
matches any existing item. A header that is not ``*`` or a list of quoted
tags, or is longer than :data:`MAX_HEADER` characters in all, is a 400: a
client that sends one meant a condition, and ignoring it would write
unconditionally.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from livebase.services.errors import BadRequest
from livebase.services.versions import Precondition

MAX_HEADER = 1024
# What a read's answer may be cached as: only by the caller's own browser, and
# revalidated each time (If-None-Match); another token must not get it.
CACHING = {"Cache-Control": "private, no-cache", "Vary": "Authorization"}

_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*')
_SEPARATORS = " \t,"
_VERSION = re.compile(r"[0-9]{1,18}")  # ours: a decimal id (below 2**63)
ANY: list[tuple[bool, str]] = [(False, "*")]  # the tags of "*", told apart by identity


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: Request) -> Precondition | None:
    """The precondition ``If-Match`` sets; None without the header."""
    tags = _tags(request, "If-Match")
    if tags is None:
        return None
    if tags is ANY:
        return Precondition(any_version=True)
    strong = (_version(tag) for weak, tag in tags if not weak)
    return Precondition(versions=frozenset(v for v in strong if v is not None))


def not_modified(request: Request, version: int) -> bool:
    """Whether ``If-None-Match`` names ``version`` (or is ``*``): the client has it."""
    tags = _tags(request, "If-None-Match")
    if tags is None:
        return False
    return tags is ANY or any(_version(tag) == version for _, tag in tags)


def refuse_on_writes(request: Request, what: str) -> None:
    """A 400 for a condition this write does not honour, rather than writing anyway."""
    for header in ("If-Match", "If-None-Match"):
        if header in request.headers:
            raise BadRequest(f"{header} is not honoured on {what}")


def not_modified_response(version: int) -> Response:
    return Response(status_code=304, headers={"ETag": etag(version), **CACHING})


def _version(tag: str) -> int | None:
    return int(tag) if _VERSION.fullmatch(tag) else None


def _tags(request: Request, header: str) -> list[tuple[bool, str]] | None:
    """The header's tags as (weak, opaque) pairs, :data:`ANY` for ``*``; None without it."""
    values = request.headers.getlist(header)
    if not values:
        return None
    value = ", ".join(values)
    if len(value) > MAX_HEADER:
        raise BadRequest(f"{header} is longer than {MAX_HEADER} characters")
    if value.strip() == "*":
        return ANY
    tags = []
    position = 0
    while position < len(value):
        if value[position] in _SEPARATORS:
            position += 1
            continue
        match = _TAG.match(value, position)
        if match is None or (match.end() < len(value) and value[match.end()] != ","):
            raise BadRequest(f'{header} must be * or a list of quoted tags, such as "57"')
        tags.append((match[1] is not None, match[2]))
        position = match.end()
    if not tags:
        raise BadRequest(f'{header} must be * or a list of quoted tags, such as "57"')
    return tags
