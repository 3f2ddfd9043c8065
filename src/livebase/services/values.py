"""Turning JSON input into typed field values, and checking them against the schema."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import re2

from livebase.services.errors import ValidationFailed
from livebase.services.patterns import FieldPattern
from livebase.storage.model import DECIMAL_PRECISION, DECIMAL_SCALE, FieldKind, FieldSpec

_INT_RANGES = {FieldKind.INTEGER: 2**31, FieldKind.BIGINT: 2**63}
# RE2, because Python's re takes quadratic time on this pattern (a 32 kB Text value: 10 s
# on the event loop). The class is what Python's \s means for str: every Unicode space.
_PART = r"[^@\s\x0b\x1c-\x1f\x85\p{Z}]+"
_EMAIL = re2.compile(rf"^{_PART}@{_PART}\.{_PART}$")


def _fail(where: str, expected: str, value: object) -> ValidationFailed:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ValidationFailed(f"{where}: expected {expected}, got {shown}")


def parse_datetime(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _coerce_number(kind: FieldKind, value: object, where: str) -> Any:
    if isinstance(value, bool):
        raise _fail(where, f"a {kind.value} number", value)
    if kind in _INT_RANGES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise _fail(where, "an integer", value)
        bound = _INT_RANGES[kind]
        if not -bound <= value < bound:
            raise ValidationFailed(f"{where}: {value} is out of range for {kind.value}")
        return value
    if kind is FieldKind.DOUBLE:
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _fail(where, "a finite number", value)
        return float(value)
    # Decimal: exact from strings and ints; floats go through their shortest repr.
    if not isinstance(value, int | float | str):
        raise _fail(where, "a decimal number", value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _fail(where, "a decimal number", value) from None
    if not number.is_finite():
        raise _fail(where, "a finite decimal number", value)
    return number


_FROM_STRING: dict[FieldKind, tuple[Callable[[str], Any], str]] = {
    FieldKind.UUID: (lambda text: str(uuid.UUID(text)), "a UUID"),
    FieldKind.DATE: (date.fromisoformat, "a date (YYYY-MM-DD)"),
    FieldKind.DATETIME: (parse_datetime, "an ISO-8601 date-time"),
}


def coerce_value(kind: FieldKind, value: object, where: str) -> Any:
    """Convert a JSON value to the Python value stored for ``kind`` (``None`` stays ``None``)."""
    if value is None:
        return None
    if kind in (FieldKind.INTEGER, FieldKind.BIGINT, FieldKind.DOUBLE, FieldKind.DECIMAL):
        return _coerce_number(kind, value, where)
    if kind in (FieldKind.STRING, FieldKind.TEXT):
        if not isinstance(value, str):
            raise _fail(where, "a string", value)
        if "\x00" in value:
            raise ValidationFailed(f"{where}: NUL characters are not allowed")
        return value
    parsed = _FROM_STRING.get(kind)
    if parsed is not None:
        parse, expected = parsed
        if isinstance(value, str):
            try:
                return parse(value)
            except ValueError:
                pass
        raise _fail(where, expected, value)
    if kind is FieldKind.BOOLEAN:
        if not isinstance(value, bool):
            raise _fail(where, "true or false", value)
        return value
    return value  # JSON: any JSON value


def fit_decimal(spec: FieldSpec, value: Decimal) -> Decimal:
    """Round to the field's scale and refuse more digits than its precision.

    Rounding here, not in the database, keeps what SQLite stores (a double)
    equal to what every reader and every filter sees.
    """
    scale = spec.scale if spec.scale is not None else DECIMAL_SCALE
    precision = spec.precision or DECIMAL_PRECISION
    if value.adjusted() >= precision - scale:
        raise ValidationFailed(
            f"field {spec.name}: at most {precision - scale} digits before the decimal point"
        )
    return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_EVEN)


def check_rules(spec: FieldSpec, value: Any) -> None:
    """Length and ``validate`` rules of one field (``value`` already coerced, not None)."""
    where = f"field {spec.name}"
    if spec.kind is FieldKind.STRING and len(value) > (spec.length or 255):
        raise ValidationFailed(f"{where}: longer than {spec.length or 255} characters")
    rules = spec.validate
    if not rules:
        return
    if "min" in rules and isinstance(value, int | float | Decimal) and value < rules["min"]:
        raise ValidationFailed(f"{where}: must be at least {rules['min']}")
    if "max" in rules and isinstance(value, int | float | Decimal) and value > rules["max"]:
        raise ValidationFailed(f"{where}: must be at most {rules['max']}")
    if isinstance(value, str):
        if "len" in rules and not rules["len"][0] <= len(value) <= rules["len"][1]:
            low, high = rules["len"]
            raise ValidationFailed(f"{where}: length must be between {low} and {high}")
        if rules.get("isEmail") and not _EMAIL.search(value):
            raise ValidationFailed(f"{where}: must be an e-mail address")
        if "is" in rules:
            _check_pattern(rules["is"], value, where)


def _check_pattern(pattern: FieldPattern, value: str, where: str) -> None:
    if pattern.refusal is not None:
        # Only a schema stored before patterns ran on RE2 can hold one (see registry.load).
        raise ValidationFailed(
            f"{where}: its validate.is pattern is unusable ({pattern.refusal}); "
            "an administrator must change it",
            "UNUSABLE_PATTERN",
        )
    if not pattern.found_in(value):
        raise ValidationFailed(f"{where}: does not match the required pattern")
