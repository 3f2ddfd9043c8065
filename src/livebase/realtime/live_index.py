"""Finding the live queries a change may concern without testing every one.

Most subscriptions pin a field to a few values: a filter such as
``{"channel": "general"}`` or ``{"room": {"in": [...]}}``, or a permission
condition such as ``{"owner": {"eq": "$CURRENT_USER"}}`` (resolved to the
user's id). Such a subscription can only match an item whose field holds
one of those values, so it is filed under them; a change looks up the
values of its item (before and after) and tests only what it finds there,
plus the subscriptions that pin nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from livebase.services.filters import And, Compare, Node

Pin = tuple[str, tuple[Any, ...]]  # a field, and the values a match must have there
G = TypeVar("G", bound=Hashable)


def pin(node: Node) -> Pin | None:
    """The field ``node`` pins to the fewest values (``eq`` or ``in``, alone or inside
    an AND), or None when every value of every field could match."""
    if isinstance(node, Compare):
        if node.op == "eq":
            return node.field, (node.value,)
        if node.op == "in":
            assert isinstance(node.value, tuple)
            return node.field, node.value
        return None
    if not isinstance(node, And):
        return None
    best: Pin | None = None
    for child in node.children:
        found = pin(child) if isinstance(child, Compare) else None
        if found is not None and (best is None or len(found[1]) < len(best[1])):
            best = found
    return best


class PinIndex(Generic[G]):
    """Entries (groups of identical subscriptions) of each collection, by pinned value."""

    def __init__(self) -> None:
        # collection -> field -> value -> entries
        self._pinned: dict[str, dict[str, dict[Any, set[G]]]] = {}
        self._unpinned: dict[str, set[G]] = {}

    def add(self, collection: str, entry: G, where: Pin | None) -> None:
        if where is None:
            self._unpinned.setdefault(collection, set()).add(entry)
            return
        field, values = where
        by_value = self._pinned.setdefault(collection, {}).setdefault(field, {})
        for value in values:
            by_value.setdefault(value, set()).add(entry)

    def remove(self, collection: str, entry: G, where: Pin | None) -> None:
        if where is None:
            unpinned = self._unpinned.get(collection)
            if unpinned is not None:
                unpinned.discard(entry)
                if not unpinned:
                    del self._unpinned[collection]
            return
        field, values = where
        fields = self._pinned.get(collection, {})
        by_value = fields.get(field, {})
        for value in values:
            entries = by_value.get(value)
            if entries is not None:
                entries.discard(entry)
                if not entries:
                    del by_value[value]
        if not by_value:
            fields.pop(field, None)
        if not fields:
            self._pinned.pop(collection, None)

    def candidates(
        self, collection: str, states: Iterable[Mapping[str, Any] | None]
    ) -> Collection[G]:
        """The entries that may match one of ``states`` (an item before and after a
        change). To iterate at once: it may be the index's own set."""
        unpinned: Collection[G] = self._unpinned.get(collection, ())
        fields = self._pinned.get(collection)
        if not fields:
            return unpinned  # not copied: thousands of unpinned entries cost a copy each change
        found: set[G] | None = None
        for state in states:
            if state is None:
                continue
            for field, by_value in fields.items():
                try:
                    entries = by_value.get(state.get(field))
                except TypeError:  # an unhashable value (JSON) is never pinned
                    continue
                if entries:
                    found = set(unpinned) if found is None else found
                    found.update(entries)
        return unpinned if found is None else found

    def collections(self) -> set[str]:
        return set(self._pinned) | set(self._unpinned)
