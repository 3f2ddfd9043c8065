"""Rows written by another process reach sockets through the change log, as livebase's own do.

The writer is another process that never talks to livebase: ``sqlite3`` in a
Python subprocess on the server's database file, or ``psql`` (see
``tests/realtime/outside.py``, which also says how each field kind must be
written). Only the change log's triggers and its relay can tell livebase.

Negative cases ("never reaches it") are shown with a later write that does
reach the socket: the relay publishes in position order and a socket gets
its events in order, so once the later event is there, the earlier one
would have been too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from tests.helpers import bearer
from tests.realtime.conftest import TIMEOUT, Client, Live
from tests.realtime.outside import Outside, Statement

# From the outside commit (the writer process has exited) to the sockets.
OUTSIDE_DELAY = 1.0
ITEM_EVENTS = {"item.created": "create", "item.updated": "update", "item.deleted": "delete"}

THINGS = {
    "title": {"type": "String"},
    "owner": {"type": "UUID"},
    "count": {"type": "Integer"},
    "big": {"type": "BigInt"},
    "ratio": {"type": "Double"},
    "price": {"type": "Decimal", "precision": 10, "scale": 2},
    "done": {"type": "Boolean"},
    "due": {"type": "DateTime"},
    "day": {"type": "Date"},
    "meta": {"type": "JSON"},
    "notes": {"type": "Text"},
}
THING_KINDS = {
    "id": "UUID",
    "createdAt": "DateTime",
    "updatedAt": "DateTime",
    **{name: spec["type"] for name, spec in THINGS.items()},
}
# What each role may read of things.
OWNER_FIELDS = ["id", "title", "owner", "count"]  # role "user": its own things
READER_FIELDS = ["id", "title", "count", "due", "price", "done"]  # role "reader": big ones
READER_CONDITION = {"count": {"gt": 10}, "due": {"gte": "2024-01-01T00:00:00Z"}}


@pytest.fixture
def transport() -> str:
    """Outside writes are about the change log, not the transport: WebSocket only."""
    return "websocket"


@pytest.fixture
def outside(database_url: str) -> Outside:
    return Outside(database_url)


@contextlib.asynccontextmanager
async def within_a_second(what: str) -> AsyncIterator[None]:
    """The block (waiting for events) must end within OUTSIDE_DELAY seconds."""
    try:
        async with asyncio.timeout(OUTSIDE_DELAY):
            yield
    except TimeoutError:
        raise AssertionError(f"{what}: not within {OUTSIDE_DELAY} s of the commit") from None


async def arrives(client: Client, event: str, key: Any) -> dict[str, Any]:
    payload = await client.wait_for(event, lambda p: p["item"]["id"] == key)
    return dict(payload)


async def all_of(*waits: Awaitable[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*waits))


def seen(client: Client, collection: str) -> list[tuple[str, Any]]:
    """The item events of ``collection`` a client got, in order: (event, key)."""
    return [
        (name, payload["item"]["id"])
        for name, payload in client.events
        if name in ITEM_EVENTS and payload["collection"] == collection
    ]


async def rest_item(live: Live, collection: str, key: Any) -> dict[str, Any]:
    body = await live.api.ok("GET", f"/items/{collection}/{key}", headers=live.api.admin)
    return dict(body["data"])


def typed(value: Any) -> str:
    """A value's JSON, keys sorted: equal only if types are too (``1`` is not ``true``)."""
    return json.dumps(value, sort_keys=True)


def cut(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {name: item[name] for name in fields}


def stamp(day: int) -> datetime:
    return datetime(2024, 5, day, 7, 8, 9, 123456, tzinfo=UTC)


async def test_outside_insert_update_delete_reach_sockets_with_the_normal_rules(
    live: Live, outside: Outside
) -> None:
    await live.api.collection("things", THINGS)
    ann_token, ann = await live.api.user("ann@example.com")
    bob_token, bob = await live.api.user("bob@example.com")
    carol_token, carol = await live.api.user("carol@example.com")
    await live.api.ok("POST", "/roles", 201, headers=live.api.admin, json={"name": "reader"})
    await live.api.ok(
        "PATCH", f"/items/users/{carol['id']}", headers=live.api.admin, json={"role": "reader"}
    )
    await live.api.allow(
        "user", "things", "read", fields=OWNER_FIELDS, conditions={"owner": {"eq": "$CURRENT_USER"}}
    )
    await live.api.allow(
        "reader", "things", "read", fields=READER_FIELDS, conditions=READER_CONDITION
    )
    admin = await live.connect(live.api.admin_token, "admin")
    ann_socket = await live.connect(ann_token, "ann")
    bob_socket = await live.connect(bob_token, "bob")
    carol_socket = await live.connect(carol_token, "carol")

    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    meta = {"tags": ["x", "y"], "n": 0.30000000000000004, "deep": {"ok": True, "none": None}}
    row_a = {
        "id": a,
        "title": "A",
        "owner": ann["id"],
        "count": 5,
        "big": 2**53 + 1,  # no double holds it
        "ratio": 1 / 3,
        "price": Decimal("12.34"),
        "done": True,
        "due": stamp(6),
        "day": date(2024, 5, 6),
        "meta": meta,
        "notes": "two\nlines, 'quoted', ünïcode",
        "createdAt": stamp(1),
        "updatedAt": stamp(1),
    }

    # Insert A: ann's, count 5. Admin and ann see it; bob (not his) and carol (count <= 10) not.
    await outside.run([outside.insert("things", row_a, THING_KINDS)])
    async with within_a_second("item.created of A"):
        created, ann_created = await all_of(
            arrives(admin, "item.created", a), arrives(ann_socket, "item.created", a)
        )
    stored = await rest_item(live, "things", a)
    assert typed(created["item"]) == typed(stored)  # typed as a read types them
    assert typed(stored) == typed(
        {
            **{k: v for k, v in row_a.items() if k not in ("price", "due", "day", "createdAt")},
            "price": "12.34",
            "due": "2024-05-06T07:08:09.123456Z",
            "day": "2024-05-06",
            "createdAt": "2024-05-01T07:08:09.123456Z",
            "updatedAt": "2024-05-01T07:08:09.123456Z",
        }
    )
    assert typed(ann_created["item"]) == typed(cut(stored, OWNER_FIELDS))
    assert created["userId"] is None and ann_created["userId"] is None

    # Insert B: bob's, count 20. Admin, bob and carol see it; ann not.
    row_b = {**row_a, "id": b, "title": "B", "owner": bob["id"], "count": 20, "due": stamp(7)}
    await outside.run([outside.insert("things", row_b, THING_KINDS)])
    async with within_a_second("item.created of B"):
        created, bob_created, carol_created = await all_of(
            arrives(admin, "item.created", b),
            arrives(bob_socket, "item.created", b),
            arrives(carol_socket, "item.created", b),
        )
    stored_b = await rest_item(live, "things", b)
    assert typed(created["item"]) == typed(stored_b)
    assert typed(bob_created["item"]) == typed(cut(stored_b, OWNER_FIELDS))
    assert typed(carol_created["item"]) == typed(cut(stored_b, READER_FIELDS))
    assert {created["userId"], bob_created["userId"], carol_created["userId"]} == {None}
    # B came after A: A never reached bob nor carol.
    assert seen(bob_socket, "things") == [("item.created", b)]
    assert seen(carol_socket, "things") == [("item.created", b)]

    # Update A, every kind, count 15: now carol's too.
    changes = {
        "title": "A2",
        "count": 15,
        "big": -(2**62),
        "ratio": 2.5e-7,
        "price": Decimal("0.05"),
        "done": False,
        "due": stamp(9),
        "day": date(2024, 12, 31),
        "meta": [1, "two", None, {"x": 1.5}],
        "notes": None,
        "updatedAt": stamp(2),
    }
    await outside.run([outside.update("things", a, changes, THING_KINDS)])
    async with within_a_second("item.updated of A"):
        updated, ann_updated, carol_updated = await all_of(
            arrives(admin, "item.updated", a),
            arrives(ann_socket, "item.updated", a),
            arrives(carol_socket, "item.updated", a),
        )
    stored = await rest_item(live, "things", a)
    assert typed(updated["item"]) == typed(stored)
    assert stored["price"] == "0.05" and stored["done"] is False and stored["notes"] is None
    assert stored["meta"] == changes["meta"] and stored["big"] == -(2**62)
    assert typed(ann_updated["item"]) == typed(cut(stored, OWNER_FIELDS))
    assert typed(carol_updated["item"]) == typed(cut(stored, READER_FIELDS))
    assert {updated["userId"], ann_updated["userId"], carol_updated["userId"]} == {None}
    # The update of A came after B: B never reached ann.
    assert seen(ann_socket, "things") == [("item.created", a), ("item.updated", a)]

    # Update B to count 3: carol no longer matches it.
    await outside.run([outside.update("things", b, {"count": 3}, THING_KINDS)])
    async with within_a_second("item.updated of B"):
        updated, _ = await all_of(
            arrives(admin, "item.updated", b), arrives(bob_socket, "item.updated", b)
        )
    assert typed(updated["item"]) == typed(await rest_item(live, "things", b))

    # Delete A: its last state (count 15) still matches carol; bob never.
    await outside.run([outside.delete("things", a)])
    async with within_a_second("item.deleted of A"):
        deleted, ann_deleted, carol_deleted = await all_of(
            arrives(admin, "item.deleted", a),
            arrives(ann_socket, "item.deleted", a),
            arrives(carol_socket, "item.deleted", a),
        )
    assert typed(deleted["item"]) == typed(stored)  # the last state, as read before
    assert typed(ann_deleted["item"]) == typed(cut(stored, OWNER_FIELDS))
    assert typed(carol_deleted["item"]) == typed(cut(stored, READER_FIELDS))
    assert {deleted["userId"], ann_deleted["userId"], carol_deleted["userId"]} == {None}

    # Delete B (count 3): admin and bob only.
    last_b = await rest_item(live, "things", b)
    await outside.run([outside.delete("things", b)])
    async with within_a_second("item.deleted of B"):
        deleted, bob_deleted = await all_of(
            arrives(admin, "item.deleted", b), arrives(bob_socket, "item.deleted", b)
        )
    assert typed(deleted["item"]) == typed(last_b)
    assert typed(bob_deleted["item"]) == typed(cut(last_b, OWNER_FIELDS))

    # Every event of B's delete has been routed (admin has it): a sentinel now
    # comes after anything the others were sent.
    await live.sentinel(ann_socket, bob_socket, carol_socket)
    assert seen(admin, "things") == [
        ("item.created", a), ("item.created", b), ("item.updated", a),
        ("item.updated", b), ("item.deleted", a), ("item.deleted", b),
    ]  # fmt: skip
    assert seen(ann_socket, "things") == [
        ("item.created", a), ("item.updated", a), ("item.deleted", a),
    ]  # fmt: skip
    assert seen(bob_socket, "things") == [
        ("item.created", b), ("item.updated", b), ("item.deleted", b),
    ]  # fmt: skip
    assert seen(carol_socket, "things") == [
        ("item.created", b), ("item.updated", a), ("item.deleted", a),
    ]  # fmt: skip


# Doubles whose 17-significant-digit text SQLite 3.40's printf() gets wrong in the
# last digit (it is not correctly rounded), and the usual edge cases.
DOUBLES = [
    1.1605484452052872e291,
    1.3464325667456845e250,
    1.1180820828541572e102,
    1.7976931348623157e308,
    2.2250738585072014e-308,
    5e-324,
    0.1,
    1 / 3,
]


async def test_doubles_of_any_magnitude_reach_sockets_exactly(live: Live, outside: Outside) -> None:
    await live.api.collection("numbers", {"value": {"type": "Double"}})
    admin = await live.connect(live.api.admin_token, "admin")
    kinds = {"id": "UUID", "value": "Double"}
    keys = [str(uuid.uuid4()) for _ in DOUBLES]
    rows = [{"id": key, "value": value} for key, value in zip(keys, DOUBLES, strict=True)]
    await outside.run([outside.insert("numbers", row, kinds) for row in rows])
    async with within_a_second("the doubles"):
        events = await all_of(*(arrives(admin, "item.created", key) for key in keys))
    for event, value in zip(events, DOUBLES, strict=True):
        stored = await rest_item(live, "numbers", event["item"]["id"])
        assert typed(stored["value"]) == typed(value)
        assert typed(event["item"]) == typed(stored), value


async def test_decimals_beyond_15_digits_reach_sockets_as_a_read_returns_them(
    live: Live, outside: Outside
) -> None:
    field = {"type": "Decimal", "precision": 20, "scale": 4}
    await live.api.collection("amounts", {"value": field})
    admin = await live.connect(live.api.admin_token, "admin")
    key = str(uuid.uuid4())
    value = Decimal("1234567890123456.7891")
    kinds = {"id": "UUID", "value": "Decimal"}
    await outside.run([outside.insert("amounts", {"id": key, "value": value}, kinds)])
    async with within_a_second("the decimal"):
        created = await arrives(admin, "item.created", key)
    stored = await rest_item(live, "amounts", key)
    if not outside.sqlite:  # SQLite keeps a double: 15 digits, there as in reads
        assert stored["value"] == str(value)
    assert typed(created["item"]) == typed(stored)


async def test_after_a_schema_change_outside_writes_carry_the_new_field(
    live: Live, outside: Outside
) -> None:
    await live.api.collection("notes", {"title": {"type": "String"}, "old": {"type": "Integer"}})
    admin = await live.connect(live.api.admin_token, "admin")
    patched = await live.api.ok(
        "PATCH",
        "/schemas/notes",
        headers=live.api.admin,
        json={"schema": {"fields": {"old": None, "rank": {"type": "Integer"}}}},
    )
    assert set(patched["data"]["schema"]["fields"]) >= {"title", "rank"}
    kinds = {"id": "UUID", "title": "String", "rank": "Integer", "createdAt": "DateTime"}
    key = str(uuid.uuid4())
    row = {"id": key, "title": "new field", "rank": 7, "createdAt": stamp(3)}
    await outside.run([outside.insert("notes", row, kinds)])
    async with within_a_second("item.created after the schema change"):
        created = await arrives(admin, "item.created", key)
    assert created["item"]["rank"] == 7 and "old" not in created["item"]
    assert typed(created["item"]) == typed(await rest_item(live, "notes", key))

    await outside.run([outside.update("notes", key, {"rank": 8}, kinds)])
    async with within_a_second("item.updated after the schema change"):
        updated = await arrives(admin, "item.updated", key)
    assert updated["item"]["rank"] == 8


async def test_a_rolled_back_outside_transaction_produces_no_event(
    live: Live, outside: Outside
) -> None:
    await live.api.collection("notes", {"title": {"type": "String"}})
    admin = await live.connect(live.api.admin_token, "admin")
    kinds = {"id": "UUID", "title": "String"}
    gone, kept = str(uuid.uuid4()), str(uuid.uuid4())
    existing = (
        await live.api.ok("POST", "/items/notes", 201, headers=live.api.admin, json={"title": "e"})
    )["data"]["id"]
    await admin.wait_for("item.created", lambda p: p["item"]["id"] == existing)
    # Rolled back: an insert, an update and a delete, each a change the log saw at the time.
    await outside.run(
        [
            outside.insert("notes", {"id": gone, "title": "rolled back"}, kinds),
            outside.update("notes", existing, {"title": "rolled back"}, kinds),
            outside.delete("notes", existing),
        ],
        end="ROLLBACK",
    )
    await outside.run([outside.insert("notes", {"id": kept, "title": "kept"}, kinds)])
    async with within_a_second("the committed insert"):
        await arrives(admin, "item.created", kept)
    assert seen(admin, "notes") == [("item.created", existing), ("item.created", kept)]
    async with live.services.db.connect() as conn:
        logged = await conn.execute(
            text("SELECT item_key, action FROM livebase_changes WHERE collection = 'notes'")
        )
        assert sorted(logged.all()) == sorted([(existing, "create"), (kept, "create")])
    assert (await rest_item(live, "notes", existing))["title"] == "e"


CONCURRENT_TASKS = 8
CREATES_PER_TASK = 25
SHARED = 3  # items everyone updates at once
REST_UPDATES = 10  # per shared item, in order, through the API: rest = 1, 2, ...
OUTSIDE_WRITERS = 4  # processes, each: per round, n += 1 on every shared item and one insert
OUTSIDE_ROUNDS = 5
SLOW_WRITES = 4  # PostgreSQL: outside transactions that insert, then wait 0.2 s to commit
COUNTERS = {"label": {"type": "String"}, "rest": {"type": "Integer"}, "n": {"type": "Integer"}}
COUNTER_KINDS = {"id": "UUID", "label": "String", "rest": "Integer", "n": "Integer"}


async def test_concurrent_writers_every_change_once_in_commit_order(
    live: Live, outside: Outside
) -> None:
    """Many writers at once, livebase's and outside ones, some on the same items.

    Each shared item gets ``rest`` set to 1, 2, ... by one API writer and ``n``
    incremented by several outside processes at once: whatever the
    interleaving, in commit order each change raises exactly one of the two by
    one. So the events about a shared item, and its log entries in position
    order, must each be such a staircase, from (0, 0) to the final counts.
    """
    await live.api.collection("counters", COUNTERS)
    admin = await live.connect(live.api.admin_token, "admin")
    api, headers = live.api.client, live.api.admin

    async def create(label: str) -> str:
        body = {"label": label, "rest": 0, "n": 0}
        response = await api.post("/items/counters", headers=headers, json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["id"])

    shared = [await create(f"shared-{i}") for i in range(SHARED)]
    for key in shared:
        await admin.wait_for("item.created", lambda p, key=key: p["item"]["id"] == key)

    async def creator(task: int) -> list[str]:
        return [await create(f"rest-{task}-{i}") for i in range(CREATES_PER_TASK)]

    async def rest_updater(key: str) -> None:
        for value in range(1, REST_UPDATES + 1):
            response = await api.patch(
                f"/items/counters/{key}", headers=headers, json={"rest": value}
            )
            assert response.status_code == 200, response.text

    outside_keys = [
        [str(uuid.uuid4()) for _ in range(OUTSIDE_ROUNDS)] for _ in range(OUTSIDE_WRITERS)
    ]

    async def outside_writer(keys: list[str]) -> None:
        # Each statement its own transaction, so they interleave with everyone's.
        transactions: list[list[Statement]] = []
        for key in keys:
            transactions += [[outside.increment("counters", s, "n")] for s in shared]
            row = {"id": key, "label": "outside", "rest": 0, "n": 0}
            transactions.append([outside.insert("counters", row, COUNTER_KINDS)])
        await outside.run(*transactions)

    # PostgreSQL: transactions that write, then take their time to commit while
    # others commit; an entry must not be passed over for having been written first.
    slow_keys = [] if outside.sqlite else [str(uuid.uuid4()) for _ in range(SLOW_WRITES)]

    async def slow_writer(key: str) -> None:
        row = {"id": key, "label": "slow", "rest": 0, "n": 0}
        pause = Statement("SELECT pg_sleep(0.2)", {})
        await outside.run([outside.insert("counters", row, COUNTER_KINDS), pause])

    async with asyncio.timeout(TIMEOUT * 6):
        created_by_api, _ = await asyncio.gather(
            asyncio.gather(*(creator(t) for t in range(CONCURRENT_TASKS))),
            asyncio.gather(
                *(rest_updater(key) for key in shared),
                *(outside_writer(keys) for keys in outside_keys),
                *(slow_writer(key) for key in slow_keys),
            ),
        )
    last = await create("last")  # published after everything committed before it
    await admin.wait_for("item.created", lambda p: p["item"]["id"] == last, within=TIMEOUT * 3)

    events = [
        (ITEM_EVENTS[name], p["item"]["id"], p["item"]["rest"], p["item"]["n"])
        for name, p in admin.events
        if name in ITEM_EVENTS and p["collection"] == "counters"
    ]
    # Every change exactly once.
    creates = Counter(key for action, key, _, _ in events if action == "create")
    by_api = [key for keys in created_by_api for key in keys]
    by_outside = [*(key for keys in outside_keys for key in keys), *slow_keys]
    expected = {*shared, *by_api, *by_outside, last}
    assert len(expected) == SHARED + CONCURRENT_TASKS * CREATES_PER_TASK + len(by_outside) + 1
    missing = expected - set(creates)
    twice = {key: count for key, count in creates.items() if count > 1}
    assert not missing and not twice and set(creates) == expected, (missing, twice)
    updates = [(key, rest, n) for action, key, rest, n in events if action == "update"]
    outside_increments = OUTSIDE_WRITERS * OUTSIDE_ROUNDS
    assert len(updates) == SHARED * (REST_UPDATES + outside_increments)
    for key in shared:
        states = [(rest, n) for k, rest, n in updates if k == key]
        assert_staircase(states, (REST_UPDATES, outside_increments))

    # The log: every entry has a position, positions are distinct, and their
    # order is the order the socket got the events in.
    async with live.services.db.connect() as conn:
        counts = (
            await conn.execute(
                text(
                    "SELECT count(*), count(position), count(DISTINCT position)"
                    " FROM livebase_changes"
                )
            )
        ).one()
        assert counts[0] == counts[1] == counts[2]
        state = "new_state::text" if not live.services.db.is_sqlite else "new_state"
        old = "old_state::text" if not live.services.db.is_sqlite else "old_state"
        rows = (
            await conn.execute(
                text(
                    f"SELECT action, item_key, {state}, {old} FROM livebase_changes"
                    " WHERE collection = 'counters' ORDER BY position"
                )
            )
        ).all()
    logged = []
    for action, key, new, previous in rows:
        item = json.loads(new if new is not None else previous)
        logged.append((action, key, item["rest"], item["n"]))
    assert logged == events
    for key in shared:
        states = [(rest, n) for action, k, rest, n in logged if k == key and action == "update"]
        assert_staircase(states, (REST_UPDATES, outside_increments))


def assert_staircase(states: list[tuple[int, int]], final: tuple[int, int]) -> None:
    """From (0, 0) to ``final``, each state one more than the last in exactly one count."""
    previous = (0, 0)
    for state in states:
        steps = (state[0] - previous[0], state[1] - previous[1])
        assert steps in ((1, 0), (0, 1)), (previous, state, states)
        previous = state
    assert previous == final, states


@pytest.mark.parametrize("topology", ["alone"])
async def test_hidden_fields_are_never_logged_and_a_login_logs_nothing(
    live: Live, outside: Outside
) -> None:
    credentials = {"email": "hidden@example.com", "password": "password-123"}
    _, user = await live.api.user(**credentials)
    url = f"/items/users/{user['id']}"
    await live.api.ok("PATCH", url, headers=live.api.admin, json={"password": "changed-pass-456"})
    credentials["password"] = "changed-pass-456"

    async def entries() -> list[tuple[str, str | None, str | None]]:
        cast = "" if live.services.db.is_sqlite else "::text"
        async with live.services.db.connect() as conn:
            rows = await conn.execute(
                text(
                    f"SELECT action, new_state{cast}, old_state{cast} FROM livebase_changes"
                    " WHERE collection = 'users' AND item_key = :key ORDER BY position"
                ),
                {"key": user["id"]},
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]

    before_login = await entries()
    assert [action for action, _, _ in before_login] == ["create", "update"]
    await live.api.ok("POST", "/auth/login", json=credentials)  # lastAccess only
    assert await entries() == before_login
    # Another writer changing only the password hash, or only lastAccess: no entry either.
    kinds = {"password": "String", "lastAccess": "DateTime"}
    await outside.run(
        [outside.update("users", user["id"], {"password": "not-a-real-hash"}, kinds)],
        [outside.update("users", user["id"], {"lastAccess": stamp(4)}, kinds)],
    )
    assert await entries() == before_login
    # A visible change is logged; so is the delete (its last state).
    await live.api.ok("PATCH", url, headers=live.api.admin, json={"firstName": "Hid"})
    await live.api.ok("DELETE", url, headers=live.api.admin)
    logged = await entries()
    assert [action for action, _, _ in logged] == ["create", "update", "update", "delete"]

    hashes = []
    async with live.services.db.connect() as conn:
        rows = await conn.execute(text('SELECT "password" FROM users'))
        hashes = [row[0] for row in rows if row[0]]
    assert hashes  # the administrator's, at least
    for _, new, old in logged:
        for state in (new, old):
            if state is None:
                continue
            decoded = json.loads(state)
            assert "password" not in decoded and "email" in decoded
            assert "argon2" not in state and not any(h in state for h in hashes)


@pytest.mark.parametrize("topology", ["alone"])
async def test_a_json_value_with_a_nul_character_is_refused_on_both_databases(
    live: Live,
) -> None:
    """U+0000 in a JSON value (JSON's \\u0000) is refused with a 422, nothing written and no
    event: PostgreSQL's jsonb, which the change log's states are, cannot hold it."""
    await live.api.collection("things", {"meta": {"type": "JSON"}})
    admin = await live.connect(live.api.admin_token, "admin")
    for meta in ({"text": "a\x00b"}, {"a\x00b": 1}, [["deep", ["a\x00"]]]):
        response = await live.api.client.post(
            "/items/things", headers=live.api.admin, json={"meta": meta}
        )
        assert response.status_code == 422, response.text
        assert "NUL" in response.json()["error"]["message"]
    sentinel = await live.api.ok(
        "POST", "/items/things", 201, headers=live.api.admin, json={"meta": {"ok": True}}
    )
    created = await admin.wait_for("item.created", lambda p: p["collection"] == "things")
    assert created["item"]["id"] == sentinel["data"]["id"]
    listed = await live.api.ok("GET", "/items/things", headers=live.api.admin)
    assert [item["meta"] for item in listed["data"]] == [{"ok": True}]


async def test_the_writers_own_sockets_see_its_user_id_and_outside_writes_none(
    live: Live, outside: Outside
) -> None:
    """Right after livebase wrote as a user, an outside write still names nobody."""
    await live.api.collection("notes", {"title": {"type": "String"}})
    token, user = await live.api.user("writer@example.com")
    await live.api.allow("user", "notes", "create", fields=["title"])
    await live.api.allow("user", "notes", "read", fields=["id", "title"])
    socket = await live.connect(token, "writer")
    mine = (
        await live.api.ok("POST", "/items/notes", 201, headers=bearer(token), json={"title": "m"})
    )["data"]["id"]
    assert (await arrives(socket, "item.created", mine))["userId"] == user["id"]
    await outside.run([outside.update("notes", mine, {"title": "outside"}, {"title": "String"})])
    async with within_a_second("item.updated of an outside write"):
        updated = await arrives(socket, "item.updated", mine)
    assert updated["userId"] is None and updated["item"] == {"id": mine, "title": "outside"}


async def test_outside_changes_to_a_user_move_and_drop_their_open_sockets(
    live: Live, outside: Outside
) -> None:
    """A role changed or an account suspended by another writer acts on open sockets
    as the same change through livebase does (in a cluster too: a users change is
    applied on every node before the next change is published)."""
    await live.api.collection("notes", {"title": {"type": "String"}})
    await live.api.ok("POST", "/roles", 201, headers=live.api.admin, json={"name": "reader"})
    await live.api.allow("reader", "notes", "read", fields=["id", "title"])
    token, user = await live.api.user("moved@example.com")
    socket = await live.connect(token, "moved")
    kinds = {"role": "String", "status": "String", "id": "UUID", "title": "String"}

    before, after = str(uuid.uuid4()), str(uuid.uuid4())
    # Still role "user": may not read notes. Then one transaction: the role, then a note.
    await outside.run(
        [outside.insert("notes", {"id": before, "title": "before"}, kinds)],
        [
            outside.update("users", user["id"], {"role": "reader"}, kinds),
            outside.insert("notes", {"id": after, "title": "after"}, kinds),
        ],
    )
    async with within_a_second("a note after the outside role change"):
        created = await arrives(socket, "item.created", after)
    assert created["item"] == {"id": after, "title": "after"}
    assert seen(socket, "notes") == [("item.created", after)]

    await outside.run([outside.update("users", user["id"], {"status": "suspended"}, kinds)])
    async with within_a_second("the suspended user's disconnect"):
        await socket.disconnected.wait()
