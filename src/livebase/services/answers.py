"""What a writer gets back: each written item as the writer's read permission shows it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from livebase.services import filters, listing
from livebase.services.events import ChangeEvent
from livebase.services.operations import Item
from livebase.services.permissions import Scope
from livebase.storage.model import Collection

Matcher = Callable[[filters.Node], Callable[[Any], bool]]


def answer(
    collection: Collection, scope: Scope | None, event: ChangeEvent, matcher: Matcher
) -> Item:
    """The item of ``event`` as ``scope``, the writer's read scope, shows it.

    Only its key if it was deleted or the writer may not read it; ``matcher``
    compiles the scope's condition (the items service caches them).
    """
    if event.action == "delete" or not readable(scope, event, matcher):
        return {collection.primary_key: event.key}
    assert scope is not None
    return {f: event.item.get(f) for f in listing.readable(collection, scope)}


def readable(scope: Scope | None, event: ChangeEvent, matcher: Matcher) -> bool:
    """Whether ``scope``, the writer's read scope, lets it read the item of ``event``."""
    return scope is not None and matcher(scope.condition)(event.item)
