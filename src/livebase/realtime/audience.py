"""Who may read what, precomputed per socket so that an event costs one check per scope.

Sockets in a collection room are grouped by their read :class:`Scope` (role,
resolved conditions and fields). Sockets of different users whose resolved
scopes are equal share a group, so an event is checked and encoded once per
distinct scope, never once per socket.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from livebase.realtime.connections import Connection
from livebase.services import filters
from livebase.services.permissions import PermissionService, Scope
from livebase.services.registry import CollectionRegistry
from livebase.storage.model import Collection

Item = Mapping[str, Any]


class ScopeView:
    """A read scope compiled for delivery: the row check and the field cut."""

    def __init__(self, scope: Scope, collection: Collection) -> None:
        self.matches: Callable[[Item], bool] = filters.to_predicate(scope.condition)
        self.fields = tuple(f for f in collection.visible_fields if scope.field_allowed(f))

    def project(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in self.fields}


class Audience:
    def __init__(self, permissions: PermissionService, registry: CollectionRegistry) -> None:
        self._permissions = permissions
        self._registry = registry
        self._groups: defaultdict[str, dict[Scope, set[str]]] = defaultdict(dict)
        self._member_scope: dict[tuple[str, str], Scope] = {}
        self._views: dict[tuple[str, Scope], ScopeView] = {}

    def read_scope(self, connection: Connection, collection: str) -> Scope | None:
        found = self._registry.peek(collection)
        if found is None:
            return None
        return self._permissions.scope(connection.who, found, "read")

    def view(self, collection: Collection, scope: Scope) -> ScopeView:
        key = (collection.name, scope)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = ScopeView(scope, collection)
        return view

    def forget_views(self) -> None:
        """Schemas or permissions changed: compiled views may be stale."""
        self._views.clear()

    # -- collection room membership, grouped by scope -------------------------------

    def add(self, sid: str, collection: str, scope: Scope) -> None:
        self.remove(sid, collection)
        self._groups[collection].setdefault(scope, set()).add(sid)
        self._member_scope[(sid, collection)] = scope

    def remove(self, sid: str, collection: str) -> None:
        scope = self._member_scope.pop((sid, collection), None)
        if scope is None:
            return
        group = self._groups[collection].get(scope)
        if group is not None:
            group.discard(sid)
            if not group:
                del self._groups[collection][scope]
        if not self._groups[collection]:
            del self._groups[collection]

    def collections(self) -> list[str]:
        """Collections some socket here listens to."""
        return list(self._groups)

    def groups(self, collection: str) -> dict[Scope, set[str]]:
        return self._groups.get(collection, {})

    def scope_of(self, sid: str, collection: str) -> Scope | None:
        return self._member_scope.get((sid, collection))

    def drop_collection(self, collection: str) -> list[str]:
        """A collection is gone: forget its room; returns the sockets that were in it."""
        members = [sid for group in self._groups.pop(collection, {}).values() for sid in group]
        for sid in members:
            self._member_scope.pop((sid, collection), None)
        return members
