"""The system collections (users, roles, permissions, sessions, schemas, ...)."""

from __future__ import annotations

from sqlalchemy import MetaData, Table

from livebase.storage.model import Collection, FieldKind, FieldSpec
from livebase.storage.tables import build_table

K = FieldKind
metadata = MetaData()


def _f(name: str, kind: FieldKind, **options: object) -> FieldSpec:
    return FieldSpec(name=name, kind=kind, **options)  # type: ignore[arg-type]


def _id() -> FieldSpec:
    return _f("id", K.UUID, primary_key=True, default="UUIDV4", allow_null=False)


def _created() -> FieldSpec:
    return _f("createdAt", K.DATETIME, managed=True, default="NOW")


def _updated() -> FieldSpec:
    return _f("updatedAt", K.DATETIME, managed=True, default="NOW")


_SYSTEM_FIELDS: dict[str, list[FieldSpec]] = {
    "roles": [
        _id(),
        _f("name", K.STRING, length=100, unique=True, allow_null=False),
        _f("description", K.TEXT),
        _created(),
    ],
    "users": [
        _id(),
        _f("email", K.STRING, unique=True, allow_null=False, validate={"isEmail": True}),
        _f("password", K.STRING, hidden=True),
        _f("firstName", K.STRING),
        _f("lastName", K.STRING),
        _f("role", K.STRING, length=100, allow_null=False),
        _f("status", K.STRING, length=20, allow_null=False, default="active"),
        _f("lastAccess", K.DATETIME, managed=True, quiet=True),
        _created(),
        _updated(),
    ],
    "sessions": [
        _id(),
        _f("userId", K.UUID, allow_null=False),
        _f("expiresAt", K.DATETIME, allow_null=False),
        _f("revokedAt", K.DATETIME),
        _created(),
    ],
    "permissions": [
        _id(),
        _f("role", K.STRING, length=100, allow_null=False),
        _f("collection", K.STRING, length=100, allow_null=False),
        _f("action", K.STRING, length=10, allow_null=False),
        _f("fields", K.JSON),
        _f("conditions", K.JSON),
        _created(),
    ],
    "schemas": [
        _f("collectionName", K.STRING, length=100, primary_key=True, allow_null=False),
        _f("schema", K.JSON, allow_null=False),
        _created(),
        _updated(),
    ],
    "notifications": [
        _id(),
        _f("userId", K.UUID, allow_null=False),
        _f("type", K.STRING, length=100),
        _f("title", K.STRING),
        _f("message", K.TEXT),
        _f("data", K.JSON),
        _f("seen", K.BOOLEAN, default=False),
        _created(),
    ],
    "files": [
        _id(),
        _f("filename", K.STRING),
        _f("title", K.STRING),
        _f("size", K.BIGINT),
        _f("mimetype", K.STRING),
        _f("storageKey", K.STRING, hidden=True),
        _f("uploadedBy", K.UUID),
        _f("isPublic", K.BOOLEAN, default=False),
        _created(),
    ],
}

# Collections written only through their own routes, never through /items.
_READ_ONLY = {"roles", "permissions", "schemas", "sessions", "notifications", "files"}
# Collections that never appear in /items at all.
INTERNAL = frozenset({"sessions"})


def _build() -> dict[str, Collection]:
    collections = {}
    for name, specs in _SYSTEM_FIELDS.items():
        fields = {spec.name: spec for spec in specs}
        table = build_table(name, fields, metadata)
        primary_key = next(spec.name for spec in specs if spec.primary_key)
        collections[name] = Collection(
            name=name,
            fields=fields,
            table=table,
            primary_key=primary_key,
            realtime=name not in INTERNAL,
            system=True,
            read_only=name in _READ_ONLY,
        )
    return collections


SYSTEM_COLLECTIONS: dict[str, Collection] = _build()


def table(name: str) -> Table:
    return SYSTEM_COLLECTIONS[name].table


users = table("users")
roles = table("roles")
sessions = table("sessions")
permissions = table("permissions")
schemas = table("schemas")
