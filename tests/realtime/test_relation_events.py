"""A cascade or SET NULL emits one event per row it changed (SPEC §14), from the change log.

The database does onDelete; the change log's triggers see each row it
changes, so the events come whoever deleted the target: livebase, or plain
SQL through another connection. Each test ends with a later write (a
sentinel) that reaches the socket: events arrive in change-log order, so
once it is there, no other event of the cascade is still coming.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.api.test_relationships import relate
from tests.realtime.conftest import Client, Live
from tests.realtime.outside import Outside

ITEM_EVENTS = ("item.created", "item.updated", "item.deleted")


@pytest.fixture
def transport() -> str:
    """Cascades are about the change log, not the transport: WebSocket only."""
    return "websocket"


async def setup(live: Live) -> tuple[Client, dict[str, Any]]:
    """teams; members (team → teams, CASCADE); notes (team → teams, SET NULL); one team
    with two members and a note, a note of no team; an administrator's socket in all
    three collection rooms."""
    api = live.api
    for name in ("teams", "members", "notes"):
        await api.collection(name, {"name": {"type": "String"}})
    await relate(api, "members", name="team", type="M2O", target="teams", onDelete="CASCADE")
    await relate(api, "notes", name="team", type="M2O", target="teams", alias="notes")

    async def create(collection: str, **values: Any) -> str:
        body = await api.ok("POST", f"/items/{collection}", 201, headers=api.admin, json=values)
        return str(body["data"]["id"])

    team = await create("teams", name="t")
    made = {
        "team": team,
        "members": {await create("members", name=n, team_Id=team) for n in ("a", "b")},
        "note": await create("notes", name="n", team_Id=team),
        "loose": await create("notes", name="loose"),
    }
    client = await live.connect(api.admin_token, "admin")
    for room in ("collection:teams", "collection:members", "collection:notes"):
        assert (await client.call("join", room))["success"] is True
    return client, made


async def after_sentinel(live: Live, client: Client) -> Counter[tuple[str, str, Any]]:
    """Write a sentinel team, wait for its event; every item event got before it, counted."""
    body = await live.api.ok(
        "POST", "/items/teams", 201, headers=live.api.admin, json={"name": "sentinel"}
    )
    sentinel = body["data"]["id"]
    await client.wait_for("item.created", lambda p: p["item"]["id"] == sentinel)
    seen: Counter[tuple[str, str, Any]] = Counter()
    for name, payload in client.events:
        if name in ITEM_EVENTS and payload["item"]["id"] != sentinel:
            seen[(name, payload["collection"], payload["item"]["id"])] += 1
    return seen


def expected(made: dict[str, Any]) -> Counter[tuple[str, str, Any]]:
    return Counter(
        [
            ("item.deleted", "teams", made["team"]),
            *(("item.deleted", "members", m) for m in made["members"]),
            ("item.updated", "notes", made["note"]),
        ]
    )


async def test_a_cascade_and_a_set_null_emit_one_event_per_row(live: Live) -> None:
    client, made = await setup(live)
    await live.api.ok("DELETE", f"/items/teams/{made['team']}", headers=live.api.admin)
    assert await after_sentinel(live, client) == expected(made)
    (updated,) = [p for n, p in client.events if n == "item.updated"]
    assert updated["item"]["team_Id"] is None and updated["item"]["name"] == "n"


async def test_a_cascade_started_outside_livebase_is_reported(
    live: Live, database_url: str
) -> None:
    client, made = await setup(live)
    outside = Outside(database_url)
    await outside.run([outside.delete("teams", made["team"])])
    assert await after_sentinel(live, client) == expected(made)
    (updated,) = [p for n, p in client.events if n == "item.updated"]
    assert updated["item"]["team_Id"] is None
