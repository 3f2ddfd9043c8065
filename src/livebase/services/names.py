"""Names a collection or field may take: one rule, whichever database is behind.

A name that one database refuses or misreads (``sqlite_*``, ``pg_*``, system
columns, two columns differing only in case) is refused on both, so that a
schema that works on SQLite also works on PostgreSQL and the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from livebase.services.errors import BadRequest

# ASCII only and at most 63 characters: PostgreSQL's identifier limit is 63 bytes.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
# SQLite refuses sqlite_* tables; PostgreSQL looks pg_* names up in pg_catalog
# first, so a table called pg_class would be shadowed by the catalog's;
# livebase* is ours (livebase_meta).
_RESERVED_PREFIXES = ("sqlite_", "pg_", "livebase")
# Columns PostgreSQL adds to every table (a table cannot have its own) and
# SQLite's names for the row id, which a column of that name would hide.
_SYSTEM_COLUMNS = frozenset(
    {"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid", "rowid", "_rowid_"}
)
# What timestamps/accountability add; reserved even while those are off, so
# that turning them on later cannot collide with a field of the same name.
MANAGED_FIELDS = ("createdAt", "updatedAt", "userCreated", "userUpdated")
_MANAGED_LOWER = frozenset(name.lower() for name in MANAGED_FIELDS)


def check_name(name: object, what: str) -> str:
    """The shape every name has: a letter, then letters, digits or ``_`` (max 63)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadRequest(
            f"invalid {what} name {name!r}: use a letter then letters, digits or _ (max 63)",
            "INVALID_NAME",
        )
    return name


def _reserved(name: str, what: str, why: str) -> BadRequest:
    return BadRequest(f"{what} name {name!r} is reserved: {why}", "RESERVED_NAME")


def check_new_collection_name(name: object) -> str:
    """A name for a collection being created (stored ones are not re-judged)."""
    checked = check_name(name, "collection")
    lowered = checked.lower()
    for prefix in _RESERVED_PREFIXES:
        if lowered.startswith(prefix):
            raise _reserved(checked, "collection", f"names starting with {prefix!r} are")
    return checked


def check_new_field_name(name: str) -> None:
    """A name for a field being added (stored ones are not re-judged)."""
    lowered = name.lower()
    if lowered in _SYSTEM_COLUMNS:
        raise _reserved(name, "field", "the database uses it for its own column")
    if lowered in _MANAGED_LOWER:
        raise _reserved(name, "field", "the server adds fields of that name (timestamps)")


def check_distinct_ignoring_case(names: Iterable[str]) -> None:
    """SQLite column names ignore case; PostgreSQL's quoted ones do not. Refuse on both."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise BadRequest(f"fields {other!r} and {name!r} differ only in letter case")
