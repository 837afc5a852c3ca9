"""Database expressions shared by the apps."""

import json
import math
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any

import orjson
from django.db import connections
from django.db.models import Aggregate, FloatField, JSONField, Model, QuerySet


class PercentileCont(Aggregate):
    """PostgreSQL `percentile_cont(p) WITHIN GROUP (ORDER BY expr)`: interpolated, like numpy's default."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, percentile: float, **extra: Any) -> None:
        # A float formatted by us, never user text, goes into the SQL.
        super().__init__(expression, percentile=f"{float(percentile):.6f}", **extra)


def percentile_cont_portable(queryset: QuerySet, field: str, points: Iterable[float], *, count: int) -> dict[float, float | None]:
    """`percentile_cont` of `field` at each point (0–1) for databases without it (SQLite): the
    same interpolation, reading at most the two neighbouring rows per point. `count` is the
    number of non-null values, which the caller's aggregate already has."""
    ordered = queryset.filter(**{f"{field}__isnull": False}).order_by(field).values_list(field, flat=True)
    return percentile_cont_interpolate(count, points, lambda rank: [float(value) for value in ordered[rank : rank + 2]])


def percentile_cont_interpolate(
    count: int, points: Iterable[float], pair_at: Callable[[int], Sequence[float]]
) -> dict[float, float | None]:
    """`percentile_cont`'s definition over `count` sorted values: at point p the rank p·(count−1)
    falls between two neighbours, interpolated linearly. `pair_at(i)` gives the values at ranks
    i and i+1 (only the first at the last rank)."""
    out: dict[float, float | None] = {}
    for point in points:
        if not count:
            out[point] = None
            continue
        rank = point * (count - 1)
        low = math.floor(rank)
        pair = pair_at(low)
        out[point] = pair[0] if rank == low or len(pair) == 1 else pair[0] + (pair[1] - pair[0]) * (rank - low)
    return out


def json_dumps_fast(value: Any) -> str:
    """JSON text of `value` for a json/jsonb column: orjson, or the standard library for what
    orjson refuses (integers past 64 bits, subclasses it does not know)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def has_expressions(obj: Model, fields: Sequence[Any]) -> bool:
    """Whether any of `fields` holds a query expression on `obj` (e.g. a `db_default` not set)."""
    return any(hasattr(getattr(obj, f.attname), "resolve_expression") for f in fields)


def prepared_cursor(using: str = "default") -> Any:
    """A cursor for the write path's hot statements, as `connection.cursor()` gives one (errors
    translated, queries logged where Django logs them, health check and thread checks) but
    binding its parameters on the server (PostgreSQL only).

    Django's psycopg cursors bind client-side: every execution quotes each parameter into the SQL
    text in Python (~35 per turn) and PostgreSQL parses and plans that text anew. With server-side
    binding psycopg sends the parameters apart and, once a statement has run `prepare_threshold`
    times on a connection (psycopg's default 5; the database OPTIONS `prepare_threshold` sets it,
    None turns preparing off, as a transaction-mode pgbouncer older than 1.21 needs), executes it
    as a prepared statement: no quoting, no parse or plan. Same SQL, same `%s` placeholders."""
    import psycopg

    connection = connections[using]
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        return connection._prepare_cursor(psycopg.Cursor(connection.connection))


def health_check_defer(using: str = "default") -> bool:
    """Skip this request's connection health check (CONN_HEALTH_CHECKS: a `SELECT 1` round trip
    before the first statement, ~⅙ of a single-turn ingest's round trips); True when skipped.

    The caller then owns what the check was for: when its first transaction fails on a dead
    connection (the server restarted, or closed it while idle), nothing was committed, so it
    closes the connection and runs the transaction once more (`connection_lost`). Not skipped
    inside an atomic block or on a connection not opened yet."""
    connection = connections[using]
    if (connection.connection is None or connection.in_atomic_block or not connection.health_check_enabled
            or connection.health_check_done):
        return False
    connection.health_check_done = True
    return True


def connection_lost(using: str = "default") -> bool:
    """Whether the database connection is gone (broken, or closed by Django after an error)."""
    raw = connections[using].connection
    return raw is None or bool(getattr(raw, "closed", False)) or bool(getattr(raw, "broken", False))


_sequences: dict[tuple[str, str], str] = {}
# Below this many rows a multi-row INSERT … RETURNING (one round trip) beats COPY (two).
COPY_MIN_ROWS = 50


def row_values(fields: Sequence[Any]) -> Callable[[Model], list[Any]]:
    """What an instance's row holds for `fields`, as psycopg sends it: JSON encoded once with
    orjson, enums by value, `auto_now`/`auto_now_add` fields given their value as the ORM would."""
    stamped = [f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    json_columns = {i for i, f in enumerate(fields) if isinstance(f, JSONField)}
    attnames = [f.attname for f in fields]

    def values(obj: Model) -> list[Any]:
        for f in stamped:
            f.pre_save(obj, add=True)
        row = []
        for i, name in enumerate(attnames):
            value = getattr(obj, name)
            if i in json_columns and value is not None:
                value = json_dumps_fast(value)
            elif isinstance(value, Enum):
                value = value.value
            row.append(value)
        return row

    return values


def bulk_copy_insert(objs: Sequence[Model], *, using: str = "default") -> None:
    """Insert unsaved model instances, giving each its primary key, like `bulk_create`.

    On PostgreSQL:
    1. Reserve the ids from the table's sequence in one statement (`nextval` over
       `generate_series`), so every instance knows its id before its row exists (what the turn's
       LLM calls and steps point at).
    2. Stream the rows with COPY (psycopg 3): no SQL text, no per-field preparation by the ORM, no
       parameter quoting; psycopg writes each value in COPY's text format and JSON fields are
       encoded once with orjson.
    Fewer than COPY_MIN_ROWS rows go in one multi-row `INSERT … RETURNING id` built the same way.
    Row triggers, constraints and indexes apply as for INSERT. Elsewhere (SQLite) this is
    `bulk_create`. Fields with `auto_now`/`auto_now_add` get their value as the ORM would give it.
    """
    if not objs:
        return
    model = type(objs[0])
    connection = connections[using]
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    if connection.vendor != "postgresql" or has_expressions(objs[0], fields):
        # An expression (a field's db_default, F(), …) is SQL, which only the ORM can write.
        model._base_manager.using(using).bulk_create(objs, batch_size=1000)
        return
    table = meta.db_table
    key = (using, table)
    values = row_values(fields)
    quote = connection.ops.quote_name
    few = len(objs) < COPY_MIN_ROWS
    with (prepared_cursor(using) if few else connection.cursor()) as cursor:
        if few:
            # A few rows: one INSERT … RETURNING is one round trip, COPY would be two.
            placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
            cursor.execute(
                f"INSERT INTO {quote(table)} ({', '.join(quote(f.column) for f in fields)}) "
                f"VALUES {', '.join([placeholders] * len(objs))} RETURNING {quote(meta.pk.column)}",
                [value for obj in objs for value in values(obj)],
            )
            ids = [row[0] for row in cursor.fetchall()]
        else:
            if key not in _sequences:
                cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, meta.pk.column])
                _sequences[key] = cursor.fetchone()[0]
            cursor.execute("SELECT nextval(%s) FROM generate_series(1, %s)", [_sequences[key], len(objs)])
            ids = [row[0] for row in cursor.fetchall()]
            columns = ", ".join([quote(meta.pk.column)] + [quote(f.column) for f in fields])
            with cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy:
                for obj, pk in zip(objs, ids, strict=True):
                    copy.write_row([pk, *values(obj)])
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = using


def rows_insert_statement(objs: Sequence[Model], *, inserted_fk: str, using: str = "default") -> tuple[str, list[Any]]:
    """An INSERT of unsaved instances for insert_unless_conflict's `then`, and its parameters:
    their `inserted_fk` foreign key takes the id of the row just inserted, and no row is written
    if there is none (a replay). Values as bulk_copy_insert writes them, each cast to its
    column's type (they pass through a VALUES list). The instances get no primary key."""
    connection = connections[using]
    meta = type(objs[0])._meta
    fk = meta.get_field(inserted_fk)
    fields = [f for f in meta.concrete_fields if not f.primary_key and f is not fk]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in fields) + ")"
    values = row_values(fields)
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}, {quote(fk.column)}) "
           f'SELECT v.*, i.* FROM "inserted" AS i CROSS JOIN (VALUES {", ".join([row] * len(objs))}) AS v')
    return sql, [value for obj in objs for value in values(obj)]


# The CTE holding insert_unless_conflict's new row, for a `then` statement to test.
INSERTED_EXISTS = 'EXISTS (SELECT 1 FROM "inserted")'


def insert_unless_conflict(obj: Model, *, conflict_fields: Sequence[str], then: Sequence[tuple[str, list[Any]]] = (),
                           using: str = "default") -> bool:
    """Insert one unsaved instance with `INSERT … ON CONFLICT DO NOTHING RETURNING id`, giving it
    its primary key: True if stored, False if a row with the same `conflict_fields` (a unique
    constraint's) exists (a replay), in one statement instead of a lookup and an insert. PostgreSQL only (the caller
    checks `connection.vendor`); the values are written as bulk_copy_insert writes them.

    `then`, statements with their parameters (an UPDATE whose WHERE tests INSERTED_EXISTS, an
    INSERT from rows_insert_statement), run in the same statement as data-modifying CTEs, and
    change rows only if the row was inserted."""
    model = type(obj)
    connection = connections[using]
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    if connection.vendor != "postgresql" or has_expressions(obj, fields):
        raise ValueError("insert_unless_conflict needs PostgreSQL and plain field values")
    row = row_values(fields)(obj)
    quote = connection.ops.quote_name
    conflict = ", ".join(quote(meta.get_field(name).column) for name in conflict_fields)
    sql = (f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT ({conflict}) DO NOTHING "
           f"RETURNING {quote(meta.pk.column)}")
    if then:
        ctes = "".join(f', "then{i}" AS ({statement})' for i, (statement, _) in enumerate(then))
        sql = f'WITH "inserted" AS ({sql}){ctes} SELECT {quote(meta.pk.column)} FROM "inserted"'
        for _, params in then:
            row += params
    with prepared_cursor(using) as cursor:
        cursor.execute(sql, row)
        found = cursor.fetchone()
    if found is None:
        return False
    obj.pk = found[0]
    obj._state.adding = False
    obj._state.db = using
    return True
