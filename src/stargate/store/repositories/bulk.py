"""Bulk statements for PostgreSQL: a batch of rows sent as ONE JSON document and unpacked by the server
(``json_to_recordset``), instead of one statement per row or a multi-row ``VALUES`` list.

A batch of N rows then costs one round trip, one parameter (encoded by the standard library's C JSON encoder) and a
statement text that does not depend on N, so psycopg parses it once and the server can keep its plan. Pipelined
``executemany`` (one statement per row), a ``VALUES`` list of N × columns placeholders (a new text to parse for
every N) and one array per column (psycopg quotes text arrays element by element in Python) all cost several times
more per row. SQLite keeps the portable statements of the callers (its driver runs an ``executemany`` in C).

Values go through the conversions the column types apply (aware times to naive UTC, enums to their value, a float
that JSON cannot hold to its text); the record definition gives each column its SQL type.
"""

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import JSON, Float, Numeric, Table, TypeDecorator, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def is_postgres(session: Session) -> bool:
    """True when ``session`` talks to PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def _naive_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: expected a timezone-aware time")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat()


def _float(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else str(value)  # 'inf', 'nan': float8's input reads them


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@cache
def _column(table: Table, name: str) -> tuple[str, Callable[[Any], Any] | None]:
    """The PostgreSQL type of column ``name`` of ``table`` and the conversion of a Python value to JSON (None: as it
    is; a ``StrEnum`` is a string to the JSON encoder)."""
    kind = table.c[name].type
    impl = kind.impl if isinstance(kind, TypeDecorator) else kind
    variant = getattr(impl, "_variant_mapping", {}).get("postgresql", impl)
    if isinstance(impl, JSON) or isinstance(variant, postgresql.JSONB):
        return "JSONB", None
    sql_type = variant.compile(dialect=_PG)
    if sql_type.startswith("TIMESTAMP"):
        return sql_type, _naive_utc
    if isinstance(variant, Float):
        return sql_type, _float
    if isinstance(variant, Numeric):
        return sql_type, _decimal
    return sql_type, None


def _records(table: Table, fields: Mapping[str, str], rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The rows as one JSON array of objects, and the ``json_to_recordset`` column list (``"field" TYPE, ...``):
    ``fields`` maps each key of the rows to the column that gives its type."""
    columns = {field: _column(table, column) for field, column in fields.items()}
    converters = [(field, convert) for field, (_, convert) in columns.items() if convert is not None]
    if converters:
        rows = [{**row, **{field: convert(row[field]) for field, convert in converters}} for row in rows]
    definition = ", ".join(f'"{field}" {sql_type}' for field, (sql_type, _) in columns.items())
    return json.dumps(rows, separators=(",", ":")), definition


def insert_select(table: Table, rows: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """``INSERT INTO table (...) SELECT ... FROM json_to_recordset(:rows) ...`` of ``rows`` (all with the same keys,
    at least one) in their order, and its parameters: for :func:`insert`, or a caller's larger statement (a
    ``WITH`` that also writes the new rows' events)."""
    names = list(rows[0])
    document, definition = _records(table, {name: name for name in names}, rows)
    targets = ", ".join(f'"{c}"' for c in names)
    picked = ", ".join(f'r."{c}"' for c in names)
    sql = (
        f'INSERT INTO "{table.name}" ({targets}) SELECT {picked} FROM ROWS FROM '
        f"(json_to_recordset(CAST(:rows AS JSON)) AS ({definition})) WITH ORDINALITY AS r({targets}, n) ORDER BY r.n"
    )
    return sql, {"rows": document}


def insert(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, returning: str | None = None
) -> list[Any]:
    """Insert ``rows`` (all with the same keys) with one ``INSERT ... SELECT FROM json_to_recordset(...)``; with
    ``returning`` (an autoincrement key column), that column of each row in the order of ``rows``.

    The rows are inserted in their order (``WITH ORDINALITY ... ORDER BY``), so the sequence gives them increasing
    keys (as SQLAlchemy's own sorted ``insertmanyvalues`` relies on): sorting the keys gives the order of ``rows``.
    """
    if not rows:
        return []
    sql, params = insert_select(table, rows)
    if returning is None:
        session.execute(text(sql), params)
        return []
    return sorted(session.execute(text(f'{sql} RETURNING "{returning}"'), params).scalars())


def update(
    session: Session,
    table: Table,
    keys: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
    *,
    where: str = "",
    expressions: Mapping[str, str] | None = None,
) -> None:
    """One ``UPDATE ... FROM json_to_recordset(...)`` for ``rows`` (all with the same keys): ``keys`` maps the
    parameter names that find each row to their columns (e.g. ``{"b_job": "job_id", "b_attempt": "attempt"}``);
    every other key is a column set to its value. ``where``: a further SQL condition on the table (alias ``t``);
    ``expressions``: columns set to an SQL expression (e.g. ``{"start_failures": 't."start_failures" + 1'}``)."""
    if not rows:
        return
    params = list(rows[0])
    document, definition = _records(table, {p: keys.get(p, p) for p in params}, rows)
    sets = [f'"{p}" = r."{p}"' for p in params if p not in keys]
    sets += [f'"{c}" = {e}' for c, e in (expressions or {}).items()]
    match = " AND ".join(f't."{keys[p]}" = r."{p}"' for p in params if p in keys)
    sql = (
        f'UPDATE "{table.name}" AS t SET {", ".join(sets)} FROM json_to_recordset(CAST(:rows AS JSON)) '
        f"AS r({definition}) WHERE {match}{f' AND ({where})' if where else ''}"
    )
    session.execute(text(sql), {"rows": document})
