"""A socket's live queries, and the groups that share their work.

A :class:`Subscription` is one socket's: its id, what it asked, the plan
(filter, scope, fields) the client's copy of the result follows, and the
position its snapshot was read at. Subscriptions with the same id and the
same plan, whichever sockets hold them, form one :class:`Group`: a change
is tested against the group's filter once and its payload made once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from livebase.realtime.live_index import Pin, pin
from livebase.services import filters
from livebase.services.events import ChangeEvent
from livebase.services.listing import Plan
from livebase.services.live import LiveQuery, transition

ENDED = "subscription.ended"


def fingerprint(plan: Plan) -> str:
    """The same for equal plans, in every process (a recovery compares them)."""
    text = repr((plan.condition, tuple(plan.fields), plan.expansion.described()))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class Group:
    """Identical subscriptions under one plan."""

    def __init__(self, sub_id: str, plan: Plan) -> None:
        self.id = sub_id
        self.collection = plan.collection.name
        self.key = group_key(sub_id, plan)
        self.plan = plan
        self.matches = filters.to_predicate(plan.condition)
        # The item's own fields and, with relations to expand, the keys they start
        # from (cut once the related items are in: LiveQueries.expanded).
        self.fields = tuple(plan.read)
        self.primary_key = plan.collection.primary_key
        self.pin: Pin | None = pin(plan.condition)
        self.members: dict[str, Subscription] = {}  # sid -> its subscription
        # Members whose snapshot is not known yet (None) or ahead of what came here.
        self.unsettled: set[str] = set()

    def payload(self, event: ChangeEvent) -> tuple[str, dict[str, Any]] | None:
        """The event ``event`` is to this group's subscribers, and its payload; None
        when it is none of theirs, or changed nothing they see."""
        before = event.previous if event.action != "create" else None
        after = event.item if event.action != "delete" else None
        kind = transition(self.matches, before, after)
        if kind is None:
            return None
        if kind == "subscription.removed":
            item = {self.primary_key: event.key}
        else:
            assert after is not None
            item = self.project(after)
            if (
                kind == "subscription.changed"
                and before is not None
                and item == self.project(before)
            ):
                return None  # nothing the subscriber sees changed
        return kind, self.made(item, event.timestamp)

    def project(self, row: dict[str, Any]) -> dict[str, Any]:
        return {name: row.get(name) for name in self.fields}

    def made(self, item: dict[str, Any], timestamp: Any) -> dict[str, Any]:
        return {
            "subscription": self.id,
            "collection": self.collection,
            "item": item,
            "timestamp": timestamp,
        }


def group_key(sub_id: str, plan: Plan) -> tuple[Any, ...]:
    # The expansion holds the read scope of every related collection: subscribers
    # with different rights there are in different groups.
    return (sub_id, plan.condition, tuple(plan.fields), plan.expansion)


@dataclass(eq=False)
class Subscription:
    id: str
    sid: str
    live: LiveQuery
    plan: Plan  # what the client's copy of the result follows
    since: int | None = None  # its snapshot's position; None until it is read
    group: Group | None = None
    stale: bool = False  # its subscriber's rights changed while its snapshot was read

    def stored(self) -> dict[str, Any]:
        """What a recovery needs to ask for it again (``stored_sessions.Record``)."""
        return {
            "id": self.id,
            "request": dict(self.live.request),
            "since": self.since or 0,
            "plan": fingerprint(self.plan),
        }
