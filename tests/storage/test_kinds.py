"""The table of field kinds (storage/kinds.py): complete, and its coercions agree.

Writes and filters read values differently only where docs/decisions.md says
so ("Field values: writes and filters"); each such difference has its rows in
``DIFFERENCES`` below, and the property test checks that everywhere else a
value a write takes reads as the same value in a filter.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from livebase import encoding
from livebase.storage.kinds import KINDS, Comparison, FieldKind, Refused
from livebase.storage.model import FieldSpec

K = FieldKind
NEW_YEAR = datetime(2024, 1, 1, tzinfo=UTC)
A_UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

# One stored value per kind, as the database hands it back.
STORED: dict[FieldKind, Any] = {
    K.STRING: "héllo",
    K.TEXT: "a\nlonger text",
    K.INTEGER: -(2**31),
    K.BIGINT: 2**63 - 1,
    K.DOUBLE: 0.1,
    K.DECIMAL: Decimal("12.30"),
    K.BOOLEAN: False,
    K.DATE: date(2024, 2, 29),
    K.DATETIME: datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=UTC),
    K.UUID: A_UUID,
    K.JSON: {"a": [1, "x", None, True]},
}


def test_every_kind_has_an_entry_and_a_test_value() -> None:
    assert set(KINDS) == set(FieldKind)
    assert set(STORED) == set(FieldKind)


@pytest.mark.parametrize("kind", list(FieldKind))
def test_retyped_says_whether_a_value_survives_json(kind: FieldKind) -> None:
    """What realtime/wire.py restores after an event crossed processes as JSON."""
    value = STORED[kind]
    crossed = encoding.loads(encoding.dumps({"v": value}))["v"]
    assert KINDS[kind].retyped is (crossed != value or type(crossed) is not type(value))
    assert KINDS[kind].write(crossed) == value


@pytest.mark.parametrize("kind", list(FieldKind))
def test_column_types_compile_on_both_databases(kind: FieldKind) -> None:
    column = KINDS[kind].column(FieldSpec("f", kind, length=20, precision=10, scale=3))
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert column.compile(dialect=dialect)
    assert KINDS[kind].column(FieldSpec("f", kind)) is not KINDS[kind].column(FieldSpec("f", kind))


def test_column_types_keep_their_sizes() -> None:
    pg = postgresql.dialect()
    string = KINDS[K.STRING].column(FieldSpec("f", K.STRING, length=20))
    assert string.compile(dialect=pg) == "VARCHAR(20)"
    assert KINDS[K.STRING].column(FieldSpec("f", K.STRING)).compile(dialect=pg) == "VARCHAR(255)"
    decimal = KINDS[K.DECIMAL].column(FieldSpec("f", K.DECIMAL, precision=10, scale=0))
    assert decimal.compile(dialect=pg) == "NUMERIC(10, 0)"
    assert KINDS[K.DECIMAL].column(FieldSpec("f", K.DECIMAL)).compile(dialect=pg) == (
        "NUMERIC(12, 2)"
    )
    assert KINDS[K.UUID].column(FieldSpec("f", K.UUID)).compile(dialect=pg) == "VARCHAR(36)"


def test_only_kinds_with_values_in_filters_name_what_they_expect() -> None:
    for kind, entry in KINDS.items():
        assert (entry.filter_value is None) is (entry.comparison is Comparison.NONE), kind
        assert bool(entry.filter_expected) is (entry.filter_value is not None), kind


def _write(kind: FieldKind, value: object) -> object:
    try:
        return KINDS[kind].write(value)
    except Refused:
        return REFUSED


def _filter(kind: FieldKind, value: object) -> object:
    convert = KINDS[kind].filter_value
    if convert is None:
        return REFUSED
    try:
        return convert(value)
    except (ValueError, TypeError, ArithmeticError):
        return REFUSED


REFUSED = object()

# (kind, value, what a write stores, what a filter compares): the documented differences.
DIFFERENCES = [
    # 1. Filters take an integer for a text field, as its decimal text.
    (K.STRING, 42, REFUSED, "42"),
    (K.TEXT, -7, REFUSED, "-7"),
    (K.UUID, 42, REFUSED, "42"),
    # 2. Filters take numeric strings for numbers, and "true"/"false" for booleans.
    (K.INTEGER, "42", REFUSED, 42),
    (K.BIGINT, "1e3", REFUSED, 1000),
    (K.DOUBLE, "1.5", REFUSED, 1.5),
    (K.BOOLEAN, "true", REFUSED, True),
    (K.BOOLEAN, "false", REFUSED, False),
    # 3. A UUID field's filter value is any text (for like, startsWith, ...); only the
    #    36-character form is normalised. Writes take any form uuid.UUID reads.
    (K.UUID, "0f8fad5b", REFUSED, "0f8fad5b"),
    (K.UUID, A_UUID.upper(), A_UUID, A_UUID),
    (K.UUID, A_UUID.replace("-", ""), A_UUID, A_UUID.replace("-", "")),
    (K.UUID, "{" + A_UUID + "}", A_UUID, "{" + A_UUID + "}"),
    (K.UUID, "urn:uuid:" + A_UUID, A_UUID, "urn:uuid:" + A_UUID),
    # 4. Decimal filter values have at most 15 significant digits (SQLite compares doubles).
    (K.DECIMAL, "1.0000000000000001", Decimal("1.0000000000000001"), REFUSED),
    (K.DECIMAL, "1e301", Decimal("1e301"), REFUSED),
    # 5. JSON fields take any value when written, none in filters (null tests only).
    (K.JSON, {"a": 1}, {"a": 1}, REFUSED),
    (K.JSON, "x", "x", REFUSED),
]

# Where the two used to disagree by accident, and now agree.
AGREEMENTS = [
    # A lone surrogate cannot be stored: the write refused nothing and the driver failed (500).
    (K.STRING, "a\ud800b", REFUSED, REFUSED),
    (K.TEXT, "\udfff", REFUSED, REFUSED),
    # An integer beyond any double: the write's isfinite() raised OverflowError (500).
    (K.DOUBLE, 10**400, REFUSED, REFUSED),
    # And the rules both always had.
    (K.STRING, "a\x00b", REFUSED, REFUSED),
    (K.INTEGER, 2**31, REFUSED, REFUSED),
    (K.INTEGER, 2.0, 2, 2),
    (K.INTEGER, True, REFUSED, REFUSED),
    (K.DECIMAL, 0.1, Decimal("0.1"), Decimal("0.1")),
    (K.DECIMAL, " 1.5 ", Decimal("1.5"), Decimal("1.5")),
    (K.DECIMAL, "NaN", REFUSED, REFUSED),
    (K.DATE, "2024-02-30", REFUSED, REFUSED),
    # A date-time whose UTC form is before year 1: astimezone() raised OverflowError (500).
    (K.DATETIME, "0001-01-01T00:00:00+05:00", REFUSED, REFUSED),
    (K.DATETIME, "2024-01-01T00:00:00", NEW_YEAR, NEW_YEAR),
    (K.DATETIME, "2024-01-01T01:00:00+01:00", NEW_YEAR, NEW_YEAR),
]


@pytest.mark.parametrize(("kind", "value", "written", "filtered"), DIFFERENCES + AGREEMENTS)
def test_write_and_filter_coercions(
    kind: FieldKind, value: object, written: object, filtered: object
) -> None:
    assert _same(_write(kind, value), written)
    assert _same(_filter(kind, value), filtered)


def _same(actual: object, expected: object) -> bool:
    if expected is REFUSED or actual is REFUSED:
        return actual is expected
    return type(actual) is type(expected) and actual == expected


def _documented_difference(kind: FieldKind, value: object) -> bool:
    if kind is K.JSON:
        return True  # 5
    if kind is K.UUID:
        return len(str(value)) != 36  # 3
    if kind is K.DECIMAL:
        digits = Decimal(str(value).strip()).as_tuple().digits
        return (
            len("".join(map(str, digits)).strip("0")) > 15
            or abs(Decimal(str(value).strip()).adjusted()) > 300
        )  # 4
    return False


def _uuid_forms(value: uuid.UUID) -> st.SearchStrategy[str]:
    text = str(value)
    return st.sampled_from([text, text.upper(), value.hex, "{" + text + "}", value.urn])


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = (
    scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(), scalars, max_size=3)
)
kind_texts = (
    st.dates().map(date.isoformat)
    | st.datetimes().map(datetime.isoformat)
    | st.uuids().flatmap(_uuid_forms)
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.sampled_from(["true", "false", "1e3", " 7 ", "0x10", "1_000", "Infinity"])
)


@given(st.sampled_from(list(FieldKind)), json_values | kind_texts)
def test_a_value_a_write_takes_filters_as_the_same_value(kind: FieldKind, value: object) -> None:
    """Beyond the documented differences, a stored value is found by filtering on it."""
    written = _write(kind, value)
    if value is None or written is REFUSED or _documented_difference(kind, value):
        return
    assert _filter(kind, value) == written
