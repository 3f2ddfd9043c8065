"""notification.new / .seen / .deleted reach user:{userId} and nobody else."""

from __future__ import annotations

from tests.helpers import bearer
from tests.realtime.conftest import Live

FIELDS = {"id", "type", "title", "message", "data", "seen", "userId", "createdAt"}


async def test_notification_events_reach_only_their_user(live: Live) -> None:
    token, user = await live.api.user("ann@example.com")
    other_token, _ = await live.api.user("bob@example.com")
    ann = await live.connect(token, "ann")
    bob = await live.connect(other_token, "bob")
    admin = await live.connect(live.api.admin_token, "admin")
    body = {
        "type": "info",
        "title": "Hi",
        "message": "m",
        "data": {"k": 1},
        "userIds": [user["id"]],
    }
    await live.api.ok("POST", "/notifications/send", 201, headers=live.api.admin, json=body)

    new = await ann.wait_for("notification.new")
    assert set(new["notification"]) == FIELDS and new["timestamp"].endswith("Z")
    assert new["notification"]["seen"] is False and new["notification"]["data"] == {"k": 1}
    key = new["notification"]["id"]

    await live.api.ok(
        "POST", "/notifications/mark-seen", headers=bearer(token), json={"notificationIds": [key]}
    )
    seen = await ann.wait_for("notification.seen")
    assert seen["notification"]["id"] == key and seen["notification"]["seen"] is True

    await live.api.ok("DELETE", f"/notifications/{key}", headers=bearer(token))
    deleted = await ann.wait_for("notification.deleted")
    assert deleted["notification"]["id"] == key

    await live.sentinel(bob, admin)
    for outsider in (bob, admin):
        assert not [e for e, _ in outsider.events if e.startswith("notification.")]
