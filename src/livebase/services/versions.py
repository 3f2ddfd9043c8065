"""Item versions, and the preconditions of conditional writes (``If-Match``).

An item's version is the id of its newest change log entry
(``storage/changelog.py``, :func:`~livebase.storage.changelog.version_of`):
every committed change of the item logs one, whoever wrote it, so no two
states of an item share a version, and a timestamp's ties and clock steps
do not matter. An item with no entry (the log was pruned, or the row
predates the log) has version 0 until its next change. Only logged
collections have versions (``relay.logged``); every collection written
through ``/items`` is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Precondition", "Versioned"]


@dataclass(frozen=True)
class Precondition:
    """What a conditional write requires of the item's current version: one of
    ``versions``, or, with ``any_version``, only that the item exists. Empty, it
    allows no version (every tag it was given could never match: a weak one, say)."""

    versions: frozenset[int] = frozenset()
    any_version: bool = False

    def allows(self, version: int) -> bool:
        return self.any_version or version in self.versions


@dataclass(frozen=True)
class Versioned:
    """An item as a read or write answers it, and its version: None where the
    caller may not be told (it may not read the item) or the collection has none."""

    item: dict[str, Any]
    version: int | None
    # The answer holds related items (fields paths): the version is the item's own,
    # so it says nothing of them and never answers a read with 304 Not Modified.
    related: bool = False
