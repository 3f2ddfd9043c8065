"""The filter language (the ``filter`` parameter, permission conditions): one parser, two back ends.

:func:`parse` turns a decoded JSON filter into a small tree of :class:`Compare`,
:class:`And` and :class:`Or` nodes whose values already have the field's
Python type. :func:`to_sql` renders a tree as a WHERE clause for SQLite or
PostgreSQL, :func:`to_predicate` as a Python function over one item; both mean
the same thing (``tests/services/test_filters_property.py`` checks it).

Syntax: ``{"field": {"op": value}}``; several keys, or several operators under
one field, are ANDed; ``{"AND": [...]}`` and ``{"OR": [...]}`` nest freely
(``{"AND": []}`` matches everything, ``{"OR": []}`` nothing); a bare value
``{"field": value}`` means ``eq``. ``eq: null`` is ``isNull``, ``ne: null`` is
``isNotNull``, and ``{"isNull": false}`` is ``isNotNull``.

Semantics, the same in SQL on both databases and in Python:

- SQL three-valued logic at the leaves: a NULL value matches no operator but
  ``isNull``, not even ``ne``, ``notIn``, ``notLike`` or ``notBetween``.
  An empty ``in`` matches nothing, an empty ``notIn`` every non-null value.
  JSON ``null`` in a JSON column counts as NULL.
- ``like``/``notLike`` look for a case-sensitive substring, ``iLike``/
  ``notILike`` for a case-insensitive one, ``startsWith``/``endsWith`` for a
  case-insensitive prefix/suffix; ``%`` and ``_`` in the value are literal.
- Strings order by code point (``COLLATE "C"`` on PostgreSQL).
- Case folding is ``str.lower()`` after mapping U+0130 (capital I with dot)
  to ``i`` and capital sigma to small sigma. That is exactly what PostgreSQL's
  ``lower()`` does letter by letter under a glibc UTF-8 locale such as our
  C.UTF-8 (checked for every code point), whereas plain ``str.lower()`` turns
  U+0130 into two characters and a word-final capital sigma into final sigma.
  PostgreSQL folds with the column's collation, which for livebase tables is
  the database default: under a ``C``/``POSIX`` ctype it folds ASCII only, and
  under an ICU default it folds like plain ``str.lower()``.

Values are coerced to the field's kind by its ``filter_value`` in
``storage/kinds.py`` (where that differs from writes, and why:
``docs/decisions.md``), and anything else is refused:

- String, Text, UUID: strings (without NUL), or integers, taken as their
  decimal text. A complete UUID given to a UUID field is lowercased, as stored.
- Integer, BigInt: integers, integral floats or numeric strings, within the
  column's range (32 or 64 bits); never booleans.
- Double: finite numbers or numeric strings. Decimal: finite numbers (floats
  through their shortest repr) or numeric strings, with at most 15 significant
  digits and magnitude within 1e±300, because SQLite compares NUMERIC columns as
  doubles and only then do doubles order exactly as the decimals do.
- Boolean: ``true``/``false`` or ``"true"``/``"false"``; only equality, set and
  null operators. Date: ``YYYY-MM-DD``. DateTime: ISO-8601, naive meaning UTC,
  ``Z`` allowed. JSON: only ``isNull``/``isNotNull``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from livebase.services.errors import BadRequest
from livebase.storage import comparisons
from livebase.storage.kinds import KINDS, Comparison, FieldKind, show_value

__all__ = [
    "TRUE",
    "And",
    "Compare",
    "FieldKind",
    "FilterError",
    "Node",
    "Or",
    "and_",
    "fields_of",
    "parse",
    "to_predicate",
    "to_sql",
]


class FilterError(BadRequest):
    code = "INVALID_FILTER"


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: object  # coerced; a tuple for in/notIn/between/notBetween, None for null tests


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Node = Compare | And | Or
TRUE: Node = And(())

_MAX_DEPTH = 32
# Every value becomes a bound parameter; both drivers cap them at ~32k per statement.
_MAX_VALUES = 10_000

_OPERATORS = (
    "eq ne gt gte lt lte in notIn like notLike iLike notILike startsWith endsWith "
    "between notBetween isNull isNotNull"
)
_OPS = frozenset(_OPERATORS.split())
_NULL_OPS = frozenset({"isNull", "isNotNull"})
_LIST_OPS = frozenset({"in", "notIn"})
_RANGE_OPS = frozenset({"between", "notBetween"})
_ORDER_OPS = frozenset({"gt", "gte", "lt", "lte"}) | _RANGE_OPS
_EQUALITY_OPS = frozenset({"eq", "ne"}) | _LIST_OPS | _NULL_OPS
_ALLOWED = {
    Comparison.TEXT: _OPS,
    Comparison.ORDER: _EQUALITY_OPS | _ORDER_OPS,
    Comparison.EQUALITY: _EQUALITY_OPS,
    Comparison.NONE: _NULL_OPS,
}


def and_(*nodes: Node) -> Node:
    """The conjunction of ``nodes``, flattened and without TRUE; ``and_()`` is TRUE."""
    children: list[Node] = []
    for node in nodes:
        children.extend(node.children if isinstance(node, And) else (node,))
    return children[0] if len(children) == 1 else And(tuple(children))


def _or(nodes: list[Node]) -> Node:
    children: list[Node] = []
    for node in nodes:
        if node == TRUE:
            return TRUE
        children.extend(node.children if isinstance(node, Or) else (node,))
    return children[0] if len(children) == 1 else Or(tuple(children))


def fields_of(node: Node) -> frozenset[str]:
    """The names of the fields a filter looks at."""
    if isinstance(node, Compare):
        return frozenset((node.field,))
    return frozenset().union(*(fields_of(child) for child in node.children))


# -- parsing --------------------------------------------------------------------


class _Parser:
    def __init__(
        self,
        fields: Mapping[str, FieldKind],
        variables: Mapping[str, object],
        paths: Callable[[str], FieldKind | None] | None,
    ) -> None:
        self.fields = fields
        self.variables = variables
        self.paths = paths
        self.values = 0

    def kind(self, name: object) -> FieldKind | None:
        if not isinstance(name, str):
            return None
        if self.paths is not None and "." in name:
            return self.paths(name)  # raises for a path it refuses
        return self.fields.get(name)

    def node(self, raw: object, depth: int) -> Node:
        if depth > _MAX_DEPTH:
            raise FilterError(f"filter is nested more than {_MAX_DEPTH} levels deep")
        if not isinstance(raw, dict):
            raise FilterError(f"a filter must be an object, got {show_value(raw)}")
        parts: list[Node] = []
        for key, spec in raw.items():
            if key in ("AND", "OR"):
                if not isinstance(spec, list):
                    raise FilterError(f"{key} must be a list of filters, got {show_value(spec)}")
                children = [self.node(child, depth + 1) for child in spec]
                parts.append(and_(*children) if key == "AND" else _or(children))
            else:
                parts.extend(self.field(key, spec))
        return and_(*parts)

    def field(self, name: object, spec: object) -> list[Node]:
        if self.kind(name) is None:
            raise FilterError(f"unknown field {show_value(name)} in filter")
        assert isinstance(name, str)
        if not isinstance(spec, dict):
            return [self.compare(name, "eq", spec)]
        if not spec:
            raise FilterError(f"filter on field {name!r} names no operator")
        return [self.compare(name, op, value) for op, value in spec.items()]

    def compare(self, name: str, op: object, raw: object) -> Compare:
        if not isinstance(op, str) or op not in _OPS:
            raise FilterError(
                f"unknown operator {show_value(op)} on field {name!r}; use one of: {_OPERATORS}"
            )
        value = self.variable(raw)
        if op in _NULL_OPS:
            negated = {"isNull": "isNotNull", "isNotNull": "isNull"}[op]
            return Compare(name, op if value is not False else negated, None)
        if value is None and op in ("eq", "ne"):
            return Compare(name, "isNull" if op == "eq" else "isNotNull", None)
        kind = self.kind(name)
        assert kind is not None
        if op not in _ALLOWED[KINDS[kind].comparison]:
            raise FilterError(f"operator {op!r} cannot be used on {kind.value} field {name!r}")
        where = f"field {name!r}, operator {op!r}"
        if op in _LIST_OPS | _RANGE_OPS:
            if not isinstance(value, list | tuple):
                raise FilterError(f"{where}: expected a list, got {show_value(value)}")
            if op in _RANGE_OPS and len(value) != 2:
                raise FilterError(f"{where}: expected a list [low, high], got {show_value(value)}")
            items = (self.coerce(kind, self.variable(item), where) for item in value)
            return Compare(name, op, tuple(items))
        return Compare(name, op, self.coerce(kind, value, where))

    def variable(self, value: object) -> object:
        if isinstance(value, str) and value in self.variables:
            return self.variables[value]
        return value

    def coerce(self, kind: FieldKind, value: object, where: str) -> object:
        self.values += 1
        if self.values > _MAX_VALUES:
            raise FilterError(f"filter has more than {_MAX_VALUES} values")
        if value is None:
            raise FilterError(f"{where}: null is only allowed with eq, ne, isNull, isNotNull")
        entry = KINDS[kind]
        assert entry.filter_value is not None  # kinds without values take null tests only
        try:
            return entry.filter_value(value)
        except (ValueError, TypeError, ArithmeticError):  # OverflowError, InvalidOperation
            raise FilterError(
                f"{where}: expected {entry.filter_expected}, got {show_value(value)}"
            ) from None


def parse(
    raw: object,
    fields: Mapping[str, FieldKind],
    variables: Mapping[str, object] | None = None,
    paths: Callable[[str], FieldKind | None] | None = None,
) -> Node:
    """Parse a decoded JSON filter against a collection's field kinds.

    Args:
        raw: the filter; ``None`` or ``{}`` match everything.
        fields: the fields that may be filtered on, with their kinds.
        variables: strings such as ``"$CURRENT_USER"`` replaced by a value
            wherever a value is expected, before coercion.
        paths: the kind of a dotted path through relations (``author.name``),
            raising for a path it refuses; without it a dotted name is an
            unknown field (permission conditions take no paths).

    Raises:
        FilterError: for anything that is not a valid filter, naming the part.
    """
    if raw is None:
        return TRUE
    return _Parser(fields, variables or {}, paths).node(raw, depth=1)


# -- the SQL back end -------------------------------------------------------------


class _Columns(Protocol):
    def __getitem__(self, key: str, /) -> ColumnElement[Any]: ...


_I_DOT = "\N{LATIN CAPITAL LETTER I WITH DOT ABOVE}"
_SIGMA = "\N{GREEK CAPITAL LETTER SIGMA}"
_SMALL_SIGMA = "\N{GREEK SMALL LETTER SIGMA}"


def _fold(text: str) -> str:
    # Unbound str methods: a non-string raises TypeError, which a predicate reads as no match.
    return str.lower(str.replace(str.replace(text, _I_DOT, "i"), _SIGMA, _SMALL_SIGMA))


def _fold_sql(column: ColumnElement[Any]) -> ColumnElement[str]:
    replaced = sa.func.replace(sa.func.replace(column, _I_DOT, "i"), _SIGMA, _SMALL_SIGMA)
    return sa.func.lower(replaced, type_=sa.Text())


def _like_sql(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    return column.contains(value, autoescape=True)


def _ilike_sql(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    return _fold_sql(column).contains(_fold(value), autoescape=True)


def _between_sql(column: ColumnElement[Any], low: Any, high: Any) -> ColumnElement[bool]:
    # Not BETWEEN: PostgreSQL's grammar refuses COLLATE on its bounds.
    return sa.and_(column >= low, column <= high)


_SQL: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "eq": lambda column, value: column == value,
    "ne": lambda column, value: column != value,
    "gt": lambda column, value: column > value,
    "gte": lambda column, value: column >= value,
    "lt": lambda column, value: column < value,
    "lte": lambda column, value: column <= value,
    "in": lambda column, values: column.in_(values) if values else sa.false(),
    # NOT IN over an empty set would be true for NULL too.
    "notIn": lambda column, values: column.not_in(values) if values else column.is_not(None),
    "between": lambda column, bounds: _between_sql(column, *bounds),
    "notBetween": lambda column, bounds: sa.not_(_between_sql(column, *bounds)),
    "like": _like_sql,
    "notLike": lambda column, value: sa.not_(_like_sql(column, value)),
    "iLike": _ilike_sql,
    "notILike": lambda column, value: sa.not_(_ilike_sql(column, value)),
    "startsWith": lambda column, value: _fold_sql(column).startswith(_fold(value), autoescape=True),
    "endsWith": lambda column, value: _fold_sql(column).endswith(_fold(value), autoescape=True),
}


def to_sql(node: Node, columns: _Columns, dialect: str) -> ColumnElement[bool]:
    """Render ``node`` as a WHERE clause over ``columns`` for "sqlite" or "postgresql"."""
    if isinstance(node, And):
        parts = [to_sql(child, columns, dialect) for child in node.children]
        return sa.and_(*parts) if parts else sa.true()
    if isinstance(node, Or):
        parts = [to_sql(child, columns, dialect) for child in node.children]
        return sa.or_(*parts) if parts else sa.false()
    try:
        column = columns[node.field]
    except KeyError:
        raise FilterError(f"unknown field {node.field!r} in filter") from None
    if node.op in _NULL_OPS:
        null = comparisons.is_null(column)
        return null if node.op == "isNull" else sa.not_(null)
    column = comparisons.compared(column, dialect, ordering=node.op in _ORDER_OPS)
    return _SQL[node.op](column, node.value)


# -- the Python back end ----------------------------------------------------------

Predicate = Callable[[Mapping[str, Any]], bool]


def _always(item: Mapping[str, Any]) -> bool:
    return True


def _never(item: Mapping[str, Any]) -> bool:
    return False


def to_predicate(node: Node) -> Predicate:
    """A function telling whether one item (values as read from the database) matches."""
    if isinstance(node, Compare):
        return _compare_predicate(node.field, node.op, node.value)
    parts = tuple(to_predicate(child) for child in node.children)
    if len(parts) == 1:
        return parts[0]
    if isinstance(node, And):
        if not parts:
            return _always

        def all_match(item: Mapping[str, Any]) -> bool:
            for part in parts:  # noqa: SIM110 - a plain loop beats all(<generator>) here
                if not part(item):
                    return False
            return True

        return all_match
    if not parts:
        return _never

    def any_matches(item: Mapping[str, Any]) -> bool:
        for part in parts:  # noqa: SIM110
            if part(item):
                return True
        return False

    return any_matches


def _set_test(values: Any, inside: bool) -> Callable[[Any], bool]:
    members = frozenset(values)
    return lambda x: (x in members) is inside


def _range_test(bounds: Any, inside: bool) -> Callable[[Any], bool]:
    low, high = bounds
    return lambda x: (low <= x <= high) is inside


def _folded_test(test: Callable[[str, str], bool], value: str) -> Callable[[Any], bool]:
    folded = _fold(value)
    return lambda x: test(_fold(x), folded)


# How a non-null item value is tested, given the filter's value (eq: see below).
_PYTHON: dict[str, Callable[[Any], Callable[[Any], bool]]] = {
    "ne": lambda value: lambda x: x != value,
    "gt": lambda value: lambda x: x > value,
    "gte": lambda value: lambda x: x >= value,
    "lt": lambda value: lambda x: x < value,
    "lte": lambda value: lambda x: x <= value,
    "in": lambda values: _set_test(values, True),
    "notIn": lambda values: _set_test(values, False),
    "between": lambda bounds: _range_test(bounds, True),
    "notBetween": lambda bounds: _range_test(bounds, False),
    "like": lambda value: lambda x: value in x,
    "notLike": lambda value: lambda x: value not in x,
    "iLike": lambda value: _folded_test(operator.contains, value),
    "notILike": lambda value: _folded_test(lambda x, v: v not in x, value),
    "startsWith": lambda value: _folded_test(str.startswith, value),
    "endsWith": lambda value: _folded_test(str.endswith, value),
}


def _path_value(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """The value at the end of a path through an item's nested related items
    (``{"author": {"name": ...}}``); None when a related item is missing (null),
    as the SQL back end sees a missing or unreadable one."""
    names = path.split(".")

    def value(item: Mapping[str, Any]) -> Any:
        current: Any = item
        for name in names:
            if not isinstance(current, Mapping):
                return None
            current = current.get(name)
        return current

    return value


def _compare_predicate(field: str, op: str, value: Any) -> Predicate:
    if "." in field:
        return _path_predicate(_path_value(field), op, value)
    if op == "isNull":
        return lambda item: item.get(field) is None
    if op == "isNotNull":
        return lambda item: item.get(field) is not None
    if op == "eq":  # the usual permission condition, so one call instead of two
        return lambda item: item.get(field) == value  # value is never None here
    return _path_predicate(lambda item: item.get(field), op, value)


def _path_predicate(read: Callable[[Mapping[str, Any]], Any], op: str, value: Any) -> Predicate:
    if op == "isNull":
        return lambda item: read(item) is None
    if op == "isNotNull":
        return lambda item: read(item) is not None
    if op == "eq":
        return lambda item: read(item) == value
    test = _PYTHON[op](value)

    def matches(item: Mapping[str, Any]) -> bool:
        x = read(item)
        if x is None:
            return False
        try:
            return test(x)
        except TypeError:  # a value of the wrong type (a naive datetime, say) never matches
            return False

    return matches
