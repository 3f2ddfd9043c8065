"""What :meth:`AuthService.authenticate` learnt from the database about live sessions.

Reading a session's state (revoked? the user's role and status) was a third
of a REST write's CPU. A process that is the only one serving its database
keeps the answers for sessions that were valid, and forgets them when a
session is revoked or any user changes; both pass through this process's
event bus (``SessionRevoked``, ``ChangeEvent`` on ``users``).

Several processes (Redis configured) do not use it: another process's logout
or suspension would reach this one over pub/sub a moment later, and a
revoked token must be refused at once everywhere, so there every request
reads the database as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from livebase.bounded import BoundedCache

# Bounded, since sessions come and go; refilling costs one query per session.
_MAX_SESSIONS = 10_000
# A safety net, not the mechanism: the events above forget an entry at once.
# The bound only matters if something changed the database behind this
# process's back (another process without Redis, a manual UPDATE).
MAX_AGE = 5.0


@dataclass(frozen=True)
class SessionState:
    user_id: str
    role: str
    loaded_at: float


class SessionCache:
    """Valid sessions by id. Refusals are never kept: they are answered from the database.

    A read that started before an invalidation must not store what it read:
    :meth:`generation` is taken before the query and :meth:`put` ignores the
    answer if anything was forgotten in between.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._states: BoundedCache[str, SessionState] = BoundedCache(_MAX_SESSIONS)
        self._generation = 0
        self._clock = clock

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, session_id: str) -> SessionState | None:
        state = self._states.get(session_id)
        if state is not None and self._clock() - state.loaded_at > MAX_AGE:
            del self._states[session_id]
            return None
        return state

    def put(self, session_id: str, user_id: str, role: str, generation: int) -> None:
        if generation == self._generation:
            self._states.put(session_id, SessionState(user_id, role, self._clock()))

    def forget_session(self, session_id: str) -> None:
        self._generation += 1
        self._states.pop(session_id, None)

    def forget_all(self) -> None:
        self._generation += 1
        self._states.clear()
