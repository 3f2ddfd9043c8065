"""Recovery across processes: a client's session survives a reconnect to another
node, the death of its node, and the restart of a lone SQLite server.

Servers are real ``livebase serve`` processes; clients are
:class:`livebase.client.LivebaseClient` (through ``tests.realtime.recovering``),
kept away while items are written, then let back, as a phone out of signal.
The same scenarios with the official JavaScript client are in
``tests/js/recovery.test.mjs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis import asyncio as redis

from livebase.realtime.stored_sessions import pid_key
from tests.cluster.conftest import Cluster, api_of, cluster_of, server_env, started
from tests.cluster.test_crash import sigkill
from tests.conftest import REDIS_TEST_URL
from tests.helpers import Api
from tests.realtime.conftest import TIMEOUT
from tests.realtime.recovering import Recovering
from tests.servers import Server, running_server

PROBE = Path(__file__).with_name("probe_extension.py")


@contextlib.asynccontextmanager
async def recovering(url: str) -> AsyncIterator[Recovering]:
    client = Recovering(url)
    try:
        yield client
    finally:
        await client.close()


async def notes(api: Api) -> None:
    await api.collection("notes", {"text": {"type": "String"}})


async def write(api: Api, text: str) -> None:
    await api.ok("POST", "/items/notes", 201, headers=api.admin, json={"text": text})


async def away_while(client: Recovering, api: Api, texts: list[str]) -> None:
    """Drop ``client`` and keep it away while ``texts`` are written through ``api``."""
    await client.drop(stay_away=True)
    for text in texts:
        await write(api, text)


def back_to(client: Recovering, url: str) -> None:
    """Let ``client`` reconnect, to ``url`` this time (a load balancer's choice)."""
    client.sio.connection_url = url
    client.gate.set()


async def test_a_client_recovers_on_the_other_node(two: Cluster) -> None:
    first, second = two.nodes
    await notes(first.api)
    async with recovering(first.url) as client:
        await client.connect(first.api.admin_token)
        sid = client.sio.get_sid("/")
        await away_while(client, second.api, ["a", "b", "c"])
        back_to(client, second.url)
        hello = await client.next_connected()
        assert hello["recovered"] is True and hello["missed"] == 3
        assert client.sio.get_sid("/") == sid
        await client.wait(lambda: client.texts() == ["a", "b", "c"])
        await write(first.api, "live")
        await client.wait(lambda: client.texts()[-1:] == ["live"])


async def test_live_queries_recover_on_the_other_node(two: Cluster) -> None:
    """The subscription moves with the session: the other node asks it again and
    replays the changes it missed as subscription events."""
    first, second = two.nodes
    await notes(first.api)
    async with recovering(first.url) as client:
        await client.connect(first.api.admin_token)
        query = await client.sio.live_query(
            {"collection": "notes", "filter": {"text": {"startsWith": "k"}}}
        )
        await away_while(client, second.api, ["keep 1", "drop", "keep 2"])
        back_to(client, second.url)
        hello = await client.next_connected()
        assert hello["recovered"] is True
        await client.wait(lambda: len(query.items) == 2)
        assert sorted(item["text"] for item in query.items.values()) == ["keep 1", "keep 2"]
        await write(first.api, "keep 3")
        await client.wait(lambda: len(query.items) == 3)
        added = [p for name, p in client.events if name == "subscription.added"]
        assert [p["item"]["text"] for p in added] == ["keep 1", "keep 2", "keep 3"]


async def stored(redis_key: str, pid: str | None) -> None:
    """The session of ``pid`` is in Redis (before the client heard its pid)."""
    assert pid is not None
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        name = f"{redis_key}:session:{pid_key(pid)}"
        assert await client.exists(name), "the session is stored before the CONNECT reply"
    finally:
        await client.aclose()


async def test_a_client_recovers_after_its_node_was_killed(
    fresh_database: str,
    cluster_env: Callable[..., dict[str, str]],
    tmp_path: Path,
    redis_key: str,
) -> None:
    with started(tmp_path, 2, cluster_env()) as servers:
        async with cluster_of(servers) as cluster:
            doomed, survivor = cluster.nodes
            await notes(survivor.api)
            async with recovering(doomed.url) as client:
                await client.connect(survivor.api.admin_token)
                await stored(redis_key, client.sio.pid)
                await write(survivor.api, "before")
                await client.wait(lambda: client.texts() == ["before"])
                client.gate.clear()  # it stays away until told
                sigkill(doomed.server)
                await client.wait_disconnected()
                for text in ("x", "y"):
                    await write(survivor.api, text)
                back_to(client, survivor.url)
                hello = await client.next_connected()
                assert hello["recovered"] is True and hello["missed"] == 2
                await client.wait(lambda: client.texts() == ["before", "x", "y"])


@pytest.mark.parametrize("stop", ["graceful", "SIGKILL"])
async def test_a_client_recovers_across_a_restart_of_a_lone_sqlite_server(
    tmp_path: Path, stop: str
) -> None:
    env = server_env(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path, PROBE)
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(running_server(tmp_path, env))
        async with api_of(first) as api:
            await notes(api)
            token = api.admin_token
        client = Recovering(first.base_url)
        try:
            await client.connect(token)
            await write_and_wait(client, first, "before")
            client.gate.clear()
            if stop == "SIGKILL":
                sigkill(first)
            else:
                first.process.terminate()
                first.process.wait(timeout=TIMEOUT)
            await client.wait_disconnected()
            second = stack.enter_context(running_server(tmp_path, env))
            async with api_of(second) as api:
                for text in ("after 1", "after 2"):
                    await write(api, text)
            back_to(client, second.base_url)
            hello = await client.next_connected()
            assert hello["recovered"] is True and hello["missed"] == 2
            await client.wait(lambda: client.texts() == ["before", "after 1", "after 2"])
        finally:
            await client.close()


async def write_and_wait(client: Recovering, server: Server, text: str) -> None:
    async with api_of(server) as api:
        await write(api, text)
    await client.wait(lambda: client.texts()[-1:] == [text])
