"""Reading list-query parameters (filter, fields, sort, limit, page, offset, search)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from livebase.services.errors import BadRequest
from livebase.services.nesting import check_depth

DEFAULT_LIMIT = 100
# Both databases take 64-bit LIMIT/OFFSET values and fail past them; far below
# that, no list is ever this long. (page - 1) * limit is held to MAX_OFFSET too.
MAX_LIMIT = 2**31 - 1
MAX_OFFSET = 2**31 - 1


@dataclass(frozen=True)
class Query:
    filter: Any = None
    fields: list[str] | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    limit: int | None = DEFAULT_LIMIT  # None: no limit
    offset: int = 0
    search: str | None = None


def _json_or_text(raw: str, name: str) -> Any:
    stripped = raw.strip()
    if stripped[:1] in ("[", "{", '"'):
        check_depth(stripped, name)
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            raise BadRequest(f"not valid JSON: {raw[:80]!r}") from None
    return stripped


def field_names(raw: Any, what: str) -> list[str]:
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(n, str) and n for n in raw):
        raise BadRequest(f"{what} must be a list of field names")
    return raw


def sort_order(raw: Any) -> list[tuple[str, bool]]:
    if isinstance(raw, dict):
        result = []
        for name, direction in raw.items():
            if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
                raise BadRequest(f"sort direction of {name!r} must be 'asc' or 'desc'")
            result.append((name, direction.lower() == "desc"))
        return result
    return [(n.removeprefix("-"), n.startswith("-")) for n in field_names(raw, "sort")]


def _integer(raw: str, name: str, minimum: int, maximum: int) -> int:
    out_of_range = BadRequest(f"{name} must be an integer from {minimum} to {maximum}")
    if len(raw) > 20:  # longer than any value allowed: refused before int() reads it
        raise out_of_range
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not minimum <= value <= maximum:
        raise out_of_range
    return value


def _page_offset(raw: str, limit: int | None) -> int:
    page = _integer(raw, "page", 1, MAX_OFFSET)
    offset = (page - 1) * (limit or 0)
    if offset > MAX_OFFSET:
        raise BadRequest(f"page {page} of {limit} items starts past offset {MAX_OFFSET}")
    return offset


def parse_query(params: Mapping[str, str]) -> Query:
    """Build a :class:`Query` from string parameters; anything odd is a 400."""
    raw_filter = params.get("filter")
    query_filter = None
    if raw_filter not in (None, ""):
        check_depth(raw_filter, "filter")
        try:
            query_filter = orjson.loads(raw_filter)
        except orjson.JSONDecodeError:
            raise BadRequest('filter must be JSON, e.g. {"title":{"eq":"x"}}') from None
    fields = None
    if params.get("fields") not in (None, ""):
        fields = field_names(_json_or_text(params["fields"], "fields"), "fields")
    sort = sort_order(_json_or_text(params["sort"], "sort")) if params.get("sort") else []
    limit: int | None = DEFAULT_LIMIT
    if params.get("limit") not in (None, ""):
        limit = _integer(params["limit"], "limit", -1, MAX_LIMIT)
        limit = None if limit == -1 else limit
    offset = _integer(params["offset"], "offset", 0, MAX_OFFSET) if params.get("offset") else 0
    if params.get("page") and not params.get("offset"):
        offset = _page_offset(params["page"], limit)
    search = params.get("search") or None
    if search is not None and len(search) > 200:
        raise BadRequest("search is limited to 200 characters")
    return Query(
        filter=query_filter, fields=fields, sort=sort, limit=limit, offset=offset, search=search
    )
