"""How deeply a client's JSON may nest, checked on the raw text before any parser.

A JSON parser recurses once per level: ``[`` a hundred thousand times makes
Python's ``json`` raise ``RecursionError`` and orjson give up at 1024 levels,
and whatever does decode still has to be walked (filters, validation,
encoding back out). No livebase document needs more than a few levels, so
every JSON text a client sends — request bodies and the ``filter``, ``sort``
and ``fields`` query parameters — is held to :data:`MAX_JSON_DEPTH` here,
with one clear 400.
"""

from __future__ import annotations

import re

from livebase.services.errors import BadRequest

MAX_JSON_DEPTH = 32

# A string literal, whose brackets do not count. An unterminated one runs to
# the end of the text, so that no input makes the match backtrack.
_STRING = re.compile(rb'"[^"\\]*(?:\\.?[^"\\]*)*(?:"|\Z)', re.DOTALL)
_OPEN = frozenset(b"[{")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


class TooDeep(BadRequest):
    code = "JSON_TOO_DEEP"


def exceeds_depth(raw: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` opens more than ``limit`` arrays/objects at once.

    Stops at the first level past ``limit``, so a hostile text costs no more
    than its first few brackets; a text with few brackets is not scanned at
    all. Text that is not JSON is left for the parser to refuse.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # the usual case, decided at C speed
    if b'"' in data:
        data = _STRING.sub(b"", data)
    depth = 0
    for bracket in data.translate(None, _NOT_BRACKETS):
        if bracket in _OPEN:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def check_depth(raw: str | bytes, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse ``raw`` with a 400 naming ``what`` if it nests deeper than ``limit``."""
    if exceeds_depth(raw, limit):
        raise TooDeep(f"{what} is nested more than {limit} levels deep")
