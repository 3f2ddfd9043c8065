"""Loaded into the servers of test_crash.py: holds a publish, records what is published.

Environment of the server process:

- ``CRASH_RECORD=<file>``: every event about the ``notes`` collection this
  process's ``EventBus`` publishes is appended to the file as a JSON line
  (``{"published": action, "title", "position", "pid"}``). The recorder
  wraps ``EventBus.publish`` on the class when this module is imported,
  because extensions are imported before start-up while ``setup()`` runs
  after the relay's start-up publishing (``livebase.app.create_app``'s
  lifespan), which a recorder installed in ``setup()`` would miss.
- ``CRASH_HOLD=1``: ``setup()`` wraps this process's ``EventBus.publish`` so
  that publishing the event of the ``notes`` item titled ``"hold"`` writes
  ``{"held": position, ...}`` to the record and then waits forever: the
  process stays between that change's commit and its publish.

``GET /crash/relay`` answers ``{"leading", "published"}`` of this process's
relay; ``POST /crash/freeze-cursor`` makes its relay stop saving its cursor
(as if it died before each save), so that a process taking over publishes
again what this one already published.

Each line is written with its own open/close, so a SIGKILL loses none.
"""

import asyncio
import json
import os

from fastapi import APIRouter

from livebase.services.events import ChangeEvent, EventBus

RECORD = os.environ.get("CRASH_RECORD")
HOLD = os.environ.get("CRASH_HOLD") == "1"
COLLECTION = "notes"

router = APIRouter()
_services = None


def _record(line):
    if RECORD:
        with open(RECORD, "a") as sink:
            sink.write(json.dumps({**line, "pid": os.getpid()}) + "\n")


def _about_notes(event):
    return isinstance(event, ChangeEvent) and event.collection == COLLECTION


_publish = EventBus.publish


async def _recording_publish(self, *events):
    for event in events:
        if _about_notes(event):
            _record(
                {
                    "published": event.action,
                    "title": event.item.get("title"),
                    "position": event.position,
                }
            )
    await _publish(self, *events)


EventBus.publish = _recording_publish


def setup(services):
    global _services
    # The extension API (ExtensionServices) does not offer the event bus; the
    # container it wraps does.
    _services = services._services
    if not HOLD:
        return
    bus = _services.events
    publish = bus.publish

    async def holding(*events):
        for event in events:
            if _about_notes(event) and event.item.get("title") == "hold":
                _record({"held": event.action, "title": "hold", "position": event.position})
                await asyncio.Event().wait()  # forever: SIGKILL ends it
        await publish(*events)

    bus.publish = holding


@router.get("/crash/relay")
async def relay_state():
    relay = _services.relay
    return {"data": {"leading": relay.leading, "published": relay.published}}


@router.post("/crash/freeze-cursor")
async def freeze_cursor():
    relay = _services.relay

    async def not_saved(position):
        return None

    relay.log.save_published = not_saved
    return {"data": {"frozen": True}}
