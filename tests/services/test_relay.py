"""The change log relay (services/relay.py) with entries it cannot turn into events."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from pathlib import Path

import pytest

from livebase.app import create_app, services_of
from livebase.services.accountability import SYSTEM
from livebase.services.events import ChangeEvent, Event
from tests.api.conftest import make_settings


async def test_an_entry_another_writer_made_unreadable_is_skipped_not_a_stop_for_every_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "livebase.db"
    app = create_app(make_settings(f"sqlite:///{path}", tmp_path))
    async with app.router.lifespan_context(app):
        services = services_of(app)
        fields = {"day": {"type": "Date"}, "name": {"type": "String"}}
        await services.schemas.create(
            SYSTEM, {"collectionName": "days", "schema": {"fields": fields}}
        )
        seen: list[str] = []

        async def subscriber(event: Event) -> None:
            if isinstance(event, ChangeEvent) and event.collection == "days":
                seen.append(event.item["name"])

        services.events.subscribe(subscriber)

        # Another writer stores text a Date cannot hold (SQLite keeps any value);
        # its trigger logs it, and no event can be made of that entry.
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO days (id, day, name) VALUES (?, 'not a date', 'bad')",
                (str(uuid.uuid4()),),
            )
        with caplog.at_level(logging.ERROR, logger="livebase.relay"):
            # livebase's next write answers (it committed), and its event is published.
            await services.items.create("days", {"day": "2024-01-02", "name": "good"}, SYSTEM)
            await services.items.create("days", {"day": "2024-01-03", "name": "later"}, SYSTEM)
        assert seen == ["good", "later"]
        assert services.relay.published == await services.relay.log.last_position()
        skipped = [r for r in caplog.records if "cannot be published" in r.getMessage()]
        assert len(skipped) == 1 and "days" in skipped[0].getMessage()
