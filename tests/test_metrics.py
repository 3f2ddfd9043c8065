"""The metrics module's own rules: label values stay few (the families themselves are
driven for real in tests/api/test_metrics.py and tests/realtime/test_metrics.py)."""

from __future__ import annotations

import pytest

from livebase import metrics


@pytest.mark.parametrize(
    ("event", "label"),
    [
        ("item.created", "item.created"),
        ("file.uploaded", "file.uploaded"),
        ("notification.new", "notification.new"),
        ("room.message", "room.message"),
        ("subscription.changed", "subscription.changed"),
        ("connected", "connected"),
        ("chat.message", "custom"),  # an extension's own event name
        ("sentinel", "custom"),
    ],
)
def test_event_types_are_livebases_own_or_custom(event: str, label: str) -> None:
    assert metrics.event_type(event) == label


def test_a_label_child_is_looked_up_once_per_event_name() -> None:
    by_type = metrics.ByEventType(metrics.FRAMES_DELIVERED)
    assert by_type("item.created") is by_type("item.created")
    assert by_type("chat.message") is by_type("chat.other")  # one "custom" child


def test_worker_files_name_their_pid() -> None:
    files = ["gauge_livesum_123.db", "counter_123.db", "gauge_livemostrecent_77.db", "x.db"]
    assert metrics._pids_of(files) == {123, 77}
