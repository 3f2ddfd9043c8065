"""The client manager's index of each socket's rooms (``cluster.Manager``).

python-socketio finds a socket's rooms by visiting every room, so N sockets
going at once cost N x rooms; livebase's manager keeps each socket's rooms.
These check that the index and python-socketio's own tables agree.
"""

from __future__ import annotations

from livebase.realtime.cluster import NAMESPACE, Manager


def _manager_with_sockets(count: int) -> Manager:
    manager = Manager("node-a")
    for i in range(count):
        sid, eio_sid = f"s{i}", f"e{i}"
        manager.basic_enter_room(sid, NAMESPACE, None, eio_sid=eio_sid)
        manager.basic_enter_room(sid, NAMESPACE, sid, eio_sid=eio_sid)
        manager.basic_enter_room(sid, NAMESPACE, f"user:{i % 3}")
        manager.basic_enter_room(sid, NAMESPACE, "collection:posts")
    return manager


def test_a_sockets_rooms_are_the_ones_python_socketio_lists() -> None:
    manager = _manager_with_sockets(5)
    manager.basic_leave_room("s1", NAMESPACE, "collection:posts")
    for i in range(5):
        sid = f"s{i}"
        listed = {name for name, room in manager.rooms[NAMESPACE].items() if name and sid in room}
        assert set(manager.get_rooms(sid, NAMESPACE)) == listed


def test_disconnecting_every_socket_leaves_no_room_behind() -> None:
    manager = _manager_with_sockets(50)
    manager.callbacks["s0"] = {}
    for i in range(50):
        manager.basic_disconnect(f"s{i}", NAMESPACE)
    assert manager.rooms.get(NAMESPACE, {}) == {}
    assert manager.callbacks == {}
    assert manager.get_rooms("s0", NAMESPACE) == []


def test_closing_a_room_takes_it_out_of_each_sockets_rooms() -> None:
    manager = _manager_with_sockets(4)
    manager.basic_close_room("collection:posts", NAMESPACE)
    assert all("collection:posts" not in manager.get_rooms(f"s{i}", NAMESPACE) for i in range(4))
    assert "collection:posts" not in manager.rooms[NAMESPACE]
