"""How columns are compared (storage/comparisons.py): the dialect differences, kept here."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from livebase.storage.comparisons import compared, is_null

TABLE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("s", sa.String(20)),
    sa.Column("price", sa.Numeric(12, 2)),
    sa.Column("x", sa.Double()),
    sa.Column("meta", sa.JSON()),
)


def _sql(element: sa.ColumnElement[bool], dialect: sa.Dialect) -> str:
    return str(element.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def test_strings_order_by_code_point_on_postgresql_only() -> None:
    column = TABLE.c.s
    assert _sql(compared(column, "postgresql", ordering=True) > "a", postgresql.dialect()) == (
        "(t.s COLLATE \"C\") > 'a'"
    )
    assert _sql(compared(column, "postgresql", ordering=False) == "a", postgresql.dialect()) == (
        "t.s = 'a'"
    )
    assert _sql(compared(column, "sqlite", ordering=True) > "a", sqlite.dialect()) == "t.s > 'a'"


def test_decimal_bounds_are_not_cast_to_the_columns_scale() -> None:
    assert (TABLE.c.price > Decimal("1.005")).right.type.scale == 2  # would round to 1.01
    bound = compared(TABLE.c.price, "postgresql", ordering=True) > Decimal("1.005")
    assert isinstance(bound.right.type, sa.Numeric)
    assert bound.right.type.scale is None
    assert compared(TABLE.c.x, "postgresql", ordering=True) is TABLE.c.x


def test_json_null_counts_as_null() -> None:
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert _sql(is_null(TABLE.c.meta), dialect) == (
            "t.meta IS NULL OR CAST(t.meta AS TEXT) = 'null'"
        )
        assert _sql(is_null(TABLE.c.s), dialect) == "t.s IS NULL"
