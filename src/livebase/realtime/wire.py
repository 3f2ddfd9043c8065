"""Events as they cross between livebase processes: one small JSON message each.

An item change travels once, unfiltered, to every process that has
listeners for its collection; each process filters and projects it for its
own sockets as if the write had happened there. Values lose their Python
types in JSON, so dates and decimals are restored from the collection's
field types before permission conditions are checked against them.
"""

from __future__ import annotations

import contextlib
from typing import Any

from livebase.services.errors import ServiceError
from livebase.services.events import ChangeEvent, FileChanged
from livebase.services.registry import CollectionRegistry
from livebase.services.values import coerce_value
from livebase.storage.kinds import KINDS, FieldKind

Message = dict[str, Any]

_RETYPED = tuple(kind for kind, entry in KINDS.items() if entry.retyped)


def change_message(event: ChangeEvent) -> Message:
    return {
        "m": "change",
        "c": event.collection,
        "a": event.action,
        "k": event.key,
        "i": event.item,
        "u": event.user_id,
        "t": event.timestamp,
    }


def change_event(message: Message, registry: CollectionRegistry) -> ChangeEvent:
    collection = message["c"]
    return ChangeEvent(
        collection=collection,
        action=message["a"],
        key=message["k"],
        item=_retyped(registry, collection, message["i"]),
        previous=None,
        user_id=message["u"],
        timestamp=_datetime(message["t"]),
    )


def file_message(event: FileChanged) -> Message:
    return {
        "m": "file",
        "a": event.action,
        "f": event.file,
        "u": event.user_id,
        "t": event.timestamp,
    }


def file_event(message: Message, registry: CollectionRegistry) -> FileChanged:
    return FileChanged(
        action=message["a"],
        file=_retyped(registry, "files", message["f"]),
        user_id=message["u"],
        timestamp=_datetime(message["t"]),
    )


# collection name -> (the Collection it was worked out for, its fields that JSON turned into text)
_retyped_fields: dict[str, tuple[Any, tuple[Any, ...]]] = {}


def _fields_to_retype(collection: Any) -> tuple[Any, ...]:
    cached = _retyped_fields.get(collection.name)
    if cached is None or cached[0] is not collection:  # a schema change made a new Collection
        fields = tuple(spec for spec in collection.fields.values() if spec.kind in _RETYPED)
        cached = _retyped_fields[collection.name] = (collection, fields)
    return cached[1]


def _retyped(registry: CollectionRegistry, name: str, item: dict[str, Any]) -> dict[str, Any]:
    collection = registry.peek(name)
    if collection is None:
        return item
    for spec in _fields_to_retype(collection):
        if isinstance(item.get(spec.name), str):
            # Left as sent if it does not parse: a condition on it simply will not match.
            with contextlib.suppress(ServiceError):
                item[spec.name] = coerce_value(spec.kind, item[spec.name], spec.name)
    return item


def _datetime(value: str) -> Any:
    return coerce_value(FieldKind.DATETIME, value, "timestamp")
