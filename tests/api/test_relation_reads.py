"""Reading through relations (SPEC §14): fields paths, permissions on every hop,
caps, filter and sort paths, and one query per hop whatever the page size."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from livebase.app import services_of
from livebase.services.relations import MAX_RELATED
from tests.helpers import Api, bearer


async def relate(api: Api, collection: str, **body: Any) -> Any:
    return await api.ok(
        "POST", f"/schemas/{collection}/relationships", 201, headers=api.admin, json=body
    )


async def add(api: Api, collection: str, **item: Any) -> dict[str, Any]:
    created = await api.ok("POST", f"/items/{collection}", 201, headers=api.admin, json=item)
    return dict(created["data"])


async def read(api: Api, url: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return (await api.ok("GET", url, headers=headers or api.admin, params=params))["data"]


async def refused(
    api: Api, url: str, status: int, headers: dict[str, str] | None = None, **params: Any
) -> str:
    response = await api.client.get(url, headers=headers or api.admin, params=params)
    assert response.status_code == status, response.text
    return str(response.json()["error"]["code"])


async def world(api: Api) -> dict[str, Any]:
    """countries <- companies <- authors <- posts (M2O chain), posts <-> tags (M2M),
    authors.posts (O2M, the reverse of posts.author)."""
    await api.collection("countries", {"name": {"type": "String"}})
    await api.collection("companies", {"name": {"type": "String"}})
    await api.collection(
        "authors",
        {"name": {"type": "String"}, "secret": {"type": "String"}, "owner": {"type": "String"}},
    )
    await api.collection("posts", {"title": {"type": "String"}})
    await api.collection("tags", {"label": {"type": "String"}})
    await relate(api, "companies", name="country", type="M2O", target="countries")
    await relate(api, "authors", name="company", type="M2O", target="companies", alias="staff")
    await relate(api, "posts", name="author", type="M2O", target="authors", alias="posts")
    await relate(api, "posts", name="tags", type="M2M", target="tags", alias="posts")
    fr = await add(api, "countries", name="France")
    acme = await add(api, "companies", name="Acme", country_Id=fr["id"])
    ann = await add(api, "authors", name="Ann", secret="s1", owner="a", company_Id=acme["id"])
    bob = await add(api, "authors", name="Bob", secret="s2", owner="b")
    p1 = await add(api, "posts", title="one", author_Id=ann["id"])
    p2 = await add(api, "posts", title="two", author_Id=bob["id"])
    p3 = await add(api, "posts", title="three")
    red = await add(api, "tags", label="red")
    blue = await add(api, "tags", label="blue")
    for post, tag in ((p1, red), (p1, blue), (p2, blue)):
        await add(api, "posts_tags_junction", posts_id=post["id"], tags_id=tag["id"])
    return {
        "fr": fr,
        "acme": acme,
        "ann": ann,
        "bob": bob,
        "p1": p1,
        "p2": p2,
        "p3": p3,
        "red": red,
        "blue": blue,
    }


def by_title(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["title"]: item for item in items}


async def test_m2o_expands_into_an_object_or_null_and_nests_three_deep(api: Api) -> None:
    w = await world(api)
    items = by_title(
        await read(api, "/items/posts", fields="title,author.name,author.company.country.name")
    )
    assert items["one"] == {
        "id": w["p1"]["id"],
        "title": "one",
        "author": {
            "id": w["ann"]["id"],
            "name": "Ann",
            "company": {"id": w["acme"]["id"], "country": {"id": w["fr"]["id"], "name": "France"}},
        },
    }
    assert items["two"]["author"] == {"id": w["bob"]["id"], "name": "Bob", "company": None}
    assert items["three"]["author"] is None
    one = await read(api, f"/items/posts/{w['p1']['id']}", fields="*,author.*")
    assert one["author"]["secret"] == "s1"
    assert one["title"] == "one" and one["author_Id"] == w["ann"]["id"]


async def test_o2m_and_m2m_expand_into_lists_ordered_by_key(api: Api) -> None:
    w = await world(api)
    authors = {a["name"]: a for a in await read(api, "/items/authors", fields="name,posts.title")}
    assert authors["Ann"]["posts"] == [{"id": w["p1"]["id"], "title": "one"}]
    posts = by_title(await read(api, "/items/posts", fields="title,tags.label"))
    expected = sorted([w["red"], w["blue"]], key=lambda t: t["id"])
    assert posts["one"]["tags"] == [{"id": t["id"], "label": t["label"]} for t in expected]
    assert posts["three"]["tags"] == []
    tags = {t["label"]: t for t in await read(api, "/items/tags", fields="label,posts.title")}
    assert sorted(p["title"] for p in tags["blue"]["posts"]) == ["one", "two"]


async def test_a_bare_relation_name_answers_the_related_keys(api: Api) -> None:
    w = await world(api)
    posts = by_title(await read(api, "/items/posts", fields="title,author,tags"))
    assert posts["one"]["author"] == w["ann"]["id"]
    assert posts["three"]["author"] is None
    assert posts["one"]["tags"] == sorted([w["red"]["id"], w["blue"]["id"]])


async def test_each_hop_is_read_under_the_readers_own_permission(api: Api) -> None:
    w = await world(api)
    token_a, user_a = await api.user("a@example.com")
    token_b, _ = await api.user("b@example.com")
    await api.ok(
        "PATCH", f"/items/authors/{w['ann']['id']}", headers=api.admin, json={"owner": user_a["id"]}
    )
    await api.allow("user", "posts", "read", fields=["*"])
    # Authors: only one's own, and never their secret.
    await api.allow(
        "user",
        "authors",
        "read",
        fields=["id", "name", "company_Id"],
        conditions={"owner": {"eq": "$CURRENT_USER"}},
    )
    # companies: no permission at all.
    fields = "title,author.*,author.company.name,tags.label"
    seen_a = by_title(await read(api, "/items/posts", bearer(token_a), fields=fields))
    assert seen_a["one"]["author"] == {
        "id": w["ann"]["id"],
        "name": "Ann",
        "company_Id": w["acme"]["id"],
        "company": None,
    }
    assert seen_a["two"]["author"] is None  # Bob's is not hers
    assert seen_a["one"]["tags"] == []  # no read on tags
    seen_b = by_title(await read(api, "/items/posts", bearer(token_b), fields=fields))
    assert seen_b["one"]["author"] is None
    # An explicitly named unreadable field is cut on a related item, not a 403.
    cut = await read(
        api,
        f"/items/posts/{w['p1']['id']}",
        bearer(token_a),
        fields="title,author.secret,author.name",
    )
    assert cut["author"] == {"id": w["ann"]["id"], "name": "Ann"}
    # Lists leave unreadable items out.
    await api.allow("user", "tags", "read", fields=["label"], conditions={"label": {"eq": "red"}})
    seen = by_title(await read(api, "/items/posts", bearer(token_a), fields="title,tags.*"))
    assert seen["one"]["tags"] == [{"id": w["red"]["id"], "label": "red"}]
    assert seen["two"]["tags"] == []


async def test_hidden_fields_never_appear_through_a_relation(api: Api) -> None:
    await api.collection("notes", {"text": {"type": "String"}})
    await relate(api, "notes", name="writer", type="M2O", target="users", alias="notes")
    me = (await api.ok("GET", "/auth/me", headers=api.admin))["data"]
    note = await add(api, "notes", text="x", writer_Id=me["id"])
    item = await read(api, f"/items/notes/{note['id']}", fields="writer.*")
    assert item["writer"]["id"] == me["id"]
    assert not any("password" in name.lower() for name in item["writer"])
    assert await refused(api, "/items/notes", 400, fields="writer.password") == "UNKNOWN_FIELD"


async def test_lists_are_capped_per_item(api: Api) -> None:
    await api.collection("threads", {"name": {"type": "String"}})
    await api.collection("replies", {"n": {"type": "Integer"}})
    await relate(api, "replies", name="thread", type="M2O", target="threads", alias="replies")
    threads = [await add(api, "threads", name=name) for name in ("big", "small")]
    body = [{"n": i, "thread_Id": threads[0]["id"]} for i in range(MAX_RELATED + 5)]
    body.append({"n": -1, "thread_Id": threads[1]["id"]})
    await api.ok("POST", "/items/replies/bulk", 201, headers=api.admin, json=body)
    listed = {t["name"]: t for t in await read(api, "/items/threads", fields="name,replies.n")}
    big = listed["big"]["replies"]
    assert len(big) == MAX_RELATED
    assert [r["id"] for r in big] == sorted(r["id"] for r in big)
    assert [r["n"] for r in listed["small"]["replies"]] == [-1]


async def test_one_query_per_hop_whatever_the_page_size(api: Api) -> None:
    """Structural, not timed: the statements for a page of N items with three hops
    do not grow with N."""
    w = await world(api)
    engine = services_of(api.app).db.engine.sync_engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    fields = "title,author.name,author.company.country.name,tags.label"

    async def statements_for(limit: int) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = await read(
                api,
                "/items/posts",
                fields=fields,
                limit=limit,
                filter='{"title": {"startsWith": "p"}}',
            )
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert len(page) == limit
        assert all(p["author"]["company"]["country"]["name"] == "France" for p in page)
        return len(statements)

    for i in range(30):
        company = await add(api, "companies", name=f"c{i}", country_Id=w["fr"]["id"])
        author = await add(api, "authors", name=f"a{i}", company_Id=company["id"])
        post = await add(api, "posts", title=f"p{i}", author_Id=author["id"])
        await add(api, "posts_tags_junction", posts_id=post["id"], tags_id=w["red"]["id"])
    small, large = await statements_for(2), await statements_for(30)
    assert small == large
    # The list, its count, and one per hop: author, company, country, tags.
    assert large <= 2 + 4 + 2  # (+ what authentication reads)


async def test_filter_and_sort_through_m2o_paths(api: Api) -> None:
    w = await world(api)
    found = await read(api, "/items/posts", filter='{"author.name": {"eq": "Ann"}}', fields="title")
    assert [p["title"] for p in found] == ["one"]
    deep = '{"author.company.country.name": {"startsWith": "fr"}}'
    assert [p["title"] for p in await read(api, "/items/posts", filter=deep)] == ["one"]
    # A missing related item is NULL to every operator, as a NULL field is.
    nulls = await read(api, "/items/posts", filter='{"author.company.name": {"isNull": true}}')
    assert sorted(p["title"] for p in nulls) == ["three", "two"]
    ne = await read(api, "/items/posts", filter='{"author.name": {"ne": "Ann"}}')
    assert [p["title"] for p in ne] == ["two"]
    ordered = await read(api, "/items/posts", sort="-author.name", fields="title")
    assert [p["title"] for p in ordered] == ["three", "two", "one"]  # NULL sorts as largest
    ordered = await read(api, "/items/posts", sort="author.name", fields="title")
    assert [p["title"] for p in ordered] == ["one", "two", "three"]
    # The count follows the filter through the path too.
    paged = await api.ok(
        "GET",
        "/items/posts",
        headers=api.admin,
        params={"filter": '{"author.name": {"in": ["Ann", "Bob"]}}', "limit": 1},
    )
    assert paged["totalCount"] == 2
    assert w["p1"]["id"]


async def test_filter_and_sort_paths_follow_the_related_permission(api: Api) -> None:
    w = await world(api)
    token, user = await api.user("a@example.com")
    await api.ok(
        "PATCH", f"/items/authors/{w['ann']['id']}", headers=api.admin, json={"owner": user["id"]}
    )
    await api.allow("user", "posts", "read", fields=["*"])
    headers = bearer(token)
    assert (
        await refused(api, "/items/posts", 403, headers, filter='{"author.name": {"eq": "Bob"}}')
        == "FORBIDDEN"
    )
    await api.allow(
        "user",
        "authors",
        "read",
        fields=["id", "name"],
        conditions={"owner": {"eq": "$CURRENT_USER"}},
    )
    # Bob is not hers: through the path he is NULL, as if missing.
    assert await read(api, "/items/posts", headers, filter='{"author.name": {"eq": "Bob"}}') == []
    mine = await read(api, "/items/posts", headers, filter='{"author.name": {"eq": "Ann"}}')
    assert [p["title"] for p in mine] == ["one"]
    for params in (
        {"filter": '{"author.secret": {"eq": "s1"}}'},
        {"sort": "author.secret"},
        {"filter": '{"author.company.name": {"eq": "Acme"}}'},
    ):
        assert await refused(api, "/items/posts", 403, headers, **params) == "FORBIDDEN"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"fields": "nobody.name"}, "UNKNOWN_FIELD"),
        ({"fields": "title.x"}, "UNKNOWN_FIELD"),
        ({"fields": "author.nothing"}, "UNKNOWN_FIELD"),
        ({"fields": "author..name"}, "INVALID_PATH"),
        ({"fields": "author.*.name"}, "INVALID_PATH"),
        ({"fields": "." * 3}, "INVALID_PATH"),
        ({"fields": "author." + "x" * 300}, "INVALID_PATH"),
        ({"fields": "author.posts.author.posts.title"}, "INVALID_PATH"),  # too deep first
        ({"fields": "author.posts.author.posts"}, "PATH_CYCLE"),
        ({"fields": "author.posts.title"}, "PATH_CYCLE"),
        ({"fields": "*,author.name,author.posts"}, "PATH_CYCLE"),
        ({"filter": '{"author.posts.title": {"eq": "x"}}'}, "INVALID_PATH"),
        ({"filter": '{"tags.label": {"eq": "x"}}'}, "INVALID_PATH"),
        ({"filter": '{"title.x": {"eq": "x"}}'}, "UNKNOWN_FIELD"),
        ({"filter": '{"author.nothing": {"eq": "x"}}'}, "UNKNOWN_FIELD"),
        ({"filter": '{"author.company.country.name.x": {"eq": "x"}}'}, "INVALID_PATH"),
        ({"filter": '{"author.*": {"eq": "x"}}'}, "INVALID_PATH"),
        ({"filter": '{"author.": {"eq": "x"}}'}, "INVALID_PATH"),
        ({"filter": '{"author.name": {"gt": [1]}}'}, "INVALID_FILTER"),
        ({"sort": "tags.label"}, "INVALID_PATH"),
        ({"sort": "author.posts.title"}, "INVALID_PATH"),
        ({"sort": "-author.nothing"}, "UNKNOWN_FIELD"),
        ({"sort": "author"}, "UNKNOWN_FIELD"),
        ({"sort": "author.company.country.name.x.y"}, "INVALID_PATH"),
    ],
)
async def test_bad_paths_are_clear_400s(api: Api, params: dict[str, str], code: str) -> None:
    await world(api)
    assert await refused(api, "/items/posts", 400, **params) == code


async def test_permission_conditions_take_no_paths(api: Api) -> None:
    await world(api)
    response = await api.client.post(
        "/permissions",
        headers=api.admin,
        json={
            "role": "user",
            "collection": "posts",
            "action": "read",
            "conditions": {"author.name": {"eq": "Ann"}},
        },
    )
    assert response.status_code == 400, response.text


async def test_following_a_relation_takes_its_name_or_key_among_the_readable_fields(
    api: Api,
) -> None:
    w = await world(api)
    token, _ = await api.user("a@example.com")
    headers = bearer(token)
    rule = await api.allow("user", "posts", "read", fields=["title"])
    await api.allow("user", "authors", "read", fields=["id", "name"])
    await api.allow("user", "tags", "read", fields=["*"])
    for fields in ("author.name", "tags.label", "author"):
        assert await refused(api, "/items/posts", 403, headers, fields=fields) == "FORBIDDEN"
    assert await refused(api, "/items/posts", 403, headers, sort="author.name") == "FORBIDDEN"
    await api.ok(
        "PATCH",
        f"/permissions/{rule['id']}",
        headers=api.admin,
        json={"fields": ["title", "tags", "author_Id"]},
    )
    posts = by_title(
        await read(
            api, "/items/posts", headers, fields="title,tags.label,author.name,author.company.name"
        )
    )
    assert [t["label"] for t in posts["two"]["tags"]] == ["blue"]
    # authors' permission names neither company nor company_Id: cut from the author.
    assert posts["one"]["author"] == {"id": w["ann"]["id"], "name": "Ann"}


async def test_a_read_with_related_items_is_never_answered_not_modified(api: Api) -> None:
    w = await world(api)
    url = f"/items/posts/{w['p1']['id']}"
    plain = await api.client.get(url, headers=api.admin)
    etag = plain.headers["ETag"]
    again = await api.client.get(url, headers={**api.admin, "If-None-Match": etag})
    assert again.status_code == 304
    await api.ok(
        "PATCH", f"/items/authors/{w['ann']['id']}", headers=api.admin, json={"name": "Annie"}
    )
    expanded = await api.client.get(
        url, headers={**api.admin, "If-None-Match": etag}, params={"fields": "title,author.name"}
    )
    assert expanded.status_code == 200
    assert expanded.json()["data"]["author"]["name"] == "Annie"
