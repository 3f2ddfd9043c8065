"""Relations written through /schemas/{c}/relationships (SPEC §14): the schema side."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from livebase.app import services_of
from tests.helpers import Api

MISSING = "00000000-0000-4000-8000-000000000000"


async def relate(api: Api, collection: str, status: int = 201, **body: Any) -> Any:
    return await api.ok(
        "POST", f"/schemas/{collection}/relationships", status, headers=api.admin, json=body
    )


async def schema(api: Api, collection: str) -> dict[str, Any]:
    return dict((await api.ok("GET", f"/schemas/{collection}", headers=api.admin))["data"])


def listed(described: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in described["relationships"]}


async def database(api: Api, table: str) -> dict[str, Any]:
    """What the database itself says of ``table``: columns, foreign keys, indexes."""

    def look(sync_conn: Any) -> dict[str, Any]:
        inspector = inspect(sync_conn)
        if not inspector.has_table(table):
            return {}
        if sync_conn.dialect.name == "sqlite":
            # SQLAlchemy reads no ON DELETE of a column's own REFERENCES clause.
            pragma = sync_conn.exec_driver_sql(f'PRAGMA foreign_key_list("{table}")').all()
            keys = {(row[3],): (row[2], (row[4],), row[6]) for row in pragma}
        else:
            keys = {
                tuple(fk["constrained_columns"]): (
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options") or {}).get("ondelete", "NO ACTION"),
                )
                for fk in inspector.get_foreign_keys(table)
            }
        return {
            "columns": [c["name"] for c in inspector.get_columns(table)],
            "foreign_keys": keys,
            "indexes": {
                tuple(ix["column_names"]): bool(ix["unique"]) for ix in inspector.get_indexes(table)
            },
        }

    async with services_of(api.app).db.connect() as conn:
        return dict(await conn.run_sync(look))


async def test_an_m2o_to_users_adds_a_real_indexed_foreign_key(api: Api) -> None:
    await api.collection("messages", {"text": {"type": "String"}})
    created = await relate(
        api,
        "messages",
        name="author",
        type="M2O",
        target="users",
        alias="messages",
        onDelete="CASCADE",
    )
    assert created["data"] == {
        "name": "author",
        "type": "M2O",
        "target": "users",
        "alias": "messages",
        "onDelete": "CASCADE",
        "foreignKey": "author_Id",
    }
    messages = await schema(api, "messages")
    assert messages["schema"]["fields"]["author_Id"] == {"type": "UUID"}
    assert messages["schema"]["relationships"]["author"]["foreignKey"] == "author_Id"
    assert listed(messages)["author"] == {"name": "author", **created["data"]}
    users = await schema(api, "users")
    assert listed(users)["messages"] == {
        "name": "messages",
        "type": "O2M",
        "target": "messages",
        "alias": "author",
        "onDelete": "CASCADE",
        "foreignKey": "author_Id",
        "reverse": True,
    }
    seen = await database(api, "messages")
    assert seen["foreign_keys"][("author_Id",)] == ("users", ("id",), "CASCADE")
    assert seen["indexes"][("author_Id",)] is False
    await refused_by_database(api, "messages", "author_Id", MISSING)


async def refused_by_database(api: Api, table: str, key: str, value: Any) -> None:
    """An insert naming a missing item, in plain SQL, is refused by the database itself."""
    db = services_of(api.app).db
    sql = (
        f'INSERT INTO "{table}" (id, "{key}") VALUES (?, ?)'
        if db.is_sqlite
        else f'INSERT INTO "{table}" (id, "{key}") VALUES ($1::uuid, $2)'
    )
    with pytest.raises(IntegrityError):
        async with db.transaction() as conn:
            await conn.exec_driver_sql(sql, ("11111111-1111-4111-8111-111111111111", value))


async def test_an_o2o_key_is_unique_and_follows_the_target_key_type(api: Api) -> None:
    await api.collection(
        "profiles",
        {"id": {"type": "Integer", "primaryKey": True, "defaultValue": {"type": "AUTOINCREMENT"}}},
    )
    await api.collection("accounts", {"name": {"type": "String"}})
    created = await relate(
        api,
        "accounts",
        name="profile",
        type="O2O",
        target="profiles",
        alias="account",
        onDelete="RESTRICT",
    )
    assert created["data"]["foreignKey"] == "profile_Id"
    fields = (await schema(api, "accounts"))["schema"]["fields"]
    assert fields["profile_Id"] == {"type": "Integer", "unique": True}
    seen = await database(api, "accounts")
    assert seen["foreign_keys"][("profile_Id",)] == ("profiles", ("id",), "RESTRICT")
    assert seen["indexes"][("profile_Id",)] is True
    back = listed(await schema(api, "profiles"))["account"]
    assert (back["type"], back["reverse"], back["target"]) == ("O2O", True, "accounts")
    await refused_by_database(api, "accounts", "profile_Id", 12345)


async def test_an_o2m_is_stored_as_the_m2o_it_reverses(api: Api) -> None:
    await api.collection("projects", {"name": {"type": "String"}})
    await api.collection("tasks", {"title": {"type": "String"}})
    created = await relate(
        api, "projects", name="tasks", type="O2M", target="tasks", alias="project"
    )
    assert created["data"]["type"] == "O2M" and created["data"]["reverse"] is True
    projects = await schema(api, "projects")
    assert "relationships" not in projects["schema"]
    assert listed(projects)["tasks"]["foreignKey"] == "project_Id"
    tasks = await schema(api, "tasks")
    assert tasks["schema"]["relationships"]["project"] == {
        "type": "M2O",
        "target": "projects",
        "alias": "tasks",
        "onDelete": "SET NULL",
        "foreignKey": "project_Id",
    }
    assert (await database(api, "tasks"))["foreign_keys"][("project_Id",)] == (
        "projects",
        ("id",),
        "SET NULL",
    )


async def test_an_m2m_creates_its_junction_and_deleting_it_drops_it(api: Api) -> None:
    await api.collection("posts", {"title": {"type": "String"}})
    await api.collection("tags", {"label": {"type": "String"}})
    created = await relate(api, "posts", name="tags", type="M2M", target="tags", alias="posts")
    assert created["data"] == {
        "name": "tags",
        "type": "M2M",
        "target": "tags",
        "alias": "posts",
        "through": "posts_tags_junction",
        "sourceKey": "posts_id",
        "targetKey": "tags_id",
    }
    junction = await schema(api, "posts_tags_junction")
    assert junction["schema"]["junction"] == {"posts_id": "posts", "tags_id": "tags"}
    seen = await database(api, "posts_tags_junction")
    assert seen["foreign_keys"] == {
        ("posts_id",): ("posts", ("id",), "CASCADE"),
        ("tags_id",): ("tags", ("id",), "CASCADE"),
    }
    assert seen["indexes"][("posts_id", "tags_id")] is True
    assert seen["indexes"][("tags_id",)] is False
    back = listed(await schema(api, "tags"))["posts"]
    assert (back["sourceKey"], back["targetKey"]) == ("tags_id", "posts_id")
    names = [
        c["collectionName"] for c in (await api.ok("GET", "/schemas", headers=api.admin))["data"]
    ]
    assert "posts_tags_junction" in names
    # The junction goes with its relation only.
    for method, body in (("DELETE", None), ("PATCH", {"fields": {"x": {"type": "String"}}})):
        refused = await api.client.request(
            method, "/schemas/posts_tags_junction", headers=api.admin, json=body
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (
            400,
            "JUNCTION_COLLECTION",
        )
    await api.ok("DELETE", "/schemas/posts/relationships/tags", headers=api.admin)
    assert await database(api, "posts_tags_junction") == {}
    assert "tags" not in listed(await schema(api, "posts"))
    gone = await api.client.get("/schemas/posts_tags_junction", headers=api.admin)
    assert gone.status_code == 404


async def test_an_m2m_of_a_collection_with_itself_names_its_keys_apart(api: Api) -> None:
    await api.collection("people", {"name": {"type": "String"}})
    created = await relate(
        api,
        "people",
        name="friends",
        type="M2M",
        target="people",
        alias="friendOf",
        through="friendships",
    )
    assert (created["data"]["sourceKey"], created["data"]["targetKey"]) == (
        "people_id",
        "related_friends_id",
    )
    seen = await database(api, "friendships")
    assert set(seen["foreign_keys"]) == {("people_id",), ("related_friends_id",)}
    assert set(listed(await schema(api, "people"))) == {"friends", "friendOf"}


async def test_a_relation_to_files_and_a_self_m2o(api: Api) -> None:
    await api.collection("docs", {"title": {"type": "String"}})
    await relate(api, "docs", name="attachment", type="M2O", target="files", alias="docs")
    await relate(api, "docs", name="parent", type="M2O", target="docs", alias="children")
    seen = await database(api, "docs")
    assert seen["foreign_keys"][("attachment_Id",)] == ("files", ("id",), "SET NULL")
    assert seen["foreign_keys"][("parent_Id",)] == ("docs", ("id",), "SET NULL")
    assert listed(await schema(api, "files"))["docs"]["reverse"] is True
    assert set(listed(await schema(api, "docs"))) == {"attachment", "parent", "children"}


async def test_deleting_an_m2o_drops_its_field_and_keeps_every_row(api: Api) -> None:
    """On SQLite the table is rebuilt: rows kept, children not cascaded, triggers made
    again, no change log entry for the copy."""
    await api.collection("teams", {"name": {"type": "String"}})
    await api.collection("members", {"name": {"type": "String"}})
    await api.collection("badges", {"label": {"type": "String"}})
    await relate(api, "members", name="team", type="M2O", target="teams", alias="members")
    await relate(api, "members", name="owner", type="M2O", target="users", onDelete="CASCADE")
    await relate(api, "badges", name="member", type="M2O", target="members", onDelete="CASCADE")
    team = await api.ok("POST", "/items/teams", 201, headers=api.admin, json={"name": "t"})
    member = await api.ok(
        "POST",
        "/items/members",
        201,
        headers=api.admin,
        json={"name": "ann", "team_Id": team["data"]["id"]},
    )
    badge = await api.ok(
        "POST",
        "/items/badges",
        201,
        headers=api.admin,
        json={"label": "gold", "member_Id": member["data"]["id"]},
    )
    events = len(api.events)
    await api.ok("DELETE", "/schemas/members/relationships/team", headers=api.admin)
    seen = await database(api, "members")
    assert "team_Id" not in seen["columns"] and ("team_Id",) not in seen["foreign_keys"]
    assert seen["foreign_keys"][("owner_Id",)] == ("users", ("id",), "CASCADE")
    assert seen["indexes"] == {("owner_Id",): False}
    members = await api.ok("GET", "/items/members", headers=api.admin)
    assert [(m["name"], "team_Id" in m) for m in members["data"]] == [("ann", False)]
    badges = await api.ok("GET", "/items/badges", headers=api.admin)
    assert badges["data"][0]["member_Id"] == member["data"]["id"]
    assert (await database(api, "badges"))["foreign_keys"][("member_Id",)][0] == "members"
    item_events = [e for e in api.events[events:] if getattr(e, "collection", "") != "schemas"]
    assert item_events == []
    # The triggers are back: a change is logged and published.
    await api.ok(
        "PATCH", f"/items/members/{member['data']['id']}", headers=api.admin, json={"name": "bob"}
    )
    await api.ok("GET", "/items/members", headers=api.admin)
    assert [e.action for e in api.events[events:] if getattr(e, "collection", "") == "members"] == [
        "update"
    ]
    assert "team" not in listed(await schema(api, "members"))
    assert "members" not in listed(await schema(api, "teams"))
    await refused_by_database(api, "badges", "member_Id", MISSING)
    await api.ok("DELETE", f"/items/members/{member['data']['id']}", headers=api.admin)
    assert (await api.ok("GET", "/items/badges", headers=api.admin))["data"] == []
    assert badge


REFUSED = [
    # (collection, body, status, code)
    ("posts", {"name": "x", "type": "M2X", "target": "tags"}, 400, "INVALID_RELATION_TYPE"),
    ("posts", {"name": "x", "type": "M2O", "target": "nope"}, 400, "UNKNOWN_TARGET"),
    ("posts", {"name": "x", "type": "M2O", "target": "roles"}, 400, "UNKNOWN_TARGET"),
    ("posts", {"name": "x", "type": "M2O", "target": "sessions"}, 400, "UNKNOWN_TARGET"),
    ("posts", {"name": "x", "type": "M2O", "target": 3}, 400, "UNKNOWN_TARGET"),
    ("posts", {"name": "1x", "type": "M2O", "target": "tags"}, 400, "INVALID_NAME"),
    ("posts", {"name": "a" * 61, "type": "M2O", "target": "tags"}, 400, "INVALID_NAME"),
    ("posts", {"name": "title", "type": "M2O", "target": "tags"}, 400, "RELATION_NAME_TAKEN"),
    ("posts", {"name": "TITLE", "type": "M2M", "target": "tags"}, 400, "RELATION_NAME_TAKEN"),
    ("posts", {"name": "ref", "type": "M2O", "target": "tags"}, 400, "RELATION_NAME_TAKEN"),
    ("posts", {"name": "author", "type": "M2O", "target": "tags"}, 400, "RELATION_NAME_TAKEN"),
    (
        "posts",
        {"name": "x", "type": "M2O", "target": "tags", "alias": "label"},
        400,
        "RELATION_NAME_TAKEN",
    ),
    (
        "posts",
        {"name": "x", "type": "M2O", "target": "users", "alias": "email"},
        400,
        "RELATION_NAME_TAKEN",
    ),
    (
        "posts",
        {"name": "x", "type": "M2O", "target": "users", "alias": "posts"},
        400,
        "RELATION_NAME_TAKEN",
    ),
    (
        "posts",
        {"name": "x", "type": "M2O", "target": "posts", "alias": "x"},
        400,
        "RELATION_NAME_TAKEN",
    ),
    ("posts", {"name": "createdAt", "type": "M2M", "target": "tags"}, 400, "RESERVED_NAME"),
    (
        "posts",
        {"name": "x", "type": "M2O", "target": "tags", "onDelete": "NOTHING"},
        400,
        "INVALID_RELATION",
    ),
    (
        "posts",
        {"name": "x", "type": "M2M", "target": "tags", "onDelete": "CASCADE"},
        400,
        "INVALID_RELATION",
    ),
    (
        "posts",
        {"name": "x", "type": "M2O", "target": "tags", "through": "j"},
        400,
        "INVALID_RELATION",
    ),
    (
        "posts",
        {"name": "x", "type": "M2M", "target": "tags", "through": "pg_x"},
        400,
        "RESERVED_NAME",
    ),
    (
        "posts",
        {"name": "x", "type": "M2M", "target": "tags", "through": "a b"},
        400,
        "INVALID_NAME",
    ),
    (
        "posts",
        {"name": "x", "type": "M2M", "target": "tags", "through": "tags"},
        409,
        "COLLECTION_EXISTS",
    ),
    ("posts", {"name": "x", "type": "O2M", "target": "tags"}, 400, "INVALID_RELATION"),
    (
        "posts",
        {"name": "x", "type": "O2M", "target": "users", "alias": "p"},
        400,
        "SYSTEM_COLLECTION",
    ),
    ("users", {"name": "x", "type": "M2O", "target": "posts"}, 400, "SYSTEM_COLLECTION"),
    ("posts", {"name": "x", "type": "M2O", "target": "tags", "extra": 1}, 400, "BAD_REQUEST"),
    ("posts", {"type": "M2O", "target": "tags"}, 400, "INVALID_NAME"),
    ("nope", {"name": "x", "type": "M2O", "target": "tags"}, 404, "COLLECTION_NOT_FOUND"),
]


@pytest.mark.parametrize(("collection", "body", "status", "code"), REFUSED)
async def test_a_refused_relation_changes_nothing(
    api: Api, collection: str, body: dict[str, Any], status: int, code: str
) -> None:
    await api.collection("posts", {"title": {"type": "String"}, "ref_Id": {"type": "UUID"}})
    await api.collection("tags", {"label": {"type": "String"}})
    await relate(api, "posts", name="author", type="M2O", target="users", alias="posts")
    before = [await schema(api, c) for c in ("posts", "tags", "users")]
    tables = [await database(api, t) for t in ("posts", "tags")]
    refused = await api.client.post(
        f"/schemas/{collection}/relationships", headers=api.admin, json=body
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), refused.text
    assert [await schema(api, c) for c in ("posts", "tags", "users")] == before
    assert [await database(api, t) for t in ("posts", "tags")] == tables
    listing = await api.ok("GET", "/schemas", headers=api.admin)
    assert sorted(c["collectionName"] for c in listing["data"]) == ["posts", "tags"]


async def test_deleting_relations_and_collections_they_join(api: Api) -> None:
    await api.collection("posts", {"title": {"type": "String"}})
    await api.collection("tags", {"label": {"type": "String"}})
    await relate(api, "posts", name="author", type="M2O", target="users", alias="posts")
    await relate(api, "posts", name="tags", type="M2M", target="tags", alias="posts")
    await relate(api, "tags", name="parent", type="M2O", target="tags")
    cases = [
        ("DELETE", "/schemas/users/relationships/posts", 400, "RELATION_IS_REVERSE"),
        ("DELETE", "/schemas/tags/relationships/posts", 400, "RELATION_IS_REVERSE"),
        ("DELETE", "/schemas/posts/relationships/nope", 404, "RELATION_NOT_FOUND"),
        ("DELETE", "/schemas/nope/relationships/x", 404, "COLLECTION_NOT_FOUND"),
        ("DELETE", "/schemas/tags", 409, "RELATION_EXISTS"),
        ("PATCH", "/schemas/posts", 400, "RELATION_FIELD"),
        ("PATCH", "/schemas/posts", 400, "RELATION_FIELD"),
        ("PATCH", "/schemas/posts", 400, "RELATION_NAME_TAKEN"),
    ]
    patches = iter(
        [
            {"fields": {"author_Id": None}},
            {"fields": {"author_Id": {"type": "String"}}},
            {"fields": {"Tags": {"type": "String"}}},
        ]
    )
    before = await schema(api, "posts")
    for method, url, status, code in cases:
        body = next(patches) if method == "PATCH" else None
        refused = await api.client.request(method, url, headers=api.admin, json=body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), url
        assert await schema(api, "posts") == before
    conflict = await api.client.delete("/schemas/tags", headers=api.admin)
    assert "posts.tags" in conflict.json()["error"]["message"]
    user = {"Authorization": f"Bearer {(await api.user('u@example.com'))[0]}"}
    for method, url in (
        ("POST", "/schemas/posts/relationships"),
        ("DELETE", "/schemas/posts/relationships/author"),
    ):
        body = {"name": "x", "type": "M2O", "target": "tags"} if method == "POST" else None
        forbidden = await api.client.request(method, url, headers=user, json=body)
        assert forbidden.status_code == 403
    # Deleting posts drops its relations and its junction; then tags may go.
    await api.ok("DELETE", "/schemas/posts", headers=api.admin)
    assert await database(api, "posts_tags_junction") == {}
    assert "posts" not in listed(await schema(api, "users"))
    assert "posts" not in listed(await schema(api, "tags"))
    await api.ok("DELETE", "/schemas/tags", headers=api.admin)
    listing = await api.ok("GET", "/schemas", headers=api.admin)
    assert listing["data"] == []


async def test_a_collection_related_to_itself_is_dropped_with_its_rows(api: Api) -> None:
    await api.collection("docs", {"title": {"type": "String"}})
    await relate(api, "docs", name="parent", type="M2O", target="docs", onDelete="RESTRICT")
    root = await api.ok("POST", "/items/docs", 201, headers=api.admin, json={"title": "root"})
    await api.ok(
        "POST",
        "/items/docs",
        201,
        headers=api.admin,
        json={"title": "leaf", "parent_Id": root["data"]["id"]},
    )
    await api.ok("DELETE", "/schemas/docs", headers=api.admin)
    assert await database(api, "docs") == {}
