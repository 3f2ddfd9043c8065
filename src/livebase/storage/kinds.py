"""Field kinds: everything livebase knows about each type a schema's field may have, in one table.

A kind is one :class:`FieldKind` name and one :class:`Kind` entry in
:data:`KINDS`: its column type, how a JSON value is written to it, how a
filter value is read for it, which filter operators it takes, whether its
values need retyping after crossing JSON, and what it may serve as (key,
sort, search, special defaults). Adding a kind is one name and one entry
here, plus its rows in ``tests/storage/test_kinds.py`` (which fails for a
kind without an entry).

Write and filter coercions differ on purpose: writes are strict, so that a
stored value always has its field's type; filters are lenient where a value
may have crossed a query string or a variable. ``docs/decisions.md`` lists
each difference and why (tests/storage/test_kinds.py pins every one).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import JSON, BigInteger, Boolean, Date, Double, Integer, Numeric, String, Text
from sqlalchemy.types import TypeEngine

from livebase.storage.types import UTCDateTime, utcnow

__all__ = [
    "DECIMAL_PRECISION",
    "DECIMAL_SCALE",
    "KINDS",
    "Comparison",
    "FieldKind",
    "Kind",
    "Refused",
    "parse_datetime",
]

DECIMAL_PRECISION = 12  # defaults of a Decimal field without precision/scale
DECIMAL_SCALE = 2


class FieldKind(StrEnum):
    """The types a collection's field may have, spelled as in BAASIX schemas."""

    STRING = "String"
    TEXT = "Text"
    INTEGER = "Integer"
    BIGINT = "BigInt"
    DOUBLE = "Double"
    DECIMAL = "Decimal"
    BOOLEAN = "Boolean"
    DATE = "Date"
    DATETIME = "DateTime"
    UUID = "UUID"
    JSON = "JSON"


class Comparison(StrEnum):
    """Which filter operators a kind takes (the filter language maps each to its operators)."""

    TEXT = "text"  # equality, order, substring, prefix and suffix
    ORDER = "order"  # equality and order
    EQUALITY = "equality"  # eq, ne, in, notIn
    NONE = "none"  # null tests only


class Refused(ValueError):
    """A value a kind does not take; its text says why (``expected an integer, got 'x'``)."""


class Sized(Protocol):
    """What a column type depends on (a :class:`~livebase.storage.model.FieldSpec`)."""

    @property
    def length(self) -> int | None: ...
    @property
    def precision(self) -> int | None: ...
    @property
    def scale(self) -> int | None: ...


@dataclass(frozen=True, kw_only=True)
class Kind:
    """What one field kind means to every layer.

    Attributes:
        column: the SQLAlchemy column type for a field of this kind.
        write: a JSON value (not None) to the Python value stored; raises
            :class:`Refused`. Also restores values that crossed JSON.
        filter_value: a filter value (not None) to the Python value compared;
            raises ValueError, TypeError or ArithmeticError. None: the kind
            takes no values in filters, only null tests.
        filter_expected: what ``filter_value`` takes, for error messages.
        comparison: which filter operators apply.
        retyped: whether a stored value comes back from JSON as another type
            (text for dates and decimals), so that ``write`` must restore it.
        searched: whether ``search`` looks into fields of this kind.
        sortable: whether lists may be sorted by it.
        key: whether it may be a collection's primary key.
        from_text: a key given as text (a URL path segment) to its JSON value;
            None: the text is the value.
        defaults: the special defaults it takes, each with how its value is
            made (None: by the database).
    """

    column: Callable[[Sized], TypeEngine[Any]]
    write: Callable[[object], Any]
    filter_value: Callable[[object], Any] | None
    filter_expected: str = ""
    comparison: Comparison
    retyped: bool = False
    searched: bool = False
    sortable: bool = True
    key: bool = True
    from_text: Callable[[str], object] | None = None
    defaults: Mapping[str, Callable[[], Any] | None] = field(default_factory=dict)


def show_value(value: object) -> str:
    """A value as an error message may quote it: its repr, cut to 60 characters."""
    try:
        shown = repr(value)
    except (ValueError, RecursionError):  # an int beyond str()'s digit limit, say
        shown = f"a {type(value).__name__}"
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _refused(expected: str, value: object) -> Refused:
    return Refused(f"expected {expected}, got {show_value(value)}")


def parse_datetime(value: str) -> datetime:
    """ISO-8601 to an aware UTC datetime; ``Z`` allowed, naive meaning UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


# -- writing: JSON values to stored ones, strictly ----------------------------------


def _write_text(value: object) -> str:
    if not isinstance(value, str):
        raise _refused("a string", value)
    if "\x00" in value:
        raise Refused("NUL characters are not allowed")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate: no database can store it
            raise _refused("a string", value) from None
    return value


def _write_int(name: str, bits: int) -> Callable[[object], int]:
    bound = 2 ** (bits - 1)

    def write(value: object) -> int:
        if isinstance(value, bool):
            raise _refused(f"a {name} number", value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise _refused("an integer", value)
        if not -bound <= value < bound:
            raise Refused(f"{value} is out of range for {name}")
        return value

    return write


def _write_double(value: object) -> float:
    if isinstance(value, bool):
        raise _refused("a Double number", value)
    if not isinstance(value, int | float):
        raise _refused("a finite number", value)
    try:
        number = float(value)
    except OverflowError:  # an int beyond any double
        raise _refused("a finite number", value) from None
    if not math.isfinite(number):
        raise _refused("a finite number", value)
    return number


def _write_decimal(value: object) -> Decimal:
    # Exact from strings and ints; floats go through their shortest repr.
    if isinstance(value, bool):
        raise _refused("a Decimal number", value)
    if not isinstance(value, int | float | str):
        raise _refused("a decimal number", value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _refused("a decimal number", value) from None
    if not number.is_finite():
        raise _refused("a finite decimal number", value)
    return number


def _write_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _refused("true or false", value)
    return value


def _write_parsed(parse: Callable[[str], Any], expected: str) -> Callable[[object], Any]:
    def write(value: object) -> Any:
        if isinstance(value, str):
            try:
                return parse(value)
            except (ValueError, OverflowError):  # OverflowError: before year 1 in UTC
                pass
        raise _refused(expected, value)

    return write


def _write_json(value: object) -> object:
    """Any JSON value, except one holding U+0000 in a string or key: PostgreSQL's
    jsonb (the change log's states) cannot hold it, nor can its text columns,
    so both databases refuse it, as they refuse it in String fields."""
    if _holds_nul(value):
        raise Refused("NUL characters are not allowed")
    return value


def _holds_nul(value: object) -> bool:
    # Bodies nest at most 32 deep (api/limits.py), so recursion is bounded.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


# -- filtering: filter values to compared ones, leniently --------------------------


def _filter_text(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError
    if not value.isascii():
        value.encode()  # lone surrogates cannot reach the database
    return value


def _filter_uuid(value: object) -> str:
    text = _filter_text(value)
    if len(text) == 36:
        try:
            return str(uuid.UUID(text))
        except ValueError:
            pass
    return text


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError
    return number


def _filter_int(bits: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str):
            number = _to_decimal(value)
            # Checked before int() so that "1e999999999" cannot eat the CPU.
            if number.adjusted() > 20 or number != number.to_integral_value():
                raise ValueError
            value = int(number)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError
        return value

    return convert


def _filter_double(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _filter_decimal(value: object) -> Decimal:
    # SQLite compares NUMERIC columns as doubles: only up to 15 significant
    # digits, within 1e±300, do doubles order exactly as the decimals do.
    number = _to_decimal(value)
    significant = "".join(map(str, number.as_tuple().digits)).strip("0")
    if len(significant) > 15 or (significant and not -300 <= number.adjusted() <= 300):
        raise ValueError
    return number


def _filter_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError


def _filter_date(value: object) -> date:
    if not isinstance(value, str):
        raise ValueError
    return date.fromisoformat(value)


def _filter_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError
    return parse_datetime(value)


# -- the table ------------------------------------------------------------------------


def _string_column(spec: Sized) -> TypeEngine[Any]:
    return String(spec.length or 255)


def _decimal_column(spec: Sized) -> TypeEngine[Any]:
    scale = spec.scale if spec.scale is not None else DECIMAL_SCALE
    return Numeric(spec.precision or DECIMAL_PRECISION, scale)


def _fixed(column: Callable[[], TypeEngine[Any]]) -> Callable[[Sized], TypeEngine[Any]]:
    # A new type object per column: a Boolean, say, attaches itself to its table.
    return lambda spec: column()


def _uuid_column(spec: Sized) -> TypeEngine[Any]:
    return String(36)


def _new_uuid() -> str:
    return str(uuid.uuid4())


def _today() -> date:
    return utcnow().date()


K = FieldKind
KINDS: dict[FieldKind, Kind] = {
    K.STRING: Kind(
        column=_string_column,
        write=_write_text,
        filter_value=_filter_text,
        filter_expected="a string",
        comparison=Comparison.TEXT,
        searched=True,
        defaults={"UUIDV4": _new_uuid},
    ),
    K.TEXT: Kind(
        column=_fixed(Text),
        write=_write_text,
        filter_value=_filter_text,
        filter_expected="a string",
        comparison=Comparison.TEXT,
        searched=True,
    ),
    K.INTEGER: Kind(
        column=_fixed(Integer),
        write=_write_int("Integer", 32),
        filter_value=_filter_int(32),
        filter_expected="an integer between -2**31 and 2**31-1",
        comparison=Comparison.ORDER,
        from_text=int,
        defaults={"AUTOINCREMENT": None},
    ),
    K.BIGINT: Kind(
        column=_fixed(BigInteger),
        write=_write_int("BigInt", 64),
        filter_value=_filter_int(64),
        filter_expected="an integer between -2**63 and 2**63-1",
        comparison=Comparison.ORDER,
        from_text=int,
        defaults={"AUTOINCREMENT": None},
    ),
    K.DOUBLE: Kind(
        column=_fixed(Double),
        write=_write_double,
        filter_value=_filter_double,
        filter_expected="a finite number",
        comparison=Comparison.ORDER,
        key=False,
    ),
    K.DECIMAL: Kind(
        column=_decimal_column,
        write=_write_decimal,
        filter_value=_filter_decimal,
        filter_expected="a finite number of at most 15 digits",
        comparison=Comparison.ORDER,
        retyped=True,  # travels as a string (livebase.encoding)
    ),
    K.BOOLEAN: Kind(
        column=_fixed(Boolean),
        write=_write_bool,
        filter_value=_filter_bool,
        filter_expected="true or false",
        comparison=Comparison.EQUALITY,
        key=False,
    ),
    K.DATE: Kind(
        column=_fixed(Date),
        write=_write_parsed(date.fromisoformat, "a date (YYYY-MM-DD)"),
        filter_value=_filter_date,
        filter_expected="a date (YYYY-MM-DD)",
        comparison=Comparison.ORDER,
        retyped=True,
        defaults={"NOW": _today},
    ),
    K.DATETIME: Kind(
        column=_fixed(UTCDateTime),
        write=_write_parsed(parse_datetime, "an ISO-8601 date-time"),
        filter_value=_filter_datetime,
        filter_expected="an ISO-8601 date-time",
        comparison=Comparison.ORDER,
        retyped=True,
        defaults={"NOW": utcnow},
    ),
    K.UUID: Kind(
        column=_uuid_column,
        write=_write_parsed(lambda text: str(uuid.UUID(text)), "a UUID"),
        filter_value=_filter_uuid,
        filter_expected="a string",
        comparison=Comparison.TEXT,
        defaults={"UUIDV4": _new_uuid},
    ),
    K.JSON: Kind(
        column=_fixed(JSON),
        write=_write_json,
        filter_value=None,
        comparison=Comparison.NONE,
        sortable=False,
        key=False,
    ),
}
