"""has_lone_surrogate agrees with what Python's json decodes into unencodable text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from livebase.services.surrogates import has_lone_surrogate

PIECES = st.sampled_from(
    ["a", "\\\\", "\\n", "\\u0041", "\\ud83d", "\\ude00", "\\uD800", "\\uDFFF", "\\u", "é", " "]
)


def _unencodable(text: bytes) -> bool:
    try:
        json.loads(text)[0].encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@given(st.lists(PIECES, max_size=12))
def test_it_says_lone_exactly_when_the_decoded_string_cannot_be_utf8(pieces: list[str]) -> None:
    body = ('["' + "".join(pieces) + '"]').encode()
    try:
        json.loads(body)
    except ValueError:
        return  # not JSON (a bare "\u"): the parser refuses it anyway
    assert has_lone_surrogate(body) == _unencodable(body)


def test_ordinary_text_is_not_scanned_escape_by_escape() -> None:
    assert not has_lone_surrogate(b'{"title": "plain", "n": "\\u00e9"}')
    assert has_lone_surrogate(b'{"title": "\\ud800"}')
    assert not has_lone_surrogate(b'{"title": "\\\\ud800"}')
