"""The change log as the services use it: positions, the relay's cursor, retention, stats."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from livebase.app import create_app, services_of
from livebase.services.accountability import SYSTEM
from livebase.services.container import Services
from livebase.services.events import ChangeEvent, Event
from livebase.storage.types import utcnow
from tests.api.conftest import make_settings

POSTS = {"collectionName": "posts", "schema": {"fields": {"title": {"type": "String"}}}}


async def _positions(services: Services) -> list[int]:
    async with services.db.connect() as conn:
        rows = await conn.execute(text("SELECT position FROM livebase_changes ORDER BY position"))
        return [row[0] for row in rows]


async def test_each_write_is_one_entry_published_once_in_order_with_its_position(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(make_settings(database_url, tmp_path))
    async with app.router.lifespan_context(app):
        services = services_of(app)
        await services.schemas.create(SYSTEM, POSTS)
        published: list[ChangeEvent] = []

        async def subscriber(event: Event) -> None:
            if isinstance(event, ChangeEvent) and event.collection == "posts":
                published.append(event)

        services.events.subscribe(subscriber)
        start = services.relay.published
        created = await services.items.create_many(
            "posts", [{"title": "a"}, {"title": "b"}], SYSTEM
        )
        await services.items.update("posts", created[0]["id"], {"title": "c"}, SYSTEM)
        await services.items.delete("posts", created[1]["id"], SYSTEM)

        assert [(e.action, e.item["title"]) for e in published] == [
            ("create", "a"), ("create", "b"), ("update", "c"), ("delete", "b"),
        ]  # fmt: skip
        positions = [e.position for e in published]
        assert all(p is not None and p > start for p in positions)
        assert positions == sorted(positions) and len(set(positions)) == 4
        assert published[2].previous is not None and published[2].previous["title"] == "a"
        assert published[3].previous == published[3].item  # a delete's last state
        assert services.relay.published == positions[-1]
        assert positions == [p for p in await _positions(services) if p > start]

        status = await services.relay.status()
        assert status["lastPosition"] == status["published"] == positions[-1]
        assert status["behind"] == 0 and status["publishingHere"] is True
        assert status["entries"] >= 4


async def test_retention_prunes_published_entries_only_and_the_cursor_survives_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, tmp_path, CHANGE_LOG_RETENTION=3600)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = services_of(app)
        await services.schemas.create(SYSTEM, POSTS)
        for title in ("old-1", "old-2"):
            await services.items.create("posts", {"title": title}, SYSTEM)
        old = await _positions(services)
        # Entries are pruned once published, saved and older than the retention;
        # ageing them is easier than waiting an hour.
        async with services.db.transaction() as conn:
            await conn.execute(
                text("UPDATE livebase_changes SET changed_at = :when"),
                {"when": _stored(services, utcnow() - timedelta(hours=2))},
            )
        await services.items.create("posts", {"title": "new"}, SYSTEM)
        for _ in range(100):  # the cursor is saved shortly (SAVE_EVERY) after publishing
            if await services.relay.log.published() >= services.relay.published:
                break
            await asyncio.sleep(0.05)
        saved = await services.relay.log.published()

        # Unpublished as far as the saved cursor knows: kept whatever their age.
        assert await services.relay.log.prune(utcnow(), published=min(old) - 1) == 0
        removed = await services.relay.prune()
        remaining = await _positions(services)
        assert removed == len(old) and remaining == [saved]

    # A new process starts from the saved cursor: nothing is published again.
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = services_of(app)
        assert services.relay.published == saved


def _stored(services: Services, when: object) -> object:
    """A timestamp as the change log stores it (SQLite: text, naive UTC)."""
    if services.db.is_sqlite:
        return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]  # type: ignore[attr-defined]
    return when
