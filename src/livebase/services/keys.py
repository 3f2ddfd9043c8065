"""Primary keys as clients give them: in a path, as text, or in a body."""

from __future__ import annotations

from typing import Any

from livebase.services.errors import BadRequest, ServiceError
from livebase.services.values import coerce_value
from livebase.storage.kinds import KINDS
from livebase.storage.model import Collection


def item_key(collection: Collection, raw: object, index: int | None = None) -> Any:
    """The primary key value from a path or body; a bad one is a 400 (naming its index)."""
    prefix = "" if index is None else f"item {index}: "
    kind = collection.fields[collection.primary_key].kind
    from_text = KINDS[kind].from_text
    if isinstance(raw, str) and from_text is not None:
        try:
            raw = from_text(raw)
        except ValueError:
            raise BadRequest(f"{prefix}invalid id {raw!r}: expected an integer") from None
    try:
        key = coerce_value(kind, raw, "id")
    except ServiceError as exc:
        message = exc.message.removeprefix("id: ")
        raise BadRequest(f"{prefix}invalid id: {message}") from None
    if key is None:
        raise BadRequest(f"{prefix}an id is required")
    return key
