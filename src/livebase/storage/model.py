"""What a collection is, as storage sees it: fields with kinds, a primary key, a table."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Table

from livebase.storage.kinds import DECIMAL_PRECISION, DECIMAL_SCALE, FieldKind

# FieldKind and the Decimal defaults live with the rest of each kind's meaning.
__all__ = [
    "DECIMAL_PRECISION",
    "DECIMAL_SCALE",
    "Collection",
    "FieldKind",
    "FieldSpec",
    "ForeignKey",
    "OnDelete",
    "Relation",
    "RelationKind",
]


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


class RelationKind(StrEnum):
    """BAASIX's relation types."""

    M2O = "M2O"  # many items here point at one item there (a foreign key here)
    O2M = "O2M"  # one item here, many there pointing at it (the reverse of an M2O)
    O2O = "O2O"  # a foreign key here that no two items share (or its reverse)
    M2M = "M2M"  # links in a junction collection


class OnDelete(StrEnum):
    """What deleting the target does to the items pointing at it (the database does it)."""

    CASCADE = "CASCADE"
    SET_NULL = "SET NULL"
    RESTRICT = "RESTRICT"


@dataclass(frozen=True)
class ForeignKey:
    """A field of a table that holds the primary key of an item of ``target`` (the database
    enforces it, and does ``on_delete`` when that item goes)."""

    field: str
    target: str
    target_field: str = "id"
    on_delete: OnDelete = OnDelete.SET_NULL


@dataclass(frozen=True)
class Relation:
    """A named way from the items of ``collection`` to related items of ``target``.

    A relation is stored once, on the collection whose table holds its keys:
    an M2O or O2O on the collection with the foreign key field, an M2M on the
    collection that asked for it (its junction collection holds the links).
    Its ``alias``, if any, names the way back from ``target``; that reverse
    relation is derived (:meth:`reverse`), never stored, so the two cannot
    disagree.

    ``foreign_key`` is the key field of a to-one link: a field of
    ``collection`` for a stored M2O/O2O, of ``target`` for a reverse one (an
    O2M, or the back side of an O2O). For an M2M, ``junction`` is the junction
    collection, ``junction_source`` its field pointing at ``collection`` and
    ``junction_target`` the one pointing at ``target``.
    """

    name: str
    kind: RelationKind
    collection: str
    target: str
    on_delete: OnDelete = OnDelete.SET_NULL
    alias: str | None = None
    foreign_key: str | None = None
    junction: str | None = None
    junction_source: str | None = None
    junction_target: str | None = None
    reversed: bool = False  # derived from the alias of a relation stored on ``target``

    @property
    def to_one(self) -> bool:
        """One related item (an object or null), rather than a list."""
        return self.kind in (RelationKind.M2O, RelationKind.O2O)

    @property
    def key_here(self) -> bool:
        """Whether ``foreign_key`` is a field of ``collection`` (else of ``target``)."""
        return self.to_one and not self.reversed

    @property
    def stored_as(self) -> tuple[str, str]:
        """(collection, name) of the relation as stored: the same for it and its reverse."""
        if self.reversed:
            assert self.alias is not None
            return (self.target, self.alias)
        return (self.collection, self.name)

    def goes_back(self, other: Relation) -> bool:
        """Whether following ``self`` right after ``other`` returns the way ``other`` came."""
        return self.stored_as == other.stored_as and self.reversed != other.reversed

    def reverse(self) -> Relation | None:
        """The relation seen from ``target`` under ``alias``, or None without an alias."""
        if self.alias is None or self.reversed:
            return None
        kind = RelationKind.O2M if self.kind is RelationKind.M2O else self.kind
        return Relation(
            name=self.alias,
            kind=kind,
            collection=self.target,
            target=self.collection,
            on_delete=self.on_delete,
            alias=self.name,
            foreign_key=self.foreign_key,
            junction=self.junction,
            junction_source=self.junction_target,
            junction_target=self.junction_source,
            reversed=True,
        )
