"""The row a write stores: its body checked field by field, then defaults and stamps."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from livebase.services.accountability import Accountability
from livebase.services.errors import BadRequest, Forbidden, ServiceError, ValidationFailed
from livebase.services.keys import item_key
from livebase.services.operations import Item
from livebase.services.permissions import Scope
from livebase.services.values import check_rules, coerce_value, fit_decimal
from livebase.storage.kinds import KINDS
from livebase.storage.model import Collection, FieldSpec
from livebase.storage.types import utcnow


def row_values(
    collection: Collection,
    scope: Scope,
    data: Mapping[str, Any],
    who: Accountability,
    *,
    creating: bool,
    key: Any = None,
) -> Item:
    """The column values to write: checked input, then defaults and stamps.

    Args:
        collection: where the item is written.
        scope: the writer's create or update scope (which fields it may write).
        data: the body, as the client (or a hook) gave it.
        who: the writer, for the accountability stamps.
        creating: a create (defaults filled) rather than an update.
        key: the key of the item updated; its body may repeat it, not change it.
    """
    values: Item = {}
    for name, raw in data.items():
        spec = collection.fields.get(name)
        if spec is None:
            raise BadRequest(f"{collection.name} has no field {name!r}", "UNKNOWN_FIELD")
        if spec.primary_key and not creating:
            if item_key(collection, raw) != key:
                raise BadRequest(f"the {name!r} of an item cannot change")
            continue
        if spec.managed:
            raise BadRequest(f"field {name!r} is set by the server")
        if not scope.field_allowed(name):
            raise Forbidden(f"you may not write field {name!r} of {collection.name}")
        values[name] = _checked(spec, raw)
    if creating:
        _fill_defaults(collection, values)
    _stamp(collection, values, who, creating)
    return values


def _checked(spec: FieldSpec, raw: object) -> Any:
    value = coerce_value(spec.kind, raw, f"field {spec.name}")
    if isinstance(value, Decimal):
        value = fit_decimal(spec, value)
    if value is None and not spec.allow_null:
        raise required(spec.name)
    if value is not None:
        check_rules(spec, value)
    return value


def required(name: str) -> ServiceError:
    return ValidationFailed(f"field {name}: is required", "FIELD_REQUIRED")


def _fill_defaults(collection: Collection, values: Item) -> None:
    for spec in collection.fields.values():
        if spec.name in values or spec.managed or spec.auto_increment:
            continue
        default = _default_value(spec)
        if default is None and not spec.allow_null:
            raise required(spec.name)
        values[spec.name] = default


def _default_value(spec: FieldSpec) -> Any:
    # A special default ("UUIDV4", "NOW") is made by the kind; anything else is a literal.
    make = KINDS[spec.kind].defaults.get(spec.default) if isinstance(spec.default, str) else None
    return make() if make is not None else spec.default


def _stamp(collection: Collection, values: Item, who: Accountability, creating: bool) -> None:
    now = utcnow()
    stamps: Item = {"updatedAt": now, "userUpdated": who.user_id}
    if creating:
        stamps.update(createdAt=now, userCreated=who.user_id)
    for name, value in stamps.items():
        spec = collection.fields.get(name)
        if spec is not None and spec.managed:
            values[name] = value
