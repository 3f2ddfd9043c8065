"""How a stored column is compared in SQL, the same on SQLite and PostgreSQL.

The filter language (``services/filters.py``) renders its operators over the
columns these functions hand it; every difference between the two databases
and every quirk of a column type stays here.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["compared", "is_null"]


def is_null(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether the column holds NULL, counting JSON ``null`` in a JSON column as NULL."""
    null: ColumnElement[bool] = column.is_(None)
    if isinstance(column.type, sa.JSON):
        # SQLAlchemy stores Python None as JSON 'null', which reads back as None.
        null = sa.or_(null, sa.cast(column, sa.Text()) == "null")
    return null


def compared(column: ColumnElement[Any], dialect: str, ordering: bool) -> ColumnElement[Any]:
    """The column as a comparison with bound values must see it.

    Args:
        column: the stored column.
        dialect: "sqlite" or "postgresql".
        ordering: whether the comparison orders (``gt``, ``between``, ...),
            rather than testing equality or text.
    """
    if isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Float):
        # Bound values would otherwise be cast to the column's NUMERIC(p, s) on PostgreSQL:
        # rounded to its scale, or refused beyond its precision.
        column = sa.type_coerce(column, sa.Numeric())
    if ordering and dialect == "postgresql" and isinstance(column.type, sa.String):
        column = column.collate("C")  # code point order, whatever the database's collation
    return column
