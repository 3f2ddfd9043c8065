"""Live queries on the realtime server: subscribing, the changes that follow, rights
that change under them (docs/realtime.md, "Live queries").

- **Subscribing** reads the snapshot at a change-log position
  (``services/live.py``). Meanwhile the socket's events wait
  (:meth:`Delivery.pause`); the ack carries the snapshot, then what waited
  goes out, without the subscription's changes the snapshot already holds.
  A change that reaches this process late (a cluster's lag) and is older
  than the snapshot is skipped too (``since``).
- **Changes** are tested only against the groups the index finds
  (:mod:`live_index`), once per group (:mod:`subscriptions`).
- **Rights change** (permissions, a user's role): an affected subscription
  moves to its new plan at once, its socket waits, and the items that
  became readable or unreadable are read at a position *Q*; the socket gets
  the changes up to *Q* it would have had under the old plan (from the log),
  then ``added``/``removed`` for those items, then what came after *Q*
  under the new plan. A subscription that could not be made now (the
  collection, or a field it filters on, no longer readable) ends with
  ``subscription.ended``; so does one whose collection's schema changes.
- **Recovery** stores each subscription with its session; a recovered socket
  gets those it may still have, and its missed changes as subscription
  events (:meth:`change_for`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from livebase.realtime.connections import Connection, Connections
from livebase.realtime.delivery import Delivery
from livebase.realtime.engine import FollowedBy
from livebase.realtime.live_index import PinIndex
from livebase.realtime.offsets import Progress, offset
from livebase.realtime.router import Envelope, stamped
from livebase.realtime.subscriptions import ENDED, Group, Subscription, fingerprint, group_key
from livebase.services.errors import ServiceError
from livebase.services.events import ChangeEvent
from livebase.services.listing import Plan
from livebase.services.live import MAX_LIMIT, LiveQueryService, Readability
from livebase.storage.types import utcnow

_log = logging.getLogger("livebase.realtime")

# Items whose readability one change of rights may change, per subscription;
# log entries read to bring it up to the moment that was read.
MAX_READABILITY_CHANGES = MAX_LIMIT
MAX_ENTRIES_READ = 10 * MAX_LIMIT

Ack = dict[str, Any]
Made = tuple[str, dict[str, Any]]  # an event's name and payload
Save = Callable[[Connection], Awaitable[None]]
Spawn = Callable[[Any], None]


@dataclass
class _Move:
    """A subscription moving to a new plan after its subscriber's rights changed."""

    connection: Connection
    subscription: Subscription
    since: int  # its position before the move
    before: Plan  # the plan it moves from


class LiveQueries:
    def __init__(
        self,
        service: LiveQueryService,
        connections: Connections,
        delivery: Delivery,
        progress: Progress,
        want: Callable[[list[str]], Awaitable[None]],
        spawn: Spawn,
        *,
        max_subscriptions: int,
    ) -> None:
        self._service = service
        self._connections = connections
        self._delivery = delivery
        self._progress = progress
        self._want = want
        self._spawn = spawn
        self.max_subscriptions = max_subscriptions
        self.save: Save = _nothing  # stores a socket's session (recovery), set by the server
        self._groups: dict[tuple[Any, ...], Group] = {}
        self._index: PinIndex[Group] = PinIndex()
        self.counts = {"subscribed": 0, "ended": 0, "moved": 0}

    # -- what clients ask ---------------------------------------------------------------

    async def subscribe(self, connection: Connection, raw: object) -> Ack | FollowedBy:
        try:
            live, plan = await self._service.prepare(connection.who, raw)
        except ServiceError as exc:
            return _refused(exc.message)
        sid = connection.sid
        if self._full(connection, live.id):
            return _refused(f"a socket may hold at most {self.max_subscriptions} subscriptions")
        await self._want([live.collection])
        if self._connections.get(sid) is not connection:
            return _refused("not connected")
        if self._full(connection, live.id):  # again: requests of one socket run side by side
            return _refused(f"a socket may hold at most {self.max_subscriptions} subscriptions")
        held = connection.subscriptions.get(live.id)
        if held is not None:  # asked again: a new snapshot, the same stream
            self._detach(held)
        subscription = Subscription(live.id, sid, live, plan)
        connection.subscriptions[live.id] = subscription
        self._delivery.pause(sid)
        group = self._attach(subscription)
        try:
            items, position = await self._service.snapshot(live, plan)
            if connection.subscriptions.get(live.id) is not subscription:
                self._delivery.resume(sid, drop=_from(group))
                return _refused("unsubscribed while its snapshot was read")
            self._settle(subscription, position)
            await self.save(connection)
        except Exception:
            _log.exception("reading a live query's snapshot failed (%s)", live.collection)
            self._remove(connection, subscription)
            self._delivery.resume(sid, drop=_from(group))
            return _refused("the snapshot could not be read; try again")
        self.counts["subscribed"] += 1
        ack = {"success": True, "subscription": live.id, "items": items, "offset": offset(position)}
        return FollowedBy(ack, lambda: self._answered(connection, subscription, group, position))

    def _full(self, connection: Connection, sub_id: str) -> bool:
        subscriptions = connection.subscriptions
        return sub_id not in subscriptions and len(subscriptions) >= self.max_subscriptions

    def _answered(
        self, connection: Connection, subscription: Subscription, group: Group, position: int
    ) -> None:
        if subscription.stale:  # its subscriber's rights changed while the snapshot was read
            subscription.stale = False
            self.refresh([connection])  # before the socket resumes: it waits for that too
        self._delivery.resume(connection.sid, drop=_from(group, upto=position))

    async def unsubscribe(self, connection: Connection, raw: object) -> Ack:
        sub_id = raw.get("subscription") if isinstance(raw, dict) else raw
        if not isinstance(sub_id, str):
            return _refused("unsubscribe takes {subscription: id}")
        subscription = connection.subscriptions.get(sub_id)
        if subscription is None:
            return _refused(f"no subscription {sub_id[:40]!r} on this socket")
        self._remove(connection, subscription)
        await self.save(connection)
        return {"success": True, "subscription": sub_id}

    # -- changes ------------------------------------------------------------------------

    async def change(self, event: ChangeEvent) -> list[Envelope]:
        """The subscription events of ``event`` for the sockets of this process."""
        groups = self._index.candidates(event.collection, (event.previous, event.item))
        if not groups:
            return []
        position = event.position or 0
        envelopes = []
        for group in groups:
            made = await self.expanded(group, group.payload(event))
            if made is None:
                continue
            # After the related items were read: who is a member now.
            sids = group.members.keys() if not group.unsettled else _settled(group, position)
            envelopes.append(Envelope(made[0], made[1], sids, position, group))
        return envelopes

    async def expanded(self, group: Group, made: Made | None) -> Made | None:
        """``made`` with its item's related items read (fields paths), under the
        scopes of the group's plan; the item cut to what the subscriber asked."""
        if made is None or not group.plan.expansion or made[0] == "subscription.removed":
            return made
        await self.expand(group.plan, [made[1]["item"]])
        return made

    async def expand(self, plan: Plan, items: list[dict[str, Any]]) -> None:
        try:
            await self._service.expand(plan, items)
        except Exception:
            # The change still goes out; its relations are missing rather than stale.
            _log.exception("reading the related items of a live query's event failed")
            plan.expansion.leave_out(items, plan.fields)

    async def change_for(
        self, connection: Connection, event: ChangeEvent, shared: dict[tuple[Any, ...], Any]
    ) -> list[Envelope]:
        """:meth:`change` for one socket's subscriptions (a recovery's replay);
        ``shared`` keeps groups and payloads between the sockets replayed."""
        envelopes = []
        position = event.position or 0
        for subscription in connection.subscriptions.values():
            if subscription.live.collection != event.collection:
                continue
            if subscription.since is not None and position <= subscription.since:
                continue
            key = group_key(subscription.id, subscription.plan)
            made_key = ("live", position, key)
            if made_key not in shared:
                group = self._groups.get(key) or shared.get(("group", key))
                if group is None:
                    group = shared["group", key] = Group(subscription.id, subscription.plan)
                shared[made_key] = await self.expanded(group, group.payload(event))
            made = shared[made_key]
            if made is not None:
                envelopes.append(Envelope(made[0], made[1], (connection.sid,), position))
        return envelopes

    # -- rights -------------------------------------------------------------------------

    def refresh(self, connections: Iterable[Connection]) -> None:
        """Their rights changed: each subscription keeps its plan, moves to a new
        one (:meth:`_move`), or ends, as subscribing now would be answered."""
        moves: dict[tuple[Any, ...], list[_Move]] = {}
        for connection in connections:
            for subscription in list(connection.subscriptions.values()):
                scope = self._service.scope(connection.who, subscription.live)
                try:
                    reach = self._service.reach(connection.who)
                    plan = self._service.plan(subscription.live, scope, reach)
                except ServiceError as exc:
                    self.end(connection, subscription, exc.message)
                    continue
                old = group_key(subscription.id, subscription.plan)
                new = group_key(subscription.id, plan)
                if old == new:
                    continue
                if subscription.since is None:
                    subscription.stale = True  # its snapshot is being read: after it
                    continue
                move = _Move(connection, subscription, subscription.since, subscription.plan)
                self._detach(subscription)
                subscription.plan, subscription.since = plan, None
                self._delivery.pause(connection.sid)
                self._attach(subscription)
                moves.setdefault((*old, *new), []).append(move)
        for batch in moves.values():
            self._spawn(self._move(batch, self._progress.position))

    async def _move(self, batch: list[_Move], handled: int) -> None:
        """Bring a batch of subscriptions that moved from one plan to another (the same
        for all) up to date: their sockets wait meanwhile (:meth:`refresh`)."""
        first = batch[0].subscription
        before, after = batch[0].before, first.plan
        collection = first.live.collection
        readability = missed = None
        try:
            readability = await self._service.readability(before, after, MAX_READABILITY_CHANGES)
            if readability is not None:
                missed = await self._service.changes(
                    collection, handled, readability.position, MAX_ENTRIES_READ
                )
        except Exception:
            _log.exception("recomputing live queries of %s failed", collection)
        old_group = Group(first.id, before)
        made: list[tuple[ChangeEvent, Made | None]] = []
        for event in missed or ():
            try:
                made.append((event, await self.expanded(old_group, old_group.payload(event))))
            except Exception:
                _log.exception("recomputing live queries of %s failed", collection)
                missed = None
                break
        for move in batch:
            try:
                self._moved(move, readability, made if missed is not None else None)
            except Exception:  # its socket must not wait for ever
                _log.exception("bringing a live query of %s up to date failed", collection)
                self.end(move.connection, move.subscription, "it could not be recomputed")
                self._delivery.resume(move.connection.sid, drop=_from(move.subscription.group))

    def _moved(
        self,
        move: _Move,
        readability: Readability | None,
        missed: list[tuple[ChangeEvent, Made | None]] | None,
    ) -> None:
        """One moved subscription's socket gets the changes up to the readability
        read under the old plan, then what that read found, then what waited."""
        connection, subscription = move.connection, move.subscription
        sid, group = connection.sid, subscription.group
        if connection.subscriptions.get(subscription.id) is not subscription or group is None:
            self._delivery.resume(sid, drop=_from(group))
            return
        if readability is None or missed is None:
            self.end(connection, subscription, "too many of its items changed at once")
            self._delivery.resume(sid, drop=_from(group))
            return
        at = readability.position
        extra: list[tuple[tuple[int, int], Envelope]] = []
        for event, made in missed:
            if made is not None and (event.position or 0) > move.since:
                envelope = Envelope(*made, (sid,), event.position, personal=True)
                extra.append(((event.position or 0, 0), envelope))
        now = utcnow()
        for row in readability.added:
            made_row = group.made(row, now)
            envelope = Envelope("subscription.added", made_row, (sid,), at, personal=True)
            extra.append(((at, 1), envelope))
        for key in readability.removed:
            made_key = group.made({group.primary_key: key}, now)
            envelope = Envelope("subscription.removed", made_key, (sid,), at, personal=True)
            extra.append(((at, 1), envelope))
        self._settle(subscription, at)
        self.counts["moved"] += 1
        if subscription.stale:  # its rights changed again meanwhile: the socket waits for that
            subscription.stale = False
            self.refresh([connection])
        self._delivery.resume(sid, drop=_from(group, upto=at), extra=extra)
        self._spawn(self.save(connection))

    def collection_changed(self, collection: str) -> None:
        """Its schema changed (or it was dropped): its subscriptions end; subscribing
        again gets a snapshot of the new shape."""
        for group in [g for g in self._groups.values() if g.collection == collection]:
            for subscription in list(group.members.values()):
                connection = self._connections.get(subscription.sid)
                if connection is not None:
                    self.end(connection, subscription, f"the schema of {collection} changed")
                else:
                    self._detach(subscription)

    def end(self, connection: Connection, subscription: Subscription, reason: str) -> None:
        """End a subscription the server can no longer keep, and say why."""
        self._remove(connection, subscription)
        self.counts["ended"] += 1
        collection = subscription.live.collection
        self._delivery.deliver([self.ended(connection.sid, subscription.id, collection, reason)])
        self._spawn(self.save(connection))

    @staticmethod
    def ended(sid: str, sub_id: str, collection: Any, reason: str) -> Envelope:
        payload = stamped({"subscription": sub_id, "collection": collection, "reason": reason})
        return Envelope(ENDED, payload, (sid,))

    # -- sockets coming and going -------------------------------------------------------

    async def restore(self, connection: Connection, stored: list[Any]) -> list[Envelope]:
        """A recovered session's subscriptions, asked again with ``connection``'s rights
        now; those that cannot be the same as before end (the envelopes saying so)."""
        ended = []
        for entry in stored[: self.max_subscriptions]:
            try:
                sub_id, request = str(entry["id"]), entry["request"]
                since, mark = int(entry["since"]), str(entry["plan"])
            except (KeyError, TypeError, ValueError):
                continue
            collection = request.get("collection") if isinstance(request, dict) else None
            try:
                live, plan = await self._service.prepare(connection.who, request)
            except ServiceError as exc:
                ended.append(self.ended(connection.sid, sub_id, collection, exc.message))
                continue
            if live.id != sub_id or fingerprint(plan) != mark:
                reason = "its rights or its collection changed while the socket was away"
                ended.append(self.ended(connection.sid, sub_id, collection, reason))
                continue
            subscription = Subscription(sub_id, connection.sid, live, plan, since=since)
            connection.subscriptions[sub_id] = subscription
        if connection.subscriptions:
            await self._want(sorted({s.live.collection for s in connection.subscriptions.values()}))
        self.counts["ended"] += len(ended)
        return ended

    def enter(self, connection: Connection) -> None:
        """A recovered socket is in: its restored subscriptions follow changes again."""
        for subscription in connection.subscriptions.values():
            self._attach(subscription)
            if subscription.since is not None:
                self._settle(subscription, subscription.since)

    def forget(self, connection: Connection) -> None:
        for subscription in connection.subscriptions.values():
            self._detach(subscription)

    def collections(self) -> set[str]:
        """Collections some subscription here follows (a cluster keeps hearing of them)."""
        return self._index.collections()

    def stats(self) -> dict[str, Any]:
        members = sum(len(group.members) for group in self._groups.values())
        return {"subscriptions": members, "groups": len(self._groups), **self.counts}

    # -- groups -------------------------------------------------------------------------

    def _attach(self, subscription: Subscription) -> Group:
        key = group_key(subscription.id, subscription.plan)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(subscription.id, subscription.plan)
            self._index.add(group.collection, group, group.pin)
        group.members[subscription.sid] = subscription
        if subscription.since is None:
            group.unsettled.add(subscription.sid)
        subscription.group = group
        return group

    def _detach(self, subscription: Subscription) -> None:
        group, subscription.group = subscription.group, None
        if group is None or group.members.get(subscription.sid) is not subscription:
            return
        del group.members[subscription.sid]
        group.unsettled.discard(subscription.sid)
        if not group.members:
            del self._groups[group.key]
            self._index.remove(group.collection, group, group.pin)

    def _remove(self, connection: Connection, subscription: Subscription) -> None:
        self._detach(subscription)
        if connection.subscriptions.get(subscription.id) is subscription:
            del connection.subscriptions[subscription.id]

    def _settle(self, subscription: Subscription, position: int) -> None:
        """Its snapshot is at ``position``: changes up to there are not its own."""
        subscription.since = position
        group = subscription.group
        if group is None:
            return
        if position > self._progress.position:
            group.unsettled.add(subscription.sid)
        else:
            group.unsettled.discard(subscription.sid)


def _settled(group: Group, position: int) -> list[str]:
    """The members a change at ``position`` goes to: not those whose snapshot already
    holds it. (Those whose snapshot is being read get it; it waits with their socket.)"""
    skip = set()
    for sid in list(group.unsettled):
        since = group.members[sid].since
        if since is None:
            continue
        if position > since:
            group.unsettled.discard(sid)
        else:
            skip.add(sid)
    return [sid for sid in group.members if sid not in skip]


def _from(group: Group | None, upto: int | None = None) -> Callable[[Envelope], bool]:
    """Envelopes ``group`` made (up to position ``upto``, or all)."""

    def made_there(envelope: Envelope) -> bool:
        if envelope.source is not group or group is None:
            return False
        return upto is None or (envelope.position or 0) <= upto

    return made_there


def _refused(message: str) -> Ack:
    return {"success": False, "message": message}


async def _nothing(connection: Connection) -> None:
    return None
