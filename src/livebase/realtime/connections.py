"""The sockets connected to this process, indexed by user, session and role."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from livebase.realtime.subscriptions import Subscription
from livebase.services.accountability import Accountability


@dataclass
class Connection:
    sid: str
    eio_sid: str
    who: Accountability
    collections: set[str] = field(default_factory=set)  # collection rooms joined
    # Collection rooms it left on request: joining automatically never brings them back.
    left: set[str] = field(default_factory=set)
    rooms: set[str] = field(default_factory=set)  # other rooms joined on request (item, custom)
    expiry: int | None = None  # the token-expiry timer's slot on the server's Timers
    dropped: bool = False  # a disconnect is under way
    # Recovery (docs/realtime.md, "Reconnecting without losing events"); None: opted out.
    pid: str | None = None  # the private session id the client presents to recover
    sent: int = 0  # the newest change-log position written to this socket
    start: int = 0  # the position it was brought up to when its session began
    generation: int = 0  # how many times its session was recovered
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # live queries, by id
    tracked: dict[str, Any] = field(default_factory=dict)  # room -> its presence state there
    # Its broadcasts' token bucket (realtime/broadcasts.py): tokens left, and when.
    broadcast_tokens: float = 0.0
    broadcast_at: float = 0.0
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def user_id(self) -> str | None:
        return self.who.user_id

    @property
    def role(self) -> str:
        return self.who.role

    @property
    def expires_at(self) -> datetime | None:
        return self.who.expires_at


@dataclass(frozen=True)
class SocketTakenOver:
    """A reconnect recovered socket ``sid``'s session: wherever the old socket still
    is, it goes without a word (its user never left)."""

    sid: str


class Connections:
    def __init__(self) -> None:
        self.by_sid: dict[str, Connection] = {}
        self._by_user: defaultdict[str, set[str]] = defaultdict(set)
        self._by_session: defaultdict[str, set[str]] = defaultdict(set)

    def add(self, connection: Connection) -> None:
        self.by_sid[connection.sid] = connection
        if connection.user_id is not None:
            self._by_user[connection.user_id].add(connection.sid)
        if connection.who.session_id is not None:
            self._by_session[connection.who.session_id].add(connection.sid)

    def remove(self, sid: str) -> Connection | None:
        connection = self.by_sid.pop(sid, None)
        if connection is None:
            return None
        for index, key in (
            (self._by_user, connection.user_id),
            (self._by_session, connection.who.session_id),
        ):
            if key is not None:
                index[key].discard(sid)
                if not index[key]:
                    del index[key]
        return connection

    def get(self, sid: str) -> Connection | None:
        return self.by_sid.get(sid)

    def of_user(self, user_id: str) -> list[Connection]:
        return [self.by_sid[sid] for sid in self._by_user.get(user_id, ())]

    def of_session(self, session_id: str) -> list[Connection]:
        return [self.by_sid[sid] for sid in self._by_session.get(session_id, ())]

    def of_role(self, role: str | None) -> list[Connection]:
        return [c for c in self.by_sid.values() if role is None or c.role == role]

    def user_count(self, user_id: str) -> int:
        return len(self._by_user.get(user_id, ()))

    @property
    def users(self) -> int:
        return len(self._by_user)

    def __len__(self) -> int:
        return len(self.by_sid)
