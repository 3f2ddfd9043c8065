"""Files: uploads streamed to storage, their metadata rows, and who may see them."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from livebase.services import filters, listing
from livebase.services.accountability import Accountability
from livebase.services.errors import BadRequest, Forbidden, NotFound, TooLarge, object_with
from livebase.services.permissions import Action as PermissionAction
from livebase.services.permissions import PermissionService, Scope
from livebase.services.query import Query
from livebase.services.relay import ChangeRelay
from livebase.services.sniffing import sniff
from livebase.services.values import coerce_value
from livebase.storage import system
from livebase.storage.database import Database
from livebase.storage.files import FileStorage, Upload, UploadTooLarge
from livebase.storage.model import FieldKind
from livebase.storage.types import utcnow

_collection = system.SYSTEM_COLLECTIONS["files"]
_table = _collection.table
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")
MAX_FILENAME = 255
_NEWEST_FIRST = (("createdAt", True),)
FileRow = dict[str, Any]


def safe_filename(raw: str | None) -> str:
    """The client's file name without paths, control characters or excess length."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .") or "file"
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        extension = extension[:16] if dot else ""
        name = (stem if dot else name)[: MAX_FILENAME - len(extension) - 1] + (dot + extension)
    return name


def public_file(row: Any) -> FileRow:
    return {name: row.get(name) for name in _collection.visible_fields}


@dataclass
class PendingUpload:
    """An upload being received; becomes a file with :meth:`FileService.complete`."""

    upload: Upload
    who: Accountability
    filename: str
    claimed_type: str | None


class FileService:
    def __init__(
        self,
        db: Database,
        storage: FileStorage,
        permissions: PermissionService,
        relay: ChangeRelay,
        max_bytes: int,
    ) -> None:
        self._db = db
        self._storage = storage
        self._permissions = permissions
        self._relay = relay
        self.max_bytes = max_bytes

    # -- uploading --------------------------------------------------------------------

    async def begin(
        self, who: Accountability, filename: str | None, claimed: str | None
    ) -> PendingUpload:
        if self._permissions.scope(who, _collection, "create") is None:
            raise Forbidden("you may not upload files")
        upload = await self._storage.begin(self.max_bytes)
        return PendingUpload(upload, who, safe_filename(filename), claimed)

    async def write(self, pending: PendingUpload, data: bytes) -> None:
        try:
            await pending.upload.write(data)
        except UploadTooLarge:
            await pending.upload.abort()
            raise TooLarge(f"file is larger than {self.max_bytes} bytes") from None

    async def abort(self, pending: PendingUpload) -> None:
        await pending.upload.abort()

    async def complete(self, pending: PendingUpload, fields: dict[str, str]) -> FileRow:
        """Keep the bytes and write the metadata row; on any error nothing remains."""
        upload = pending.upload
        try:
            if upload.size == 0:
                raise BadRequest("the file is empty", "EMPTY_FILE")
            row = {
                "id": str(uuid.UUID(upload.key)),
                "filename": pending.filename,
                "title": _title(fields.get("title")),
                "size": upload.size,
                "mimetype": sniff(upload.head, pending.claimed_type),
                "storageKey": upload.key,
                "uploadedBy": pending.who.user_id,
                "isPublic": _flag(fields.get("isPublic")),
                "createdAt": utcnow(),
            }
            await upload.finish()
            async with self._db.transaction(pending.who.user_id) as conn:
                await conn.execute(insert(_table).values(**row))
        except BaseException:
            await upload.abort()
            raise
        await self._relay.flush()
        return public_file(row)

    # -- reading and changing -------------------------------------------------------------

    def _scope(self, who: Accountability, action: PermissionAction) -> Scope:
        return self._permissions.require(who, _collection, action)

    async def find(self, who: Accountability, query: Query) -> tuple[list[FileRow], int]:
        """Files ``who`` may read matching ``query``, newest first, and how many in all."""
        scope = self._scope(who, "read")
        return await listing.read_list(self._db, _collection, scope, query, _NEWEST_FIRST)

    def _shown(self, scope: Scope, row: Any) -> FileRow:
        return {name: row.get(name) for name in listing.readable(_collection, scope)}

    async def _row(self, file_id: str) -> FileRow:
        try:
            key = coerce_value(FieldKind.UUID, file_id, "id")
        except Exception:
            raise NotFound(f"file {file_id!r} not found") from None
        async with self._db.connect() as conn:
            row = (await conn.execute(select(_table).where(_table.c.id == key))).mappings().first()
        if row is None:
            raise NotFound(f"file {file_id!r} not found")
        return dict(row)

    def _check_readable(self, who: Accountability, row: FileRow) -> Scope:
        """The read scope; a file ``who`` may not read looks missing (ids do not leak)."""
        read = self._permissions.scope(who, _collection, "read")
        if read is None or not filters.to_predicate(read.condition)(row):
            raise NotFound(f"file {row['id']!r} not found")
        return read

    async def _visible(
        self, who: Accountability, file_id: str, action: PermissionAction
    ) -> tuple[FileRow, Scope, Scope]:
        """The row, its read scope and the ``action`` scope, if ``who`` may ``action`` it."""
        row = await self._row(file_id)
        read = self._check_readable(who, row)
        scope = self._scope(who, action)
        if not filters.to_predicate(scope.condition)(row):
            raise Forbidden(f"you may not {action} this file")
        return row, read, scope

    async def get(self, who: Accountability, file_id: str) -> FileRow:
        row, read, _ = await self._visible(who, file_id, "read")
        return self._shown(read, row)

    async def update(self, who: Accountability, file_id: str, body: object) -> FileRow:
        changes = object_with(body, {"title", "isPublic", "filename"}, "file")
        row, read, scope = await self._visible(who, file_id, "update")
        values: dict[str, Any] = {}
        if "title" in changes:
            values["title"] = _title(changes["title"])
        if "filename" in changes:
            if not isinstance(changes["filename"], str):
                raise BadRequest("filename must be a string")
            values["filename"] = safe_filename(changes["filename"])
        if "isPublic" in changes:
            if not isinstance(changes["isPublic"], bool):
                raise BadRequest("isPublic must be true or false")
            values["isPublic"] = changes["isPublic"]
        for name in values:
            if not scope.field_allowed(name):
                raise Forbidden(f"you may not change field {name!r} of files")
        if values:
            async with self._db.transaction(who.user_id) as conn:
                await conn.execute(update(_table).where(_table.c.id == row["id"]).values(**values))
        return self._shown(read, {**row, **values})

    async def delete(self, who: Accountability, file_id: str) -> str:
        row, _, _ = await self._visible(who, file_id, "delete")
        async with self._db.transaction(who.user_id) as conn:
            await conn.execute(delete(_table).where(_table.c.id == row["id"]))
        await self._storage.delete(row["storageKey"])
        await self._relay.flush()
        return str(row["id"])

    async def asset(self, who: Accountability, file_id: str) -> FileRow:
        """The row behind ``GET /assets/{id}``: public files need no token."""
        row = await self._row(file_id)
        if not row["isPublic"]:
            self._check_readable(who, row)
        return row

    def read_bytes(self, row: FileRow, start: int = 0, end: int | None = None) -> Any:
        return self._storage.read(row["storageKey"], start, end)


def _title(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 255 or "\x00" in value:
        raise BadRequest("title must be a string of at most 255 characters")
    return value


def _flag(value: str | None) -> bool:
    if value in (None, "", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise BadRequest("isPublic must be true or false")
