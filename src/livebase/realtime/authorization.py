"""Live authorization: a connected socket's rights follow the changes to them.

A socket is authorized once, at its handshake; everything that changes its
rights afterwards is an event handled here, on every process:

- its user is deleted or suspended, or its session revoked: it is
  disconnected; its token expires: it is told ``session.expired``, then
  disconnected;
- its user's role or that role's permissions change: its rooms and read
  scopes are recomputed (:meth:`memberships.Memberships.refresh`);
- a collection is created, changed or dropped: the sockets listening to it
  (and administrators, for a new one) are recomputed likewise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from livebase.realtime.audience import Audience
from livebase.realtime.connections import Connection, Connections
from livebase.realtime.eviction import Eviction
from livebase.realtime.history import SocketHistory
from livebase.realtime.live_queries import LiveQueries
from livebase.realtime.memberships import Memberships
from livebase.realtime.router import stamped
from livebase.realtime.timers import Timers
from livebase.services.accountability import ADMIN_ROLE
from livebase.services.events import ChangeEvent, PermissionsChanged, SessionRevoked
from livebase.services.permissions import PermissionService
from livebase.services.registry import CollectionRegistry

Tell = Callable[[str, str, Any], None]  # (sid, event, payload)


class LiveAuthorization:
    def __init__(
        self,
        connections: Connections,
        memberships: Memberships,
        live: LiveQueries,
        audience: Audience,
        permissions: PermissionService,
        registry: CollectionRegistry,
        eviction: Eviction,
        timers: Timers,
        tell: Tell,
        history: SocketHistory,
    ) -> None:
        self._connections = connections
        self._memberships = memberships
        self._live = live
        self._audience = audience
        self._permissions = permissions
        self._registry = registry
        self._eviction = eviction
        self._timers = timers
        self._tell = tell
        self._history = history

    # -- events --------------------------------------------------------------------------

    async def changed(self, event: ChangeEvent) -> bool:
        """Keep sockets in step with a change to ``users`` or ``schemas``; whether
        clients see the change as an item event (schema changes are bookkeeping)."""
        if event.collection == "users":
            await self._user_changed(event)
        elif event.collection == "schemas":
            await self._schema_changed(event)
            return False
        return True

    async def session_revoked(self, event: SessionRevoked) -> None:
        for connection in self._connections.of_session(event.session_id):
            self._eviction.drop(connection.sid, "session revoked (logged out)")

    async def permissions_changed(self, event: PermissionsChanged) -> None:
        self._history.permissions_changed(event.role)
        self._audience.forget_views()
        affected = self._connections.of_role(event.role)
        for connection in affected:
            await self._memberships.refresh(connection)
        self._live.refresh(affected)

    # -- what another process changed ----------------------------------------------------

    async def change_arrived(self, event: ChangeEvent) -> None:
        if event.collection == "schemas":
            await self._registry.load()
            await self._permissions.load()

    async def permissions_arrived(self, event: PermissionsChanged) -> None:
        await self._permissions.load()

    # -- token expiry --------------------------------------------------------------------

    def schedule_expiry(self, connection: Connection) -> None:
        if connection.expires_at is None:
            return
        delay = max(0.0, connection.expires_at.timestamp() - time.time())
        expire = partial(self._expire, connection.sid)
        connection.expiry = self._timers.call_later(delay, connection.sid, expire)

    def cancel_expiry(self, connection: Connection) -> None:
        self._timers.cancel(connection.expiry, connection.sid)

    def _expire(self, sid: str) -> None:
        if self._connections.get(sid) is None:
            return
        self._tell(sid, "session.expired", stamped({"message": "token expired"}))
        self._eviction.drop(sid, "token expired")

    # -- users and schemas ---------------------------------------------------------------

    async def _user_changed(self, event: ChangeEvent) -> None:
        for connection in self._connections.of_user(str(event.key)):
            if event.action == "delete":
                self._eviction.drop(connection.sid, "user deleted")
            elif event.item.get("status") != "active":
                self._eviction.drop(connection.sid, "user suspended")
            elif event.item.get("role") != connection.role:
                self._history.role_changed(connection.sid, connection.role, event.item["role"])
                connection.who = replace(connection.who, role=event.item["role"])
                await self._memberships.refresh(connection)
                self._live.refresh([connection])

    async def _schema_changed(self, event: ChangeEvent) -> None:
        self._audience.forget_views()
        name = str(event.key)
        self._live.collection_changed(name)
        if event.action == "delete":
            for sid in self._audience.drop_collection(name):
                connection = self._connections.get(sid)
                if connection is not None:
                    self._memberships.leave_collection(connection, name, "collection deleted")
            return
        # A new or changed collection: scopes (fields) may differ; admins auto-join.
        for connection in list(self._connections.by_sid.values()):
            if name in connection.collections or (
                event.action == "create" and connection.role == ADMIN_ROLE
            ):
                await self._memberships.refresh(connection)
