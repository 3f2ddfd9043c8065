"""Turning JSON input into typed field values, and checking them against the schema."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import re2

from livebase.services.errors import ValidationFailed
from livebase.services.patterns import FieldPattern
from livebase.storage.kinds import KINDS, Refused
from livebase.storage.model import DECIMAL_PRECISION, DECIMAL_SCALE, FieldKind, FieldSpec

# RE2, because Python's re takes quadratic time on this pattern (a 32 kB Text value: 10 s
# on the event loop). The class is what Python's \s means for str: every Unicode space.
_PART = r"[^@\s\x0b\x1c-\x1f\x85\p{Z}]+"
_EMAIL = re2.compile(rf"^{_PART}@{_PART}\.{_PART}$")


def coerce_value(kind: FieldKind, value: object, where: str) -> Any:
    """Convert a JSON value to the Python value stored for ``kind`` (``None`` stays ``None``).

    What each kind takes is its ``write`` in :mod:`livebase.storage.kinds`.
    """
    if value is None:
        return None
    try:
        return KINDS[kind].write(value)
    except Refused as exc:
        raise ValidationFailed(f"{where}: {exc}") from None


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
