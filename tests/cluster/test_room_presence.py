"""Room presence across real processes: a process that dies without a word
takes its room members with it (docs/realtime.md, "Room presence")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.cluster.conftest import cluster_of, started
from tests.cluster.test_crash import sigkill

GRACE = 1.0  # SOCKET_PRESENCE_GRACE of cluster_env
NODE_EXPIRES = 10.0  # a process counts as gone 10 s after its last heartbeat


async def test_the_members_of_a_killed_process_leave_within_the_grace_and_ten_seconds(
    fresh_database: str, cluster_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    with started(tmp_path, 2, cluster_env()) as servers:
        async with cluster_of(servers) as cluster:
            doomed, survivor = cluster.nodes
            token = survivor.api.admin_token
            member = await cluster.connect(doomed, token, "member")
            watcher = await cluster.connect(survivor, token, "watcher")
            for client in (member, watcher):
                assert (await client.call("join", "board:1"))["success"] is True
            state = {"name": "on the doomed node"}
            await member.call("presence.track", {"room": "board:1", "state": state})
            key = member.sio.get_sid("/")
            joined = await watcher.wait_for("presence.join")
            assert joined["key"] == key
            assert (await watcher.call("presence.list", {"room": "board:1"}))["members"] != []

            sigkill(doomed.server)
            killed_at = time.monotonic()
            left = await watcher.wait_for("presence.leave", within=GRACE + NODE_EXPIRES + 10)
            took = time.monotonic() - killed_at

            assert left["key"] == key and left["room"] == "board:1"
            assert took <= GRACE + NODE_EXPIRES + 3, took  # a heartbeat or two of slack
            listed = await watcher.call("presence.list", {"room": "board:1"})
            assert listed["members"] == []
            await cluster.sentinel(survivor, watcher)
            assert len(watcher.received("presence.leave")) == 1
