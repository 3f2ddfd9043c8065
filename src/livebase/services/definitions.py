"""Reading BAASIX schema definitions into field specs, with every mistake a clear 400."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from livebase.services.errors import BadRequest, object_with
from livebase.services.names import check_distinct_ignoring_case, check_name, check_new_field_name
from livebase.services.patterns import compile_pattern
from livebase.services.values import coerce_value
from livebase.storage.kinds import KINDS
from livebase.storage.model import FieldKind, FieldSpec

_KINDS = {kind.value.lower(): kind for kind in FieldKind}
_SPECIAL_DEFAULTS = {"UUIDV4", "NOW", "AUTOINCREMENT"}
_VALIDATORS = {"min", "max", "len", "isEmail", "is"}
_FIELD_KEYS = {
    "type", "allowNull", "unique", "defaultValue", "values", "length", "precision", "scale",
    "validate", "primaryKey", "description", "comment",
}  # fmt: skip
# relationships and junction: written through /schemas/{c}/relationships only
# (services/relationships.py).
_SCHEMA_KEYS = {
    "name", "timestamps", "realtime", "accountability", "fields", "description", "relationships",
    "junction",
}  # fmt: skip


@dataclass(frozen=True)
class Definition:
    """A parsed collection definition: options plus every field (managed ones included)."""

    fields: dict[str, FieldSpec]
    primary_key: str
    realtime: bool
    raw: dict[str, Any]


def _bool(value: object, where: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{where} must be true or false")
    return value


def _positive_int(value: object, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 65535:
        raise BadRequest(f"{where} must be a positive integer")
    return value


def _default(raw: object, kind: FieldKind, where: str) -> Any:
    if isinstance(raw, dict):
        raw = raw.get("type")
        if raw not in _SPECIAL_DEFAULTS:
            raise BadRequest(f"{where}.defaultValue.type must be one of UUIDV4, NOW, AUTOINCREMENT")
    if raw in _SPECIAL_DEFAULTS:
        if raw not in KINDS[kind].defaults:
            raise BadRequest(f"{where}.defaultValue {raw} does not fit a {kind.value} field")
        return raw
    if raw is None:
        return None
    return coerce_value(kind, raw, f"{where}.defaultValue")


def _validate_rules(raw: object, kind: FieldKind, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}.validate must be an object")
    unknown = set(raw) - _VALIDATORS
    if unknown:
        raise BadRequest(f"{where}.validate: unknown rule(s) {sorted(unknown)}")
    for bound in ("min", "max"):
        if bound in raw and (
            isinstance(raw[bound], bool) or not isinstance(raw[bound], int | float)
        ):
            raise BadRequest(f"{where}.validate.{bound} must be a number")
    if "len" in raw:
        span = raw["len"]
        if (
            not isinstance(span, list)
            or len(span) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in span)
        ):
            raise BadRequest(f"{where}.validate.len must be [min, max] lengths")
    rules = dict(raw)
    if "is" in rules:
        # Compiled once here, for every value the field will get; a refusal is
        # a 400 for a schema being written (check_written), not for a stored one.
        rules["is"] = compile_pattern(rules["is"])
    return rules


def parse_field(name: str, raw: object) -> FieldSpec:
    check_name(name, "field")
    where = f"fields.{name}"
    raw = object_with(raw, _FIELD_KEYS, where)
    type_name = raw.get("type")
    kind = _KINDS.get(type_name.lower()) if isinstance(type_name, str) else None
    if kind is None:
        raise BadRequest(f"{where}.type must be one of {', '.join(k.value for k in FieldKind)}")
    values = raw.get("values") or {}
    if not isinstance(values, dict):
        raise BadRequest(f"{where}.values must be an object")
    length = _positive_int(raw.get("length", values.get("length")), f"{where}.length")
    precision = _positive_int(raw.get("precision", values.get("precision")), f"{where}.precision")
    scale = raw.get("scale", values.get("scale"))
    if scale is not None and (not isinstance(scale, int) or isinstance(scale, bool) or scale < 0):
        raise BadRequest(f"{where}.scale must be a non-negative integer")
    primary_key = _bool(raw.get("primaryKey"), f"{where}.primaryKey", False)
    return FieldSpec(
        name=name,
        kind=kind,
        allow_null=_bool(raw.get("allowNull"), f"{where}.allowNull", True) and not primary_key,
        unique=_bool(raw.get("unique"), f"{where}.unique", False),
        default=_default(raw.get("defaultValue"), kind, where),
        length=length,
        precision=precision,
        scale=scale,
        validate=_validate_rules(raw.get("validate"), kind, where),
        primary_key=primary_key,
    )


def _with_primary_key(fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
    """Check the key: ``id`` is it, a UUID v4 unless the schema says otherwise."""
    keys = [spec.name for spec in fields.values() if spec.primary_key]
    if len(keys) > 1:
        raise BadRequest("schema: only one field may be the primary key")
    if keys and keys[0] != "id":
        raise BadRequest("schema: the primary key must be the field 'id'")
    if "id" in fields and not fields["id"].primary_key:
        fields["id"] = replace(fields["id"], primary_key=True, allow_null=False)
    if "id" not in fields:
        default_key = FieldSpec(
            "id", FieldKind.UUID, primary_key=True, default="UUIDV4", allow_null=False
        )
        fields = {"id": default_key, **fields}
    if not KINDS[fields["id"].kind].key:
        raise BadRequest("schema: id must be a String, UUID, Integer or BigInt")
    for spec in fields.values():
        if spec.auto_increment and not spec.primary_key:
            raise BadRequest(f"fields.{spec.name}: AUTOINCREMENT is only for the primary key")
    return fields


def _managed_fields(raw: dict[str, Any]) -> list[tuple[str, FieldKind]]:
    managed: list[tuple[str, FieldKind]] = []
    if _bool(raw.get("timestamps"), "schema.timestamps", True):
        managed += [("createdAt", FieldKind.DATETIME), ("updatedAt", FieldKind.DATETIME)]
    if _bool(raw.get("accountability"), "schema.accountability", False):
        managed += [("userCreated", FieldKind.UUID), ("userUpdated", FieldKind.UUID)]
    return managed


def parse_definition(raw: object) -> Definition:
    """Parse the ``schema`` object of ``POST /schemas``."""
    raw = object_with(raw, _SCHEMA_KEYS, "schema")
    raw_fields = raw.get("fields", {})
    if not isinstance(raw_fields, dict):
        raise BadRequest("schema.fields must be an object of field definitions")
    if len(raw_fields) > 500:
        raise BadRequest("schema.fields: at most 500 fields")
    fields = _with_primary_key({name: parse_field(name, spec) for name, spec in raw_fields.items()})
    for name, kind in _managed_fields(raw):
        if name in fields:
            raise BadRequest(f"fields.{name} is managed by the server; do not define it")
        fields[name] = FieldSpec(name=name, kind=kind, managed=True)
    return Definition(
        fields=fields,
        primary_key="id",
        realtime=_bool(raw.get("realtime"), "schema.realtime", True),
        raw=raw,
    )


def check_written(
    definition: Definition, written: Iterable[str], existing: Collection[str] = ()
) -> None:
    """Rules for a definition a request writes, on top of :func:`parse_definition`.

    ``written`` are the fields the request defines or changes, ``existing``
    the fields the collection had. Only what a request writes must pass these
    rules: a stored schema keeps loading when they tighten.
    """
    check_distinct_ignoring_case(definition.fields)
    for name in written:
        spec = definition.fields.get(name)
        if spec is None or spec.managed:
            continue  # dropped, or added by the server
        if name not in existing:
            check_new_field_name(name)
        pattern = spec.validate.get("is")
        if pattern is not None and pattern.refusal is not None:
            raise BadRequest(f"fields.{name}.validate.is: {pattern.refusal}", "UNSUPPORTED_PATTERN")
