"""Conditional writes against a real server: a refused write sends no event, and
of two writes at the same version exactly one wins (docs/rest.md, "Conditional writes").

The "no event" cases are shown with a later write that does reach the socket:
events about one item arrive in commit order, so once the later one is there,
an event of the refused write would have been too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.realtime.conftest import TIMEOUT, Live

NOTES = {"title": {"type": "String"}}


async def _note(live: Live) -> tuple[Any, str]:
    await live.api.collection("notes", NOTES)
    response = await live.api.client.post(
        "/items/notes", headers=live.api.admin, json={"title": "first"}
    )
    assert response.status_code == 201
    return response.json()["data"]["id"], response.headers["ETag"]


def _titled(title: str) -> Any:
    return lambda payload: payload["item"].get("title") == title


async def test_a_refused_write_sends_no_event(live: Live) -> None:
    key, first = await _note(live)
    admin = await live.connect(live.api.admin_token, "admin")  # joined to collection:notes
    url = f"/items/notes/{key}"
    headers = {**live.api.admin, "If-Match": first}
    moved = await live.api.client.patch(url, headers=headers, json={"title": "second"})
    assert moved.status_code == 200
    await admin.wait_for("item.updated", _titled("second"))

    stale = await live.api.client.patch(url, headers=headers, json={"title": "refused"})
    assert stale.status_code == 412
    refused_delete = await live.api.client.delete(url, headers=headers)
    assert refused_delete.status_code == 412

    headers["If-Match"] = moved.headers["ETag"]
    sentinel = await live.api.client.patch(url, headers=headers, json={"title": "sentinel"})
    assert sentinel.status_code == 200
    await admin.wait_for("item.updated", _titled("sentinel"))
    titles = [p["item"]["title"] for p in admin.received("item.updated")]
    assert titles == ["second", "sentinel"]
    assert admin.received("item.deleted") == []


async def test_of_two_writes_at_one_version_exactly_one_wins(live: Live) -> None:
    """Sent at once; in the cluster topology one to each node, so on PostgreSQL two
    processes meet at the row's lock."""
    key, first = await _note(live)
    url = f"/items/notes/{key}"
    headers = {**live.api.admin, "If-Match": first}
    async with httpx.AsyncClient(base_url=live.base_url, timeout=TIMEOUT) as other_node:
        for round_ in range(3):
            answers = await asyncio.gather(
                live.api.client.patch(url, headers=headers, json={"title": f"a{round_}"}),
                other_node.patch(url, headers=headers, json={"title": f"b{round_}"}),
            )
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [200, 412], [r.text for r in answers]
            winner = next(r for r in answers if r.status_code == 200)
            loser = next(r for r in answers if r.status_code == 412)
            # The loser is told the version the winner made, and the winner's answer
            # is the item at it.
            assert loser.json()["error"]["etag"] == winner.headers["ETag"]
            got = await live.api.client.get(url, headers=live.api.admin)
            assert got.headers["ETag"] == winner.headers["ETag"]
            assert got.json()["data"]["title"] == winner.json()["data"]["title"]
            headers["If-Match"] = winner.headers["ETag"]
        # A delete and an update at one version: one of them.
        deleted, updated = await asyncio.gather(
            live.api.client.delete(url, headers=headers),
            other_node.patch(url, headers=headers, json={"title": "late"}),
        )
    assert sorted((deleted.status_code, updated.status_code)) in ([200, 404], [200, 412])
