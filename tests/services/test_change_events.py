"""Change events leave the items service only after commit, one per item, in order."""

from __future__ import annotations

from pathlib import Path

from livebase.app import create_app, services_of
from livebase.services.accountability import SYSTEM, Accountability
from livebase.services.errors import Forbidden, ValidationFailed
from livebase.services.events import ChangeEvent, Event
from livebase.services.query import Query
from tests.api.conftest import make_settings


async def test_events_are_published_after_commit_and_never_for_rollbacks(
    database_url: str, tmp_path: Path
) -> None:
    app = create_app(make_settings(database_url, tmp_path))
    async with app.router.lifespan_context(app):
        services = services_of(app)
        await services.schemas.create(
            SYSTEM,
            {
                "collectionName": "posts",
                "schema": {"fields": {"title": {"type": "String", "allowNull": False},
                                      "owner": {"type": "UUID"}}},
            },
        )  # fmt: skip
        seen: list[tuple[ChangeEvent, int]] = []

        async def subscriber(event: Event) -> None:
            if isinstance(event, ChangeEvent) and event.collection == "posts":
                # Read through another connection: the write must already be visible.
                visible, _ = await services.items.read_many(
                    "posts", _query({"id": {"eq": event.key}}), SYSTEM
                )
                seen.append((event, len(visible)))

        services.events.subscribe(subscriber)

        created = await services.items.create("posts", {"title": "a"}, SYSTEM)
        await services.items.update("posts", created["id"], {"title": "b"}, SYSTEM)
        assert [(e.action, n) for e, n in seen] == [("create", 1), ("update", 1)]
        assert seen[1][0].previous == {**seen[0][0].item}
        assert seen[1][0].item["title"] == "b"

        seen.clear()
        bad_last = [{"title": "x"}, {"title": "y"}, {"title": None}]
        try:
            await services.items.create_many("posts", bad_last, SYSTEM)
        except ValidationFailed as exc:
            assert exc.message.startswith("item 2:")
        else:
            raise AssertionError("the bulk write should have failed")
        assert seen == []

        # A write that is refused after the row was written (outside the
        # create conditions) is rolled back and publishes nothing.
        user = Accountability(user_id="00000000-0000-4000-8000-00000000abcd", role="user")
        await services.permissions.create(
            SYSTEM,
            {
                "role": "user",
                "collection": "posts",
                "action": "create",
                "conditions": {"owner": {"eq": "$CURRENT_USER"}},
            },
        )
        try:
            await services.items.create("posts", {"title": "z"}, user)
        except Forbidden:
            pass
        else:
            raise AssertionError("creating outside the conditions should be refused")
        assert seen == []
        rows, total = await services.items.read_many("posts", _query(None), SYSTEM)
        assert total == 1 and rows[0]["title"] == "b"

        await services.items.delete("posts", created["id"], SYSTEM)
        assert [(e.action, e.item["title"], n) for e, n in seen] == [("delete", "b", 0)]


def _query(condition: object) -> Query:
    return Query(filter=condition)
