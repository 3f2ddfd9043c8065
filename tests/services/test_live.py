"""Live queries' rules (services/live.py): transitions, identity, and the reads a
change of rights makes, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livebase.app import create_app, services_of
from livebase.services import filters, listing
from livebase.services.accountability import SYSTEM
from livebase.services.live import LiveQuery, transition
from livebase.services.permissions import Scope
from livebase.services.query import Query
from tests.api.conftest import make_settings


def test_a_change_is_added_changed_removed_or_nothing_from_its_two_states() -> None:
    general = filters.to_predicate(filters.parse({"channel": "g"}, {"channel": _STRING}))
    g, r = {"channel": "g"}, {"channel": "r"}
    assert transition(general, None, g) == "subscription.added"  # created matching
    assert transition(general, None, r) is None
    assert transition(general, g, g) == "subscription.changed"
    assert transition(general, r, g) == "subscription.added"  # into the filter
    assert transition(general, g, r) == "subscription.removed"  # out of it
    assert transition(general, r, r) is None
    assert transition(general, g, None) == "subscription.removed"  # deleted
    assert transition(general, r, None) is None


def test_a_subscriptions_identity_is_what_it_asks_in_any_key_order() -> None:
    def live(request: dict[str, Any], **query: Any) -> LiveQuery:
        return LiveQuery("posts", Query(**query), request)

    one = live({}, filter={"a": 1, "b": {"in": [1, 2]}}, fields=["x"], sort=[("x", True)])
    same = live({"limit": 5}, filter={"b": {"in": [1, 2]}, "a": 1}, fields=["x"], limit=5)
    assert one.id == same.id
    assert live({}, filter={"a": 1}).id != one.id
    assert live({}, filter={"a": 1, "b": {"in": [1, 2]}}, fields=["y"]).id != one.id
    assert LiveQuery("other", one.query, {}).id != one.id
    # Every readable field, however it is asked.
    every = {live({}, fields=f).id for f in (None, [], ["*"], ["x", "*"])}
    assert len(every) == 1
    assert live({}, filter={}).id == live({}).id


async def test_readability_reads_what_a_change_of_rights_adds_and_removes(
    database_url: str, tmp_path: Path
) -> None:
    """NULLs included: a row whose condition is unknown (NULL) is not readable."""
    app = create_app(make_settings(database_url, tmp_path))
    async with app.router.lifespan_context(app):
        services = services_of(app)
        await services.schemas.create(
            SYSTEM,
            {
                "collectionName": "posts",
                "schema": {"fields": {"channel": {"type": "String"}, "n": {"type": "Integer"}}},
            },
        )
        keys = {}
        for channel in ("a", "b", None):
            created = await services.items.create("posts", {"channel": channel, "n": 1}, SYSTEM)
            keys[channel] = created["id"]
        posts = await services.registry.get("posts")

        def plan(condition: object, fields: list[str] | None = None) -> listing.Plan:
            scope = Scope(None, filters.parse(condition, posts.kinds))
            return listing.plan(posts, scope, Query(fields=fields))

        live = services.live
        moved = await live.readability(
            plan({"channel": "a"}), plan({"channel": {"isNull": True}}, ["n"]), 10
        )
        assert moved is not None
        assert moved.added == [{"id": keys[None], "n": 1}]
        assert moved.removed == [keys["a"]]
        assert moved.position == await services.relay.log.last_position()

        # "ne" leaves NULL out; reading everything afterwards adds it and "a".
        opened = await live.readability(plan({"channel": {"ne": "a"}}), plan(None, ["channel"]), 10)
        assert opened is not None and opened.removed == []
        assert sorted(map(str, (r["channel"] for r in opened.added))) == ["None", "a"]

        assert await live.readability(plan({"n": 2}), plan(None), 2) is None  # 3 > 2 changed

        rows, position = await live.snapshot(LiveQuery("posts", Query(), {}), plan(None))
        assert len(rows) == 3 and position == moved.position


_STRING = filters.FieldKind.STRING
