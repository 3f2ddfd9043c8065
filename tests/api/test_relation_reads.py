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


async def refused(api: Api, url: str, status: int, headers: dict[str, str] | None = None,
                  **params: Any) -> str:
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
    return {"fr": fr, "acme": acme, "ann": ann, "bob": bob, "p1": p1, "p2": p2, "p3": p3,
            "red": red, "blue": blue}


def by_title(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["title"]: item for item in items}


async def test_m2o_expands_into_an_object_or_null_and_nests_three_deep(api: Api) -> None:
    w = await world(api)
    items = by_title(await read(api, "/items/posts", fields="title,author.name,author.company.country.name"))
    assert items["one"] == {
        "id": w["p1"]["id"],
        "title": "one",
        "author": {"id": w["ann"]["id"], "name": "Ann",
                   "company": {"id": w["acme"]["id"],
                               "country": {"id": w["fr"]["id"], "name": "France"}}},
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
