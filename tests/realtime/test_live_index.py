"""The index of live queries by pinned values (realtime/live_index.py)."""

from __future__ import annotations

from livebase.realtime.live_index import PinIndex, pin
from livebase.services import filters
from livebase.storage.kinds import FieldKind

KINDS = {"channel": FieldKind.STRING, "rank": FieldKind.INTEGER, "data": FieldKind.JSON}


def _pin(raw: object) -> object:
    return pin(filters.parse(raw, KINDS))


def test_eq_and_in_pin_a_field_alone_or_inside_and() -> None:
    assert _pin({"channel": "a"}) == ("channel", ("a",))
    assert _pin({"channel": {"in": ["a", "b"]}}) == ("channel", ("a", "b"))
    assert _pin({"rank": {"gt": 1}, "channel": {"eq": "a"}}) == ("channel", ("a",))
    # The fewest values win.
    both = {"AND": [{"channel": {"in": ["a", "b", "c"]}}, {"rank": {"in": [1, 2]}}]}
    assert _pin(both) == ("rank", (1, 2))


def test_or_ranges_negations_and_nothing_pin_nothing() -> None:
    for raw in (
        None,
        {"OR": [{"channel": "a"}, {"channel": "b"}]},
        {"rank": {"gt": 1}},
        {"channel": {"ne": "a"}},
        {"channel": {"notIn": ["a"]}},
        {"channel": {"isNull": True}},
        {"data": {"isNotNull": True}},
    ):
        assert _pin(raw) is None, raw


def test_an_empty_in_pins_no_value_so_no_change_finds_it() -> None:
    index: PinIndex[str] = PinIndex()
    index.add("posts", "never", _pin({"channel": {"in": []}}))  # type: ignore[arg-type]
    assert not index.candidates("posts", [{"channel": "a"}])


def test_candidates_are_the_entries_under_the_items_values_before_and_after() -> None:
    index: PinIndex[str] = PinIndex()
    index.add("posts", "a", ("channel", ("a",)))
    index.add("posts", "a or b", ("channel", ("a", "b")))
    index.add("posts", "rank 1", ("rank", (1,)))
    index.add("posts", "anything", None)
    index.add("other", "other a", ("channel", ("a",)))

    assert index.candidates("posts", [{"channel": "b", "rank": 2}]) == {"a or b", "anything"}
    moved = [{"channel": "a", "rank": 1}, {"channel": "c", "rank": 3}]
    assert index.candidates("posts", moved) == {"a", "a or b", "rank 1", "anything"}
    assert set(index.candidates("posts", [None, {"channel": "z"}])) == {"anything"}
    # Values that compare equal find each other (1 == 1.0); unhashable ones find nothing.
    assert index.candidates("posts", [{"rank": 1.0, "channel": ["x"]}]) == {"rank 1", "anything"}
    assert not index.candidates("nobody", [{"channel": "a"}])


def test_removing_entries_leaves_nothing_behind() -> None:
    index: PinIndex[str] = PinIndex()
    entries = [("a", ("channel", ("a",))), ("ab", ("channel", ("a", "b"))), ("all", None)]
    for entry, where in entries:
        index.add("posts", entry, where)  # type: ignore[arg-type]
    assert index.collections() == {"posts"}
    for entry, where in entries:
        index.remove("posts", entry, where)  # type: ignore[arg-type]
    assert index.collections() == set()
    assert index._pinned == {} and index._unpinned == {}
