"""How far the change log has been handled here, and offsets as clients see them.

Every event a recovery-capable socket receives ends with an **offset**: the
change-log position that socket has been brought up to (docs/realtime.md,
"Reconnecting without losing events"). An event from the log carries its
own position; any other event carries the position this process had
handled when it was sent, so a client's last offset is always a real one.
"""

from __future__ import annotations


class Progress:
    """The newest change-log position whose event this process has finished handling.

    Set after the event was written to every socket it goes to, never
    before: an event sent meanwhile (a hook's emit, presence) must not carry
    an offset past an event the socket is still owed.
    """

    def __init__(self) -> None:
        self.position = 0


def offset(position: int) -> str:
    return str(position)


def position_of(value: object) -> int | None:
    """The position an offset a client sent stands for; None if it is not one of ours."""
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
        return None  # refuses signs, spaces, other scripts' digits and the empty string
    if len(value) > 18:
        return None
    return int(value)
