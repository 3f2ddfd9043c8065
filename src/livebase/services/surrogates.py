"""Lone UTF-16 surrogates in a client's JSON text, found before any parser.

JSON may spell a character as ``\\ud83d\\ude00``, a high and a low surrogate
escape in a row. Python's ``json`` decodes a lone one (``"\\ud800"``) into a
string that cannot be encoded as UTF-8, so it would fail only later, in the
database driver, the event encoder or a log line: a 500 from a 20-byte body.
Refusing it up front, once for every JSON body, keeps every later layer free
of strings it cannot store.
"""

from __future__ import annotations

import re

from livebase.services.errors import BadRequest

# A surrogate escape anywhere: the cheap test that lets ordinary text through.
_ANY_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
# Every escape, left to right: ``\\`` is consumed whole, so the ``u`` in
# ``\\\\ud800`` (an escaped backslash, then text) is not taken for an escape.
_ESCAPE = re.compile(rb"\\(?:u([0-9a-fA-F]{4})|[^u])")


def has_lone_surrogate(raw: bytes) -> bool:
    """Whether the JSON text ``raw`` escapes a surrogate that is not in a pair."""
    if b"\\u" not in raw or not _ANY_SURROGATE.search(raw):
        return False
    high_ended_at = None  # where the escape of an unpaired high surrogate ended
    for escape in _ESCAPE.finditer(raw):
        code = escape.group(1)
        value = int(code, 16) if code is not None else None
        is_low = value is not None and 0xDC00 <= value <= 0xDFFF
        if high_ended_at is not None:
            if not is_low or escape.start() != high_ended_at:
                return True
            high_ended_at = None
        elif is_low:
            return True
        elif value is not None and 0xD800 <= value <= 0xDBFF:
            high_ended_at = escape.end()
    return high_ended_at is not None


class LoneSurrogate(BadRequest):
    code = "INVALID_UNICODE"


def check_surrogates(raw: bytes, what: str) -> None:
    """Refuse ``raw`` with a 400 naming ``what`` if it escapes a lone surrogate."""
    if has_lone_surrogate(raw):
        raise LoneSurrogate(
            f"{what} escapes a lone UTF-16 surrogate (\\ud800-\\udfff not in a pair)"
        )
