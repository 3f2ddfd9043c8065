"""The collections this server knows: the system ones and those defined through /schemas."""

from __future__ import annotations

import logging

from sqlalchemy import MetaData, select

from livebase.services.definitions import Definition, parse_definition
from livebase.services.errors import NotFound, ServiceError
from livebase.services.patterns import FieldPattern
from livebase.services.relations import RelationGraph, foreign_keys, stored_relations
from livebase.storage import system
from livebase.storage.database import Database
from livebase.storage.model import Collection
from livebase.storage.tables import build_table

_log = logging.getLogger("livebase.registry")


def make_collection(name: str, definition: Definition) -> Collection:
    # One MetaData per table, so a changed definition simply replaces the table.
    keys, unique_together = foreign_keys(name, definition.raw)
    table = build_table(name, definition.fields, MetaData(), keys, unique_together)
    return Collection(
        name=name,
        fields=definition.fields,
        table=table,
        primary_key=definition.primary_key,
        realtime=definition.realtime,
        definition=definition.raw,
    )


def _unusable_patterns(definition: Definition) -> list[tuple[str, FieldPattern]]:
    found = [(spec.name, spec.validate.get("is")) for spec in definition.fields.values()]
    return [(field, p) for field, p in found if p is not None and p.refusal is not None]


class CollectionRegistry:
    """In-memory view of the ``schemas`` table, reloaded when a name is missing.

    Reloading on a miss is what lets a collection created through another
    process be used here at once.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._user: dict[str, Collection] = {}
        self._graph = RelationGraph()
        self._warned: set[tuple[str, str, str]] = set()

    async def load(self) -> None:
        async with self._db.connect() as conn:
            rows = (await conn.execute(select(system.schemas))).mappings().all()
        loaded: dict[str, Collection] = {}
        for row in rows:
            name = row["collectionName"]
            try:
                definition = parse_definition(row["schema"])
            except ServiceError as exc:
                _log.error("schema of collection %r is unusable, skipped: %s", name, exc.message)
                continue
            self._warn_of_unusable_patterns(name, definition)
            loaded[name] = make_collection(name, definition)
        self._user = loaded
        self._relate()

    def _warn_of_unusable_patterns(self, name: str, definition: Definition) -> None:
        # Stored before patterns ran on RE2: the collection stays readable and
        # writable, except that a value for that field is refused (422) until
        # an administrator changes the pattern. Once per pattern: load() runs often.
        for field, pattern in _unusable_patterns(definition):
            key = (name, field, repr(pattern.source))  # the source may be any JSON value
            if key in self._warned:
                continue
            self._warned.add(key)
            _log.warning(
                "collection %r field %r: validate.is %r is unusable (%s); values for it are "
                "refused until an administrator changes it",
                name,
                field,
                pattern.source,
                pattern.refusal,
            )

    def peek(self, name: str) -> Collection | None:
        return self._user.get(name) or system.SYSTEM_COLLECTIONS.get(name)

    async def get(self, name: str) -> Collection:
        """The collection called ``name``; :class:`NotFound` if there is none."""
        found = self.peek(name)
        if found is None and isinstance(name, str) and len(name) <= 100:
            await self.load()
            found = self.peek(name)
        if found is None or found.name in system.INTERNAL:
            raise NotFound(f"collection {name!r} does not exist", "COLLECTION_NOT_FOUND")
        return found

    def user_collections(self) -> list[Collection]:
        return list(self._user.values())

    def all_collections(self) -> list[Collection]:
        public_system = [
            c for n, c in system.SYSTEM_COLLECTIONS.items() if n not in system.INTERNAL
        ]
        return public_system + self.user_collections()

    def put(self, collection: Collection) -> None:
        self._user[collection.name] = collection
        self._relate()

    def remove(self, name: str) -> None:
        self._user.pop(name, None)
        self._relate()

    @property
    def relations(self) -> RelationGraph:
        """The relations between the collections known now (rebuilt when one changes)."""
        return self._graph

    def _relate(self) -> None:
        stored = (
            relation
            for collection in self._user.values()
            for relation in stored_relations(collection.name, collection.definition)
        )
        self._graph = RelationGraph(stored)

    def taken(self, name: str) -> bool:
        """Whether ``name`` clashes with an existing collection (SQLite ignores case)."""
        lowered = name.lower()
        names = list(self._user) + list(system.SYSTEM_COLLECTIONS)
        return any(existing.lower() == lowered for existing in names)
