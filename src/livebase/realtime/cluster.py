"""The client manager python-socketio sees: rooms here, and what crosses processes.

:class:`Manager` is python-socketio's in-memory ``AsyncManager`` (rooms and
sockets of this process) plus a :class:`~livebase.realtime.pubsub.base.PubSub`
backend for everything that crosses processes. It is not one of
python-socketio's pub/sub managers: their message format and their one
channel are not ours (one message per event on a channel per collection,
confirmed changes of rules, versioned messages, see :mod:`messages`).

python-socketio's public API on ``sio`` keeps its meaning in a cluster:

- ``emit`` to everyone, a room, a list of rooms or a sid: sent here, then
  published once; every other process emits it to its own sockets.
- ``enter_room`` / ``leave_room`` of a socket on another process, and
  ``disconnect`` of one: published; the process holding it acts.
- ``close_room``: closed here, then published.
- Refused with ``ValueError`` in a cluster: an ``emit`` (or ``call``) with
  a callback to anything but a socket of this process, since its answer
  could not come back; an ``emit`` of binary data.

With a backend that is alone (one process) none of this builds a message.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import socketio
from bidict import ValueDuplicationError
from socketio.packet import Packet

from livebase.realtime import messages
from livebase.realtime.messages import Message
from livebase.realtime.pubsub.base import PubSub
from livebase.realtime.pubsub.memory import MemoryPubSub

_log = logging.getLogger("livebase.cluster")
NAMESPACE = "/"
UNUSED_AFTER = 10.0  # seconds a collection stays subscribed after its last listener
CONFIRM_WAIT = 2.0  # how long a change of rules waits for the other processes to apply it
ASK_WAIT = 2.0  # how long a question waits for the other processes' answers

Receive = Callable[[Message], Awaitable[None]]
Connected = Callable[[str], Awaitable[None]]
Answer = Callable[[str, Any], Awaitable[Any]]  # (what, body) -> this process's answer


class Manager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's manager, telling us when a socket is fully connected,
    and sharing events with the other processes through ``pubsub``.

    ``connect`` runs after the CONNECT packet went out, so rooms joined and
    events sent from ``on_connected`` can never reach the client before it
    is connected.
    """

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id
        self.on_connected: Connected | None = None
        self._pubsub: PubSub = MemoryPubSub(node_id)  # alone until start()
        self._receive: Receive | None = None
        self._wanted: dict[str, float] = {}  # collection -> when a local listener last asked
        self._confirmations: dict[str, _Confirmation] = {}
        self._questions: dict[str, _Answers] = {}
        self.answer: Answer | None = None  # answers the other processes' questions
        self._refused: set[tuple[str, Any]] = set()  # (node, version) already logged
        self.received = 0
        # (namespace, sid) -> the rooms it is in: python-socketio finds them by
        # visiting every room, so N sockets going at once cost N x rooms.
        self._rooms_of: dict[tuple[str, Any], set[Any]] = {}

    @property
    def clustered(self) -> bool:
        return not self._pubsub.alone

    # Room membership is local bookkeeping; synchronous versions let the
    # pipeline change rooms without yielding to the event loop.
    def join(self, sid: str, room: str) -> None:
        self.basic_enter_room(sid, NAMESPACE, room)

    def part(self, sid: str, room: str) -> None:
        self.basic_leave_room(sid, NAMESPACE, room)

    def basic_enter_room(self, sid: Any, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: Any, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[(namespace, sid)]

    def basic_disconnect(self, sid: Any, namespace: str, **kwargs: Any) -> None:
        """python-socketio's, leaving only the rooms the socket is in."""
        if namespace not in self.rooms:
            return
        for room in list(self._rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def get_rooms(self, sid: Any, namespace: str) -> list[Any]:
        return [room for room in self._rooms_of.get((namespace, sid), ()) if room is not None]

    def pre_connect_as(self, eio_sid: str, namespace: str, sid: str) -> str | None:
        """python-socketio's ``pre_connect`` with the sid chosen by the server (the
        old one, when a socket recovers its session); None if already connected."""
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:
            return None
        self.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
        self.pending_connect.setdefault(namespace, []).append(sid)
        return sid

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        if self.on_connected is not None and namespace == NAMESPACE:
            await self.on_connected(sid)
        return result

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, pubsub: PubSub, receive: Receive) -> None:
        """Share events through ``pubsub``; ``receive`` handles the other processes' events."""
        self._pubsub, self._receive = pubsub, receive
        await pubsub.start(self._on_message)

    async def stop(self) -> None:
        await self._pubsub.stop()

    # -- sending -------------------------------------------------------------------------

    def send(self, message: Message, collection: str | None = None) -> None:
        """Queue ``message`` for the other processes (in order, without waiting).

        With ``collection``, only processes with listeners for it receive it.
        """
        self._pubsub.publish(collection, messages.encode(message))

    async def send_confirmed(self, message: Message) -> None:
        """Send ``message`` and wait until every other process has handled it.

        For changes of rules (permissions, schemas): when the request that
        made one returns, every process already applies it. Bounded by
        ``CONFIRM_WAIT``; a process that does not answer in time (or Redis
        being away) does not fail the request.
        """
        ident = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        receivers: asyncio.Future[int] = loop.create_future()
        confirmation = self._confirmations[ident] = _Confirmation(loop.create_future())
        self._pubsub.publish(None, messages.encode(messages.confirmed(message, ident)), receivers)
        try:
            async with asyncio.timeout(CONFIRM_WAIT):
                confirmation.expect(await receivers)
                await confirmation.done
        except TimeoutError:
            _log.warning("not every process confirmed a change of rules within %s s", CONFIRM_WAIT)
        finally:
            del self._confirmations[ident]

    async def ask(self, what: str, body: Any) -> list[tuple[str, Any]]:
        """Ask every other process ``what`` about ``body``; their (node, answer)s.

        Bounded by ``ASK_WAIT``: a process that does not answer in time is
        left out (the caller says so), and Redis being away means no answers.
        """
        if not self.clustered:
            return []
        ident = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        receivers: asyncio.Future[int] = loop.create_future()
        answers = self._questions[ident] = _Answers(loop.create_future())
        self._pubsub.publish(None, messages.encode(messages.question(what, body, ident)), receivers)
        try:
            async with asyncio.timeout(ASK_WAIT):
                answers.expect(await receivers)
                await answers.done
        except TimeoutError:
            _log.warning("not every process answered a %s question within %s s", what, ASK_WAIT)
        finally:
            del self._questions[ident]
        return answers.received

    async def _answer(self, sender: str, message: Message) -> None:
        if self.answer is None:
            return
        body = await self.answer(message["what"], message["body"])
        self.send(messages.answer(message["ask"], sender, self.node_id, body))

    # -- receiving ---------------------------------------------------------------------------

    async def _on_message(self, sender: str, data: bytes) -> None:
        try:
            message = messages.decode(data)
        except messages.VersionMismatch as exc:
            self._refuse(sender, exc.version)
            return
        except Exception:
            _log.exception("ignored a cluster message from node %s that could not be read", sender)
            return
        self.received += 1
        try:
            kind = message["type"]
            if kind == messages.ACK:
                if message["to"] == self.node_id and message["confirm"] in self._confirmations:
                    self._confirmations[message["confirm"]].acknowledged()
                return
            if kind == messages.QUESTION:
                await self._answer(sender, message)
                return
            if kind == messages.ANSWER:
                if message["to"] == self.node_id and message["ask"] in self._questions:
                    self._questions[message["ask"]].add(message["node"], message["body"])
                return
            if kind in messages.SOCKETIO:
                await self._socketio(message)
            else:
                assert self._receive is not None
                await self._receive(message)
            if "confirm" in message:
                self.send(messages.ack(message["confirm"], sender))
        except Exception:
            _log.exception("ignored a cluster message that could not be handled")

    def _refuse(self, sender: str, version: Any) -> None:
        """Say once per (node, version) that a node of another version is being ignored."""
        if (sender, version) in self._refused:
            return
        self._refused.add((sender, version))
        _log.error(
            "ignoring cluster messages from node %s: it speaks message version %s, this node "
            "(%s) speaks version %s; run the same livebase version on every node",
            sender,
            version,
            self.node_id,
            messages.VERSION,
        )

    # -- subscriptions -----------------------------------------------------------------------

    async def want(self, collections: Iterable[str]) -> None:
        """Receive these collections' events from now on.

        Returns once the backend confirmed the subscriptions (bounded), so
        that a client told "connected" or "joined" gets every change made
        after that, wherever it is made.
        """
        if not self.clustered:
            return
        now = time.monotonic()
        wanted = list(collections)
        for collection in wanted:
            self._wanted[collection] = now
        await self._pubsub.subscribe(wanted)

    async def keep_only(self, collections: set[str]) -> None:
        """Stop receiving collections nobody here has listened to for a while."""
        stale_before = time.monotonic() - UNUSED_AFTER
        unused = [
            c for c, asked in self._wanted.items() if c not in collections and asked < stale_before
        ]
        now = time.monotonic()
        for collection in collections:
            if collection in self._wanted:
                self._wanted[collection] = now
        for collection in unused:
            del self._wanted[collection]
        if unused:
            await self._pubsub.unsubscribe(unused)

    def counters(self) -> dict[str, int]:
        return {**self._pubsub.counters(), "received": self.received}

    # -- python-socketio's API, across processes -------------------------------------------

    def _is_here(self, sid: Any, namespace: str) -> bool:
        return isinstance(sid, str) and self.eio_sid_from_sid(sid, namespace) is not None

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        namespace = namespace or NAMESPACE
        shared = (
            self.clustered and not kwargs.get("ignore_queue") and not self._is_here(room, namespace)
        )
        if shared:
            if callback is not None:
                raise ValueError(
                    "an emit with a callback (or sio.call) reaches only a socket of this "
                    "process in a cluster: its answer could not come back from another one"
                )
            args = list(data) if isinstance(data, tuple) else [data]
            if Packet.data_is_binary(args):
                raise ValueError("binary data cannot be emitted across the processes of a cluster")
        await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback)
        if shared:
            self.send(messages.emit(event, args, namespace, room, skip_sid))

    async def enter_room(self, sid: str, namespace: str, room: str, eio_sid: Any = None) -> Any:
        if self.clustered and not self._is_here(sid, namespace):
            self.send(messages.enter_room(sid, room, namespace))
            return None
        return await super().enter_room(sid, namespace, room, eio_sid=eio_sid)

    async def leave_room(self, sid: str, namespace: str, room: str) -> Any:
        if self.clustered and not self._is_here(sid, namespace):
            self.send(messages.leave_room(sid, room, namespace))
            return None
        return await super().leave_room(sid, namespace, room)

    async def close_room(self, room: str, namespace: str) -> Any:
        result = await super().close_room(room, namespace)
        if self.clustered:
            self.send(messages.close_room(room, namespace or NAMESPACE))
        return result

    async def can_disconnect(self, sid: str, namespace: str) -> bool:
        """Whether ``sio.disconnect(sid)`` goes on here; if ``sid`` is elsewhere, tell them."""
        if self.clustered and not self._is_here(sid, namespace):
            self.send(messages.disconnect(sid, namespace or NAMESPACE))
            return False
        return bool(self.is_connected(sid, namespace))

    async def _socketio(self, message: Message) -> None:
        """One of the calls above, made on another process: act on this process's sockets."""
        kind, namespace = message["type"], message["namespace"]
        if kind == messages.EMIT:
            args = message["args"]
            data = args[0] if len(args) == 1 else tuple(args)
            await super().emit(
                message["event"], data, namespace, room=message["to"], skip_sid=message["skip_sid"]
            )
        elif kind == messages.CLOSE_ROOM:
            await super().close_room(message["room"], namespace)
        elif not self._is_here(message["sid"], namespace):
            return  # a socket of another process
        elif kind == messages.ENTER_ROOM:
            await super().enter_room(message["sid"], namespace, message["room"])
        elif kind == messages.LEAVE_ROOM:
            await super().leave_room(message["sid"], namespace, message["room"])
        elif kind == messages.DISCONNECT:
            await self.server.disconnect(message["sid"], namespace, ignore_queue=True)


class _Confirmation:
    """Acknowledgements of one confirmed message, until as many as expected arrived."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self._acks = 0
        self._expected: int | None = None

    def acknowledged(self) -> None:
        self._acks += 1
        self._check()

    def expect(self, count: int) -> None:
        self._expected = count
        self._check()

    def _check(self) -> None:
        if self._expected is not None and self._acks >= self._expected and not self.done.done():
            self.done.set_result(None)


class _Answers:
    """The answers to one question, until as many as expected arrived."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.received: list[tuple[str, Any]] = []
        self._expected: int | None = None

    def add(self, node: str, body: Any) -> None:
        self.received.append((node, body))
        self._check()

    def expect(self, count: int) -> None:
        self._expected = count
        self._check()

    def _check(self) -> None:
        if (
            self._expected is not None
            and len(self.received) >= self._expected
            and not self.done.done()
        ):
            self.done.set_result(None)
