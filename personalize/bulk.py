"""Set-based writes the ORM makes too expensive on hot paths.

Django's ``bulk_update`` writes one ``CASE WHEN pk = … THEN …`` per row and
field, and compiling those expressions costs milliseconds per row in Python:
for the 500 profiles of one tracking batch it took longer than everything else
the request did. :func:`update_rows` sends the same update as one statement
whose rows travel as one JSON document (PostgreSQL's ``UPDATE … FROM
json_to_recordset(…)``: orjson writes it in C, where psycopg adapts array
parameters element by element in Python; personalize.codec.encode_json) or as one ``executemany`` (SQLite,
where statements are in-process calls). :func:`insert_rows` stores new rows
with PostgreSQL's ``COPY``, the fastest way in, where no id needs to come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from django.db import connections, router
from django.db.models import Field, JSONField, Model
from psycopg.types.json import Jsonb

from personalize.codec import encode_json


def _column(field: Field[Any, Any]) -> str:
    assert field.column is not None  # concrete fields have one
    return field.column


def _concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    if not isinstance(field, Field) or not field.concrete:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field


def update_rows(model: type[Model], objs: Sequence[Model], fields: Sequence[str]) -> int:
    """Write ``fields`` of every instance in ``objs`` by primary key; the row count.

    Values are prepared by the fields themselves (``get_db_prep_save``), as
    ``bulk_update`` does; no signals are sent and ``auto_now`` is not applied.
    """
    if not objs or not fields:
        return 0
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    targets = [_concrete_field(model, name) for name in fields]
    columns = [quote(_column(field)) for field in targets]
    ids = [pk.get_db_prep_save(obj.pk, connection) for obj in objs]
    values = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs]
        for field in targets
    ]
    table = quote(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # varchar rather than varchar(16): as bulk_create, never truncate.
            types = [str(field.db_type(connection)).split("(")[0] for field in [pk, *targets]]
            record = ", ".join(f"v{n} {db_type}" for n, db_type in enumerate(types))
            assignments = ", ".join(f"{column} = v.v{n + 1}" for n, column in enumerate(columns))
            # JSON fields travel as JSON (the document nests them); the others as
            # the fields prepare them, which PostgreSQL reads from their text.
            json_at = {n for n, field in enumerate(targets) if isinstance(field, JSONField)}
            for n in json_at:
                values[n] = [getattr(obj, targets[n].attname) for obj in objs]
            rows = [
                {"v0": ids[i], **{f"v{n + 1}": column[i] for n, column in enumerate(values)}}
                for i in range(len(objs))
            ]
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} "
                f"FROM json_to_recordset(%s::json) AS v({record}) "
                f"WHERE t.{quote(_column(pk))} = v.v0",
                [encode_json(rows).decode()],
            )
        else:
            assignments = ", ".join(f"{column} = %s" for column in columns)
            cursor.executemany(
                f"UPDATE {table} SET {assignments} WHERE {quote(_column(pk))} = %s",
                [[*(column[n] for column in values), ids[n]] for n in range(len(objs))],
            )
        return cursor.rowcount


def insert_bound(model: type[Model], values: dict[str, Any]) -> None:
    """Insert one row of plain values (attnames) whose parameters PostgreSQL binds
    itself, bytes in binary: the ingest inbox's 360 KB batch travels as it is.
    Django's client-side binding would spell it as a hex literal twice that size
    for the server to parse. Elsewhere an ordinary ``create``.
    """
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        model._default_manager.create(**values)
        return
    fields = [_concrete_field(model, name) for name in values]
    params = [
        Jsonb(value, dumps=encode_json) if isinstance(field, JSONField) else value
        for field, value in zip(fields, values.values(), strict=True)
    ]
    placeholders = ", ".join("%b" if isinstance(v, bytes) else "%s" for v in params)
    quote = connection.ops.quote_name
    names = ", ".join(quote(_column(field)) for field in fields)
    connection.ensure_connection()
    # A plain psycopg cursor binds on the server; Django's cursors bind on the client.
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES ({placeholders})",
            params,
            prepare=False,  # no server-side prepared statement: poolers may switch backends
        )


def insert_rows(model: type[Model], objs: Sequence[Model]) -> int:
    """Insert ``objs`` (their primary keys left to the database and not read back).

    PostgreSQL: one ``COPY … FROM STDIN``, which skips the parsing and planning of
    an INSERT with thousands of parameters. Other databases: ``bulk_create``.
    Values are prepared by the fields, as for an INSERT.
    """
    if not objs:
        return 0
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, batch_size=500)
        return len(objs)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.pk]
    rows = (
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] for obj in objs
    )
    return _copy(model, [_column(f) for f in fields], rows)


def insert_values(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Insert rows of plain values for ``fields`` (attnames such as ``profile_id``;
    JSON as Python objects), with no model instances on the way: the tracking
    batch's events, where building and preparing 500 instances cost more than
    the ``COPY`` that stores them. Values must already be what the fields would
    store (aware datetimes, strings within their lengths).
    """
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        objs = [model(**dict(zip(fields, row, strict=True))) for row in rows]
        model._default_manager.bulk_create(objs, batch_size=500)
        return len(objs)
    targets = [_concrete_field(model, name) for name in fields]
    json_at = [n for n, field in enumerate(targets) if isinstance(field, JSONField)]

    def prepared(row: Sequence[Any]) -> list[Any]:
        values = list(row)
        for n in json_at:
            values[n] = Jsonb(values[n], dumps=encode_json)
        return values

    return _copy(model, [_column(field) for field in targets], (prepared(row) for row in rows))


def _copy(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    names = ", ".join(quote(column) for column in columns)
    count = 0
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    return count
