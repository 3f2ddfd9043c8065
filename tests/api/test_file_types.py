"""The types uploads are stored and served as: nothing a browser runs, from our origin."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from livebase.app import services_of
from livebase.storage import system
from tests.api.test_files import _upload
from tests.helpers import Api

SCRIPT = b"alert(document.cookie)"


@pytest.mark.parametrize(
    ("content", "claimed"),
    [
        (SCRIPT, "text/ecmascript"),
        (SCRIPT, "text/x-javascript"),
        (SCRIPT, "text/jscript"),
        (SCRIPT, "text/javascript; charset=utf-8"),
        (SCRIPT, "text/livescript"),
        (SCRIPT, "application/javascript"),
        (SCRIPT, "application/x-javascript"),
        (SCRIPT, "application/ecmascript"),
        (b"<html><script>alert(1)</script></html>", "text/html"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/svg+xml"),
        (b'<?xml version="1.0"?><x/>', "application/xml"),
        (b'<?xml version="1.0"?><x/>', "text/xml"),
        (b"body { background: red }", "text/css"),
        (b"#!/bin/sh\nrm -rf /", "application/x-sh"),
        (b"MsgBox 1", "text/vbscript"),
    ],
)
async def test_active_text_is_stored_and_served_as_plain_text(
    api: Api, content: bytes, claimed: str
) -> None:
    uploaded = await _upload(api, content=content, type=claimed, filename="x.js")
    assert uploaded.status_code == 201, uploaded.text
    row = uploaded.json()["data"]
    assert row["mimetype"] == "text/plain"
    asset = await api.client.get(f"/assets/{row['id']}", headers=api.admin)
    assert asset.status_code == 200 and asset.content == content
    assert asset.headers["content-type"].split(";")[0] == "text/plain"
    assert asset.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("content", "claimed", "disposition"),
    [
        (b"a,b\n1,2\n", "text/csv", "attachment"),
        (b"# title\n", "text/markdown", "attachment"),
        (b'{"a": 1}', "application/json", "attachment"),
        (b"just text", "text/plain", "inline"),
    ],
)
async def test_harmless_text_keeps_its_claimed_type(
    api: Api, content: bytes, claimed: str, disposition: str
) -> None:
    row = (await _upload(api, content=content, type=claimed, filename="f")).json()["data"]
    assert row["mimetype"] == claimed
    asset = await api.client.get(f"/assets/{row['id']}", headers=api.admin)
    assert asset.headers["content-type"].split(";")[0] == claimed
    assert asset.headers["content-disposition"].startswith(disposition)


@pytest.mark.parametrize("stored", ["text/ecmascript", "text/html", "image/svg+xml", "nonsense"])
async def test_a_row_stored_with_an_active_type_is_served_as_a_download(
    api: Api, stored: str
) -> None:
    # As rows written before the allow-list: the type the client claimed.
    row = (await _upload(api, content=SCRIPT, type="text/plain", filename="x.js")).json()["data"]
    async with services_of(api.app).db.transaction() as conn:
        await conn.execute(
            update(system.table("files"))
            .where(system.table("files").c.id == row["id"])
            .values(mimetype=stored)
        )
    asset = await api.client.get(f"/assets/{row['id']}", headers=api.admin)
    assert asset.status_code == 200 and asset.content == SCRIPT
    assert asset.headers["content-type"] == "application/octet-stream"
    assert asset.headers["content-disposition"].startswith("attachment")
