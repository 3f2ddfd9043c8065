"""What a collection is, as storage sees it: fields with kinds, a primary key, a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from livebase.storage.kinds import DECIMAL_PRECISION, DECIMAL_SCALE, FieldKind

# FieldKind and the Decimal defaults live with the rest of each kind's meaning.
__all__ = ["DECIMAL_PRECISION", "DECIMAL_SCALE", "Collection", "FieldKind", "FieldSpec"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: FieldKind
    allow_null: bool = True
    unique: bool = False
    default: Any = None  # a literal, "UUIDV4", "NOW" or "AUTOINCREMENT"
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    validate: dict[str, Any] = field(default_factory=dict)
    primary_key: bool = False
    managed: bool = False  # written by the server only (timestamps, accountability)
    hidden: bool = False  # never leaves the server (password hashes)
    # Bookkeeping whose change alone is no event (a user's last login): an
    # update that changes only quiet and hidden fields is not logged.
    quiet: bool = False

    @property
    def auto_increment(self) -> bool:
        return bool(self.default == "AUTOINCREMENT")


@dataclass(frozen=True)
class Collection:
    name: str
    fields: dict[str, FieldSpec]
    table: Table
    primary_key: str = "id"
    realtime: bool = True
    system: bool = False
    read_only: bool = False  # system collections written through their own routes
    definition: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> dict[str, FieldKind]:
        return {name: spec.kind for name, spec in self.fields.items() if not spec.hidden}

    @property
    def visible_fields(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.fields.items() if not spec.hidden)
