"""``GET /metrics`` against a started server driven by real Socket.IO clients (SPEC §15).

Each test scrapes before and after doing the thing for real, and checks that
the family is there with its labels and that its value moved. (The server
runs in the test's process, whose counters other tests' servers may have
moved too: only differences count.) The structured log line of each
realtime decision is checked alongside, from the records' ``extra`` fields.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.prometheus import Scrape, scrape
from tests.realtime.conftest import TIMEOUT, Live
from tests.realtime.recovering import Recovering
from tests.realtime.test_slow_consumer import (
    MAX_QUEUE_BYTES,
    Stuck,
    byte_bound,
    session_ends,
    write_big_items,
    writer_and_reader,
)

# One node, so that the node scraped is the one its clients are on.
pytestmark = pytest.mark.parametrize("topology", ["alone"])


async def _scrape(live: Live) -> Scrape:
    return await scrape(live.api.client, live.api.admin)


def _moved(before: Scrape, after: Scrape, sample: str, **labels: str) -> float:
    return after.value(sample, **labels) - before.value(sample, **labels)


async def _until(live: Live, check: Any) -> Scrape:
    """Scrape until ``check(scrape)`` holds (figures a disconnect changes settle in the
    background), and return that scrape."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        scraped = await _scrape(live)
        if check(scraped):
            return scraped
        assert asyncio.get_running_loop().time() < deadline, "the figures never settled"
        await asyncio.sleep(0.05)


async def test_sockets_events_frames_and_delivery_latency(live: Live) -> None:
    await live.api.collection("notes", {"text": {"type": "String"}})
    user_token, _ = await live.api.user("ann@example.com")
    await live.api.allow("user", "notes", "read", fields=["*"])
    before = await _scrape(live)

    ann = await live.connect(user_token, "ann")
    admin = await live.connect(live.api.admin_token, "admin")
    opened = await _scrape(live)
    transport = live.transport
    assert _moved(before, opened, "livebase_sockets_open", transport=transport) == 2
    assert opened.labels("livebase_sockets_open", "transport") >= {"websocket", "polling"}
    assert _moved(before, opened, "livebase_sockets_by_role", role="user") == 1
    assert _moved(before, opened, "livebase_sockets_by_role", role="administrator") == 1
    assert opened.family("livebase_queued_bytes").type == "gauge"

    await live.api.ok("POST", "/items/notes", 201, headers=live.api.admin, json={"text": "hi"})
    for client in (ann, admin):
        await client.wait_for("item.created")
    after = await _scrape(live)

    published = "livebase_events_published_total"
    assert _moved(before, after, published, type="item.created") == 1
    frames = "livebase_frames_delivered_total"
    assert _moved(opened, after, frames, type="item.created") == 2
    assert _moved(before, after, frames, type="connected") == 2
    latency = "livebase_delivery_latency_seconds"
    assert after.family(latency).type == "histogram"
    assert _moved(opened, after, f"{latency}_count") == 1
    assert _moved(opened, after, f"{latency}_bucket", le="+Inf") == 1
    assert after.value(f"{latency}_sum") > before.value(f"{latency}_sum")
    # The change log: the entry is there, and published.
    assert after.value("livebase_change_log_entries") >= 1
    assert after.family("livebase_change_log_lag_entries").samples[0].value == 0

    await ann.sio.disconnect()
    await admin.sio.disconnect()
    await _until(
        live, lambda s: s.value("livebase_sockets_open") == before.value("livebase_sockets_open")
    )


@pytest.mark.parametrize("transport", ["websocket"])
async def test_live_subscriptions_and_broadcasts(live: Live) -> None:
    await live.api.collection("notes", {"text": {"type": "String"}})
    before = await _scrape(live)
    ann, bob = await live.in_room("board:1", "ann", "bob")
    answer = await ann.call("subscribe", {"collection": "notes"})
    assert answer["success"] is True, answer

    sent = await ann.call("broadcast", {"room": "board:1", "event": "cursor", "data": 1})
    assert sent["success"] is True
    await bob.wait_for("room.message")
    not_joined = await ann.call("broadcast", {"room": "board:2", "event": "cursor", "data": 1})
    assert not_joined["success"] is False
    malformed = await ann.call("broadcast", {"room": "board:1"})
    assert malformed["success"] is False
    after = await _scrape(live)

    assert _moved(before, after, "livebase_live_subscriptions") == 1
    assert _moved(before, after, "livebase_broadcasts_total") == 1
    refused = "livebase_broadcasts_refused_total"
    assert _moved(before, after, refused, reason="room") == 1
    assert _moved(before, after, refused, reason="invalid") == 1
    assert _moved(before, after, "livebase_frames_delivered_total", type="room.message") == 1
    assert _moved(before, after, "livebase_events_published_total", type="room.message") == 1


@pytest.mark.parametrize("transport", ["websocket"])
async def test_recoveries_succeeded_and_refused_by_reason(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livebase.realtime")
    ann_token, ann_user = await live.api.user("ann@example.com")
    clients: list[Recovering] = []
    try:
        before = await _scrape(live)
        ann = Recovering(live.base_url)
        clients.append(ann)
        await ann.connect(ann_token)
        await ann.drop()
        assert (await ann.next_connected())["recovered"] is True

        thief = Recovering(live.base_url)
        clients.append(thief)
        hello = await thief.connect(live.api.admin_token, pid=ann.sio.pid, offset=ann.sio.offset)
        assert hello["recovered"] is False
        stranger = Recovering(live.base_url)
        clients.append(stranger)
        assert (await stranger.connect(ann_token, pid="x" * 24, offset="1"))["recovered"] is False
        after = await _scrape(live)
    finally:
        for client in clients:
            await client.close()

    assert _moved(before, after, "livebase_recoveries_total") == 1
    refused = "livebase_recoveries_refused_total"
    assert _moved(before, after, refused, reason="other_user") == 1
    assert _moved(before, after, refused, reason="unknown_session") == 1
    lines = [vars(r) for r in caplog.records if getattr(r, "event", None) == "recovery_refused"]
    reasons = {line["reason"]: line["user_id"] for line in lines}
    assert reasons["unknown_session"] == ann_user["id"]
    assert "other_user" in reasons


@byte_bound
async def test_a_slow_consumer_disconnect_is_counted_and_logged_with_its_figures(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="livebase.realtime")
    token, user_id, reader, _ = await writer_and_reader(live)
    before = await _scrape(live)
    stuck = await Stuck.connect(live, token)
    try:
        await write_big_items(live, token)
        await live.sentinel(reader)
        await session_ends(live, stuck.eio_sid)
    finally:
        stuck.abort()
    after = await _scrape(live)

    disconnects = "livebase_slow_consumer_disconnects_total"
    assert _moved(before, after, disconnects, bound="bytes") == 1
    assert after.labels(disconnects, "bound") >= {"bytes"}
    (fields,) = [
        vars(r)
        for r in caplog.records
        if getattr(r, "event", None) == "slow_consumer_disconnect" and vars(r)["sid"] == stuck.sid
    ]
    assert fields["user_id"] == user_id
    assert fields["bound"] == "bytes" and fields["limit"] == MAX_QUEUE_BYTES
    assert fields["queued_bytes"] > MAX_QUEUE_BYTES
    assert isinstance(fields["queued_packets"], int)
