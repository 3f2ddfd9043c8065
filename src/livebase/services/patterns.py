"""``validate.is`` patterns, run by RE2 so that no pattern can stall the event loop.

Python's ``re`` backtracks: ``(a+)+$`` against a few dozen characters takes
seconds, doubling per character, and a check runs on the event loop. RE2 runs
in time linear in the value whatever the pattern; what it gives up for that
(backreferences, lookarounds) is refused when a schema is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

# A pattern is part of a schema, not data: a field rule longer than this is a mistake or an attack.
MAX_PATTERN_LENGTH = 1000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the client's 400, not a line on stderr


@dataclass(frozen=True)
class FieldPattern:
    """A compiled ``validate.is`` pattern, or why it could not be compiled.

    A stored schema written before RE2 may hold a pattern RE2 refuses; it
    still loads (the collection stays readable), and ``refusal`` says why
    values for that field cannot be checked.
    """

    source: object
    compiled: Any = field(default=None, compare=False, repr=False)
    refusal: str | None = None

    def found_in(self, value: str) -> bool:
        """Whether the pattern occurs anywhere in ``value`` (a search, as ``re.search``)."""
        if self.compiled is None:
            raise ValueError(f"pattern {self.source!r} is unusable: {self.refusal}")
        return self.compiled.search(value) is not None


def compile_pattern(source: object) -> FieldPattern:
    """Compile ``source`` once for every value the field will get; never raises."""
    if not isinstance(source, str):
        return FieldPattern(source, refusal="must be a string")
    if len(source) > MAX_PATTERN_LENGTH:
        return FieldPattern(source, refusal=f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return FieldPattern(source, re2.compile(source, _OPTIONS))
    except re2.error as exc:
        return FieldPattern(source, refusal=_reason(exc))


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return f"RE2 cannot compile it: {detail} (RE2 has no backreferences or lookarounds)"
