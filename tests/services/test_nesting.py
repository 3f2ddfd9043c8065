"""exceeds_depth: brackets counted outside strings only, and no input makes it slow."""

from __future__ import annotations

import json

import pytest

from livebase.services.nesting import exceeds_depth


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": "x"}]}', 3),
        ('{"a": "[[[[{{{{"}', 1),
        (json.dumps({"a": '\\"[[[['}), 1),
        (json.dumps([[["\\"]]]), 3),
        ("[[], [[]], []]", 3),
        ("[" * 5 + "]" * 5, 5),
    ],
)
def test_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    for raw in (text, text.encode()):
        if depth:
            assert exceeds_depth(raw, depth - 1)
        assert not exceeds_depth(raw, depth)


@pytest.mark.parametrize(
    "text",
    [
        '"' + '\\"' * 1_000_000,  # an unterminated string of escaped quotes
        '"' + '\\"' * 1_000_000 + "\\",
        '"a' * 1_000_000,
        "[" + '"[",' * 500_000 + "1]",
    ],
)
def test_hostile_strings_are_scanned_in_one_pass(text: str) -> None:
    # Quadratic backtracking on these would take minutes; the per-test timeout catches it.
    assert not exceeds_depth(text.encode(), 1)
