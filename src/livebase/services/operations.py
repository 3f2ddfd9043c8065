"""A write request as operations: one per item, each with its action, key and body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livebase.services.errors import BadRequest
from livebase.services.events import Action
from livebase.services.versions import Precondition

Item = dict[str, Any]
MAX_BULK = 1000


@dataclass(frozen=True)
class Operation:
    """One item to create (``data``), update (``key`` and ``data``) or delete (``key``);
    an update or delete only if the item's version is one ``precondition`` allows."""

    action: Action
    key: Any = None
    data: Item | None = None
    precondition: Precondition | None = None


def body(data: object, index: int | None = None) -> Item:
    """The JSON object an item is written from; anything else is a 400 (naming its index)."""
    if not isinstance(data, dict):
        prefix = "" if index is None else f"item {index}: "
        raise BadRequest(f"{prefix}expected a JSON object")
    return data


def entries(data: object) -> list[Any]:
    """The elements of a bulk request: a non-empty JSON array of at most ``MAX_BULK``."""
    if not isinstance(data, list) or not data:
        raise BadRequest("expected a non-empty JSON array")
    if len(data) > MAX_BULK:
        raise BadRequest(f"at most {MAX_BULK} items per bulk request")
    return data
