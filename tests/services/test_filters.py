"""The filter language: parsing, coercion, tree helpers and the Python back end.

That SQL means the same as Python is checked in test_filters_property.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from livebase.services import filters
from livebase.services.errors import BadRequest
from livebase.services.filters import TRUE, And, Compare, FieldKind, FilterError, Or, parse

FIELDS = {
    "title": FieldKind.STRING,
    "body": FieldKind.TEXT,
    "n": FieldKind.INTEGER,
    "big": FieldKind.BIGINT,
    "x": FieldKind.DOUBLE,
    "price": FieldKind.DECIMAL,
    "ok": FieldKind.BOOLEAN,
    "day": FieldKind.DATE,
    "at": FieldKind.DATETIME,
    "owner": FieldKind.UUID,
    "meta": FieldKind.JSON,
}
UID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def test_public_api() -> None:
    assert sorted(filters.__all__) == sorted(
        [
            *("FieldKind", "FilterError", "Compare", "And", "Or", "Node", "TRUE"),
            *("parse", "and_", "fields_of", "to_sql", "to_predicate"),
        ]
    )
    assert [kind.value for kind in FieldKind] == [
        *("String", "Text", "Integer", "BigInt", "Double", "Decimal", "Boolean"),
        *("Date", "DateTime", "UUID", "JSON"),
    ]
    assert issubclass(FilterError, BadRequest)
    assert FilterError("x").code == "INVALID_FILTER"


# -- parse: structure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, TRUE),
        ({}, TRUE),
        ({"AND": []}, TRUE),
        ({"OR": []}, Or(())),
        ({"OR": [{}, {"n": 1}]}, TRUE),
        ({"n": {"eq": 1}}, Compare("n", "eq", 1)),
        ({"n": 1}, Compare("n", "eq", 1)),
        ({"title": "a"}, Compare("title", "eq", "a")),
        ({"n": None}, Compare("n", "isNull", None)),
        ({"n": {"eq": None}}, Compare("n", "isNull", None)),
        ({"n": {"ne": None}}, Compare("n", "isNotNull", None)),
        ({"n": {"isNull": True}}, Compare("n", "isNull", None)),
        ({"n": {"isNull": "anything"}}, Compare("n", "isNull", None)),
        ({"n": {"isNull": False}}, Compare("n", "isNotNull", None)),
        ({"n": {"isNotNull": False}}, Compare("n", "isNull", None)),
        ({"meta": {"isNull": True}}, Compare("meta", "isNull", None)),
        ({"meta": None}, Compare("meta", "isNull", None)),
        (
            {"n": {"gt": 1, "lt": 5}},
            And((Compare("n", "gt", 1), Compare("n", "lt", 5))),
        ),
        (
            {"n": 1, "title": "a"},
            And((Compare("n", "eq", 1), Compare("title", "eq", "a"))),
        ),
        ({"AND": [{"n": 1}]}, Compare("n", "eq", 1)),
        (
            {"AND": [{"n": 1}, {"AND": [{"n": 2}]}], "title": "a"},
            And((Compare("n", "eq", 1), Compare("n", "eq", 2), Compare("title", "eq", "a"))),
        ),
        (
            {"OR": [{"n": 1}, {"OR": [{"n": 2}, {"n": 3}]}]},
            Or((Compare("n", "eq", 1), Compare("n", "eq", 2), Compare("n", "eq", 3))),
        ),
        (
            {"OR": [{"n": 1}, {"n": 2}], "ok": True},
            And((Or((Compare("n", "eq", 1), Compare("n", "eq", 2))), Compare("ok", "eq", True))),
        ),
        ({"n": {"in": [1, "2", 3.0]}}, Compare("n", "in", (1, 2, 3))),
        ({"n": {"notIn": []}}, Compare("n", "notIn", ())),
        ({"n": {"between": [1, 2]}}, Compare("n", "between", (1, 2))),
        ({"title": {"notBetween": ["a", "b"]}}, Compare("title", "notBetween", ("a", "b"))),
        ({"title": {"like": "50%_off"}}, Compare("title", "like", "50%_off")),
        ({"owner": {"startsWith": "3F25"}}, Compare("owner", "startsWith", "3F25")),
    ],
)
def test_parse(raw: object, expected: filters.Node) -> None:
    assert parse(raw, FIELDS) == expected


def test_trees_are_hashable() -> None:
    node = parse({"OR": [{"n": {"in": [1, 2]}}, {"at": "2024-01-01"}]}, FIELDS)
    assert {node: 1}[parse({"OR": [{"n": {"in": [1, 2]}}, {"at": "2024-01-01"}]}, FIELDS)] == 1


def _nested(depth: int) -> dict[str, Any]:
    raw: dict[str, Any] = {"n": 1}
    for _ in range(depth - 1):
        raw = {"AND": [raw]}
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be an object"),
        ("n", "must be an object"),
        (1, "must be an object"),
        ({"AND": [[]]}, "must be an object"),
        ({"OR": ["n"]}, "must be an object"),
        ({"AND": {"n": 1}}, "AND must be a list"),
        ({"OR": "x"}, "OR must be a list"),
        ({"nope": 1}, "unknown field 'nope'"),
        ({1: 1}, "unknown field 1"),
        ({"n": {}}, "field 'n' names no operator"),
        ({"n": {"_eq": 1}}, "unknown operator '_eq' on field 'n'"),
        ({"n": {"EQ": 1}}, "unknown operator 'EQ'"),
        ({"n": {"like": "1"}}, "operator 'like' cannot be used on Integer field 'n'"),
        ({"ok": {"gt": True}}, "operator 'gt' cannot be used on Boolean field 'ok'"),
        ({"meta": {"eq": 1}}, "operator 'eq' cannot be used on JSON field 'meta'"),
        ({"meta": {"a": 1}}, "unknown operator 'a' on field 'meta'"),
        ({"n": {"in": 1}}, "field 'n', operator 'in': expected a list"),
        ({"n": {"notIn": "1,2"}}, "expected a list"),
        ({"n": {"in": [1, None]}}, "null is only allowed with eq, ne"),
        ({"n": {"between": [1]}}, "expected a list [low, high]"),
        ({"n": {"between": [1, 2, 3]}}, "expected a list [low, high]"),
        ({"n": {"notBetween": 1}}, "expected a list"),
        ({"n": {"between": [1, None]}}, "null is only allowed"),
        ({"n": {"gt": None}}, "field 'n', operator 'gt': null is only allowed"),
        ({"title": {"like": None}}, "null is only allowed"),
        ({"n": [1, 2]}, "field 'n', operator 'eq': expected an integer"),
        ({"n": {"eq": {"a": 1}}}, "field 'n', operator 'eq': expected an integer"),
        (_nested(33), "nested more than 32 levels"),
        ({"n": {"in": list(range(10_001))}}, "more than 10000 values"),
    ],
)
def test_parse_refuses(raw: object, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(raw, FIELDS)
    assert message in caught.value.message


def test_nesting_up_to_32_levels_is_fine() -> None:
    assert parse(_nested(32), FIELDS) == Compare("n", "eq", 1)


# -- parse: coercion -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("title", "Hello", "Hello"),
        ("title", 42, "42"),
        ("body", "", ""),
        ("owner", UID.upper(), UID),
        ("owner", "not-a-uuid", "not-a-uuid"),
        ("n", 7, 7),
        ("n", 7.0, 7),
        ("n", "7", 7),
        ("n", " -7 ", -7),
        ("n", "1e3", 1000),
        ("n", 2**31 - 1, 2**31 - 1),
        ("n", -(2**31), -(2**31)),
        ("big", 2**63 - 1, 2**63 - 1),
        ("big", "-9223372036854775808", -(2**63)),
        ("x", 1, 1.0),
        ("x", 1.5, 1.5),
        ("x", "2.5e3", 2500.0),
        ("price", 3, Decimal(3)),
        ("price", 0.1, Decimal("0.1")),
        ("price", "12.3400", Decimal("12.34")),
        ("price", "123456789012345", Decimal("123456789012345")),
        ("ok", True, True),
        ("ok", False, False),
        ("ok", "true", True),
        ("ok", "false", False),
        ("day", "2024-02-29", date(2024, 2, 29)),
        ("at", "2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("at", "2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("at", "2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("at", "2024-01-02T03:04:05.123456Z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("at", "2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
    ],
)
def test_values_are_coerced_to_the_field_kind(field: str, raw: object, expected: object) -> None:
    node = parse({field: {"eq": raw}}, FIELDS)
    assert node == Compare(field, "eq", expected)
    assert type(node.value) is type(expected)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("title", True),
        ("title", 1.5),
        ("title", ["a"]),
        ("title", {"a": 1}),
        ("title", "a\x00b"),
        ("title", "\ud800"),
        pytest.param("title", 10**5000, id="title-int-too-long-for-str"),
        ("owner", 1.0),
        ("n", True),
        ("n", 1.5),
        ("n", "1.5"),
        ("n", "seven"),
        ("n", ""),
        ("n", 2**31),
        ("n", -(2**31) - 1),
        ("n", "1e999999999"),
        ("n", float("inf")),
        ("n", float("nan")),
        ("big", 2**63),
        ("x", True),
        ("x", "abc"),
        ("x", float("nan")),
        ("x", float("inf")),
        ("x", "-inf"),
        ("x", "nan"),
        ("x", 10**400),
        ("x", [1]),
        ("price", False),
        ("price", "NaN"),
        ("price", "Infinity"),
        ("price", float("inf")),
        ("price", "1.2.3"),
        ("price", "1234567890123456"),
        ("price", "1e400"),
        ("price", {"v": 1}),
        ("ok", 1),
        ("ok", "yes"),
        ("ok", "True"),
        ("ok", []),
        ("day", "2024-02-30"),
        ("day", 20240101),
        ("day", "yesterday"),
        ("at", "2024-13-01T00:00:00Z"),
        ("at", "0001-01-01T00:00:00+01:00"),
        ("at", "9999-12-31T23:59:59-01:00"),
        ("at", 1700000000),
        ("at", "now"),
    ],
)
def test_values_that_do_not_fit_are_refused(field: str, raw: object) -> None:
    with pytest.raises(FilterError) as caught:
        parse({field: {"eq": raw}}, FIELDS)
    assert f"field {field!r}, operator 'eq': expected" in caught.value.message


def test_coercion_applies_inside_lists() -> None:
    node = parse({"at": {"between": ["2024-01-01", "2024-01-02T00:00:00+01:00"]}}, FIELDS)
    low, high = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 23, tzinfo=UTC)
    assert node == Compare("at", "between", (low, high))
    with pytest.raises(FilterError, match="expected a date"):
        parse({"day": {"in": ["2024-01-01", "soon"]}}, FIELDS)


# -- parse: variables ------------------------------------------------------------------

VARIABLES = {"$CURRENT_USER": UID, "$CURRENT_ROLE": "editor", "$NOBODY": None, "$N": "5"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"owner": {"eq": "$CURRENT_USER"}}, Compare("owner", "eq", UID)),
        ({"owner": "$CURRENT_USER"}, Compare("owner", "eq", UID)),
        ({"title": {"in": ["$CURRENT_ROLE", "x"]}}, Compare("title", "in", ("editor", "x"))),
        ({"n": {"between": ["$N", 9]}}, Compare("n", "between", (5, 9))),
        ({"n": {"gt": "$N"}}, Compare("n", "gt", 5)),  # substituted, then coerced
        ({"owner": {"eq": "$NOBODY"}}, Compare("owner", "isNull", None)),
        ({"title": {"eq": "$OTHER"}}, Compare("title", "eq", "$OTHER")),  # not a variable
        ({"title": {"eq": "$CURRENT_USER "}}, Compare("title", "eq", "$CURRENT_USER ")),
    ],
)
def test_variables_are_substituted(raw: object, expected: filters.Node) -> None:
    assert parse(raw, FIELDS, VARIABLES) == expected


def test_a_variable_must_fit_the_field_too() -> None:
    with pytest.raises(FilterError, match="expected an integer"):
        parse({"n": {"eq": "$CURRENT_ROLE"}}, FIELDS, VARIABLES)
    with pytest.raises(FilterError, match="null is only allowed"):
        parse({"owner": {"in": ["$NOBODY"]}}, FIELDS, VARIABLES)


# -- parse never fails otherwise ---------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sampled_from([*FIELDS, "AND", "OR", "eq", "in", "between", "like", "isNull"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from([*FIELDS, "AND", "OR", "eq", "in", "gt", "between", "startsWith"])
            | st.text(max_size=3),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


COLUMN_TYPES = {
    **dict.fromkeys(FIELDS, sa.Text()),
    "n": sa.Integer(),
    "price": sa.Numeric(12, 4),
    "meta": sa.JSON(),
}
TABLE = sa.Table("t", sa.MetaData(), *(sa.Column(n, t) for n, t in COLUMN_TYPES.items()))


@given(json_values)
def test_parse_fails_only_with_filter_error(raw: object) -> None:
    try:
        node = parse(raw, FIELDS)
    except FilterError:
        return
    filters.to_predicate(node)({})
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        filters.to_sql(node, TABLE.c, dialect.name).compile(dialect=dialect)


# -- and_, fields_of ---------------------------------------------------------------------

A, B, C = Compare("n", "eq", 1), Compare("title", "eq", "a"), Compare("ok", "eq", True)


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        ((), TRUE),
        ((TRUE,), TRUE),
        ((TRUE, TRUE), TRUE),
        ((A,), A),
        ((A, TRUE), A),
        ((TRUE, A, TRUE, B), And((A, B))),
        ((And((A, B)), C), And((A, B, C))),
        ((Or((A, B)), C), And((Or((A, B)), C))),
    ],
)
def test_and(nodes: tuple[filters.Node, ...], expected: filters.Node) -> None:
    assert filters.and_(*nodes) == expected


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (TRUE, set()),
        (A, {"n"}),
        (And((A, Or((B, Compare("n", "gt", 3))))), {"n", "title"}),
        (
            parse({"OR": [{"meta": None}, {"AND": [{"day": {"gt": "2024-01-01"}}]}]}, FIELDS),
            {"meta", "day"},
        ),
    ],
)
def test_fields_of(node: filters.Node, expected: set[str]) -> None:
    assert filters.fields_of(node) == expected


# -- the Python back end -----------------------------------------------------------------

ITEM: dict[str, Any] = {
    "title": "50% Off_Straße",
    "body": None,
    "n": 5,
    "big": 2**40,
    "x": 2.5,
    "price": Decimal("9.9900"),
    "ok": True,
    "day": date(2024, 2, 29),
    "at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "owner": UID,
    "meta": {"a": 1},
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, True),
        ({"OR": []}, False),
        ({"n": 5}, True),
        ({"n": {"eq": "5"}}, True),
        ({"n": {"ne": 5}}, False),
        ({"n": {"gt": 4, "lte": 5}}, True),
        ({"n": {"gte": 6}}, False),
        ({"n": {"in": [1, 5]}}, True),
        ({"n": {"in": []}}, False),
        ({"n": {"notIn": [1, 5]}}, False),
        ({"n": {"notIn": []}}, True),
        ({"n": {"between": [5, 5]}}, True),
        ({"n": {"between": [6, 4]}}, False),
        ({"n": {"notBetween": [6, 4]}}, True),
        ({"big": {"gt": 2**39}}, True),
        ({"x": {"lt": "2.6"}}, True),
        ({"price": {"eq": 9.99}}, True),
        ({"price": {"gt": "9.98999"}}, True),
        ({"ok": "true"}, True),
        ({"ok": {"ne": True}}, False),
        ({"day": {"between": ["2024-02-01", "2024-02-29"]}}, True),
        ({"at": {"eq": "2024-01-02T04:04:05+01:00"}}, True),
        ({"at": {"gt": "2024-01-02T03:04:05.000001Z"}}, False),
        ({"owner": UID.upper()}, True),
        ({"meta": {"isNotNull": True}}, True),
        # like: case-sensitive substring, % and _ literal
        ({"title": {"like": "50% Off_"}}, True),
        ({"title": {"like": "50% off_"}}, False),
        ({"title": {"like": "5_%"}}, False),
        ({"title": {"notLike": "Off"}}, False),
        ({"title": {"like": ""}}, True),
        # iLike, startsWith, endsWith: case-insensitive
        ({"title": {"iLike": "OFF_STRASSE"}}, False),  # folding is lower(), not casefold()
        ({"title": {"iLike": "off_straße"}}, True),
        ({"title": {"iLike": "OFF_STRAẞE"}}, True),
        ({"title": {"notILike": "OFF"}}, False),
        ({"title": {"startsWith": "50% o"}}, True),
        ({"title": {"startsWith": "0% o"}}, False),
        ({"title": {"endsWith": "STRASSE"}}, False),
        ({"title": {"endsWith": "_STRAẞE"}}, True),
        ({"title": {"gt": "50% Off_Strasse"}}, True),  # code point order: ß > s
        ({"title": {"lt": "6"}}, True),
        ({"title": {"lt": "50% off"}}, True),  # "O" < "o"
        # NULL matches nothing but isNull, negations included
        ({"body": {"isNull": True}}, True),
        ({"body": {"ne": "x"}}, False),
        ({"body": {"notIn": ["x"]}}, False),
        ({"body": {"notIn": []}}, False),
        ({"body": {"notLike": "x"}}, False),
        ({"body": {"notILike": "x"}}, False),
        ({"body": {"notBetween": ["x", "y"]}}, False),
        ({"missing_is_null": {"isNull": True}}, True),
        # boolean structure
        ({"OR": [{"n": 1}, {"n": 5}]}, True),
        ({"OR": [{"n": 1}, {"body": {"ne": "x"}}]}, False),
        ({"AND": [{"n": 5}, {"OR": [{"ok": False}, {"x": 2.5}]}]}, True),
        ({"AND": [{"n": 5}, {"ok": False}]}, False),
        ({"n": 5, "ok": False}, False),
        ({"OR": [{"n": 1}], "ok": True}, False),
    ],
)
def test_predicate(raw: dict[str, Any], expected: bool) -> None:
    fields = {**FIELDS, "missing_is_null": FieldKind.STRING}
    assert filters.to_predicate(parse(raw, fields))(ITEM) is expected


@pytest.mark.parametrize(
    ("title", "needle", "expected"),
    [
        ("İSTANBUL", "istanbul", True),  # PostgreSQL's lower() maps İ to i, so do we
        ("istanbul", "İST", True),
        ("ΟΔΟΣ", "οδοσ", True),  # no word-final ς: PostgreSQL folds letter by letter
        ("ΟΔΟΣ", "οδος", False),
        ("Ärger", "äR", True),
    ],
)
def test_case_folding_matches_postgresql(title: str, needle: str, expected: bool) -> None:
    matches = filters.to_predicate(parse({"title": {"iLike": needle}}, FIELDS))
    assert matches({"title": title}) is expected


@pytest.mark.parametrize(
    ("raw", "item"),
    [
        ({"at": {"gt": "2024-01-01"}}, {"at": datetime(2024, 1, 2)}),  # naive: not comparable
        ({"n": {"between": [1, 9]}}, {"n": "5"}),
        ({"title": {"iLike": "a"}}, {"title": 5}),
        ({"title": {"notLike": "a"}}, {"title": 5}),
        ({"n": {"notIn": [1]}}, {"n": [1]}),
    ],
)
def test_values_of_the_wrong_type_never_match(raw: dict[str, Any], item: dict[str, Any]) -> None:
    assert filters.to_predicate(parse(raw, FIELDS))(item) is False


# -- the SQL back end (compiled only; run against real databases in the property test) -


def test_to_sql() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("n", sa.Integer), sa.Column("t", sa.Text))
    assert str(filters.to_sql(TRUE, table.c, "sqlite")) == "true"
    assert str(filters.to_sql(Or(()), table.c, "sqlite")) == "false"
    node = parse({"t": {"gt": "a"}}, {"t": FieldKind.TEXT})
    assert "COLLATE" in str(filters.to_sql(node, table.c, "postgresql"))
    assert "COLLATE" not in str(filters.to_sql(node, table.c, "sqlite"))
    with pytest.raises(FilterError, match="unknown field 'title'"):
        filters.to_sql(Compare("title", "eq", "a"), table.c, "sqlite")
