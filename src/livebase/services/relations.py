"""The relations between collections, as stored in their schemas and seen from both ends.

A collection's stored schema holds the relations whose keys its table (or
its junction collection) holds, under ``relationships``::

    "relationships": {
        "author": {"type": "M2O", "target": "users", "alias": "messages",
                   "onDelete": "SET NULL", "foreignKey": "author_Id"},
        "tags": {"type": "M2M", "target": "tags", "alias": "posts",
                 "through": "posts_tags_junction", "sourceKey": "posts_id",
                 "targetKey": "tags_id"}
    }

:class:`RelationGraph` adds the reverse of each relation that has an alias,
so ``users.messages`` (an O2M) exists without being stored on ``users``.
An M2M's junction is a collection of its own whose schema says which
collection each of its two key fields points at::

    "junction": {"posts_id": "posts", "tags_id": "tags"}

Relations are written through ``/schemas/{c}/relationships`` only
(``services/relationships.py``); a stored entry that no longer makes sense
is skipped with an error in the log, like an unusable schema.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from livebase.storage.model import ForeignKey, OnDelete, Relation, RelationKind

_log = logging.getLogger("livebase.relations")

MAX_DEPTH = 3  # hops in one path: author.company.country
MAX_RELATED = 100  # items in one O2M or M2M list of one item


def _text(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) and value else None


def stored_relation(collection: str, name: str, entry: object) -> Relation:
    """One entry of a stored schema's ``relationships``; ValueError if it is unusable."""
    if not isinstance(entry, Mapping):
        raise ValueError("not an object")
    kind = RelationKind(str(entry.get("type")))
    if kind is RelationKind.O2M:
        raise ValueError("an O2M is stored as the M2O it reverses")
    target = _text(entry, "target")
    if target is None:
        raise ValueError("no target")
    relation = Relation(
        name=name,
        kind=kind,
        collection=collection,
        target=target,
        on_delete=OnDelete(entry.get("onDelete", OnDelete.SET_NULL)),
        alias=_text(entry, "alias"),
        foreign_key=_text(entry, "foreignKey"),
        junction=_text(entry, "through"),
        junction_source=_text(entry, "sourceKey"),
        junction_target=_text(entry, "targetKey"),
    )
    if relation.to_one and relation.foreign_key is None:
        raise ValueError("no foreignKey")
    if kind is RelationKind.M2M and None in (
        relation.junction,
        relation.junction_source,
        relation.junction_target,
    ):
        raise ValueError("an M2M needs through, sourceKey and targetKey")
    return relation


def _keys(relation: Relation) -> dict[str, Any]:
    if relation.junction is None:
        return {"onDelete": relation.on_delete.value, "foreignKey": relation.foreign_key}
    return {
        "through": relation.junction,
        "sourceKey": relation.junction_source,
        "targetKey": relation.junction_target,
    }


def stored_entry(relation: Relation) -> dict[str, Any]:
    """What :func:`stored_relation` reads back: the JSON kept in the schema."""
    entry: dict[str, Any] = {"type": relation.kind.value, "target": relation.target}
    if relation.alias is not None:
        entry["alias"] = relation.alias
    return entry | _keys(relation)


def stored_relations(collection: str, definition: Mapping[str, Any]) -> list[Relation]:
    """The relations a collection's stored schema holds; unusable entries are logged, skipped."""
    entries = definition.get("relationships") or {}
    if not isinstance(entries, Mapping):
        _log.error("collection %r: relationships is not an object, ignored", collection)
        return []
    found = []
    for name, entry in entries.items():
        try:
            found.append(stored_relation(collection, name, entry))
        except ValueError as exc:
            _log.error("collection %r relation %r is unusable, skipped: %s", collection, name, exc)
    return found


def junction_keys(definition: Mapping[str, Any]) -> dict[str, str]:
    """A junction collection's key fields and the collection each points at; {} for others."""
    keys = definition.get("junction")
    if not isinstance(keys, Mapping):
        return {}
    return {field: target for field, target in keys.items() if isinstance(target, str)}


def foreign_keys(
    collection: str, definition: Mapping[str, Any]
) -> tuple[list[ForeignKey], list[tuple[str, ...]]]:
    """The foreign keys a collection's table has, and the fields unique together (a
    junction's pair of keys): from its M2O/O2O relations, or its junction keys."""
    found = [
        ForeignKey(r.foreign_key, r.target, on_delete=r.on_delete)
        for r in stored_relations(collection, definition)
        if r.foreign_key is not None
    ]
    links = junction_keys(definition)
    found += [ForeignKey(f, target, on_delete=OnDelete.CASCADE) for f, target in links.items()]
    fields = definition.get("fields")
    declared = fields if isinstance(fields, Mapping) else {}
    usable = [key for key in found if key.field in declared]
    if len(usable) != len(found):
        _log.error("collection %r: a foreign key names a field it lacks, skipped", collection)
    together = [tuple(links)] if len(links) == 2 else []
    return usable, together


def described(relation: Relation) -> dict[str, Any]:
    """A relation as ``GET /schemas/{c}`` lists it (BAASIX's names); a derived one says so."""
    entry = {"name": relation.name, **stored_entry(relation)}
    if relation.reversed:
        entry["reverse"] = True
    return entry


class RelationGraph:
    """Every relation by the collection it starts from: the stored ones and their reverses."""

    def __init__(self, stored: Iterable[Relation] = ()) -> None:
        self._stored = list(stored)
        self._from: dict[str, dict[str, Relation]] = {}
        for relation in self._stored:
            self._from.setdefault(relation.collection, {})[relation.name] = relation
        for relation in self._stored:
            back = relation.reverse()
            if back is None:
                continue
            names = self._from.setdefault(back.collection, {})
            if back.name in names:
                # Refused when written; a stored clash keeps the stored relation.
                _log.error(
                    "relation alias %s.%s clashes with another relation, skipped",
                    back.collection,
                    back.name,
                )
                continue
            names[back.name] = back

    def of(self, collection: str) -> Mapping[str, Relation]:
        """The relations that start from ``collection``, by name."""
        return self._from.get(collection, {})

    def find(self, collection: str, name: str) -> Relation | None:
        return self._from.get(collection, {}).get(name)

    def pointing_at(self, collection: str) -> list[Relation]:
        """Stored relations of other collections whose target is ``collection``."""
        return [r for r in self._stored if r.target == collection and r.collection != collection]

    def junctions(self) -> set[str]:
        """The junction collections of every M2M."""
        return {r.junction for r in self._stored if r.junction is not None}
