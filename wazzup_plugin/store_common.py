"""Set-based write helpers shared by the plugin's flows (dialect-aware, no host import)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from wazzup_plugin.driver_sql import DriverStatement


def dialect_insert(conn: sa.Connection, table: sa.Table):
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"insert-or-ignore is not implemented for {name}")


# Statements these helpers run on every delivery and send, built once per (dialect, table, column):
# building an INSERT ... ON CONFLICT ... RETURNING cost as much as running it on SQLite.
# Kept in the table's own ``info``: every app has its own tables, and its statements go with them.
_BUILT_KEY = "wazzup24.built_statements"


def built(table: sa.Table, key, build):
    """The statement ``build()`` makes, built once per ``table`` and ``key`` (values go in as parameters)."""
    per_table = table.info.setdefault(_BUILT_KEY, {})
    stmt = per_table.get(key)
    if stmt is None:
        stmt = per_table[key] = build()
    return stmt


def _built(kind: str, conn: sa.Connection, table: sa.Table, column: sa.Column | None, build):
    return built(table, (kind, conn.dialect.name, column.name if column is not None else None), build)


def _driver_insert(kind: str, conn: sa.Connection, table: sa.Table, row: dict, build) -> DriverStatement:
    """A one-row insert of ``row``'s columns, compiled once and run on the driver (see ``driver_sql``)."""
    keys = tuple(row)
    return built(table, (kind, "driver", conn.dialect.name, keys), lambda: DriverStatement(build(), conn.dialect, keys))


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[dict]) -> None:
    """Insert rows, silently skipping any that hit a unique constraint (never check-then-insert).

    Callers pass rows sorted by their unique key, so that concurrent PostgreSQL transactions take
    index locks in the same order and cannot deadlock.
    """
    if rows:
        conn.execute(_built("ignore", conn, table, None, lambda: dialect_insert(conn, table).on_conflict_do_nothing()),
                     list(rows))


def insert_ignore_returning(conn: sa.Connection, table: sa.Table, rows: Sequence[dict],
                            column: sa.Column) -> set:
    """Like :func:`insert_ignore`, and returns ``column`` of the rows this statement inserted.

    ``column`` must hold values unique to this transaction (e.g. ids it just allocated), so that a
    row holding one of them is a row this statement inserted. Unordered: callers match by value.
    """
    rows = list(rows)
    if not rows:
        return set()
    ignore = lambda: dialect_insert(conn, table).on_conflict_do_nothing()  # noqa: E731
    if len(rows) == 1:  # the usual webhook delivery: ``ON CONFLICT DO NOTHING RETURNING``, on the driver
        stmt = _driver_insert(f"ignore-returning-{column.name}", conn, table, rows[0],
                              lambda: ignore().returning(column))
        return {r[0] for r in stmt.rows(conn, rows[0])}
    # Many rows: a batched RETURNING is one long multi-row VALUES statement that SQLAlchemy builds
    # and psycopg re-parses in Python on every call; one short statement in an executemany costs
    # less. The driver counts the rows it inserted: when that is all of them (the usual case), the
    # winners are known; otherwise they are selected back by ``column``.
    # ``inline()``: no implicit RETURNING of the key (PostgreSQL adds one to a plain insert).
    inserted = _driver_insert("ignore", conn, table, rows[0], lambda: ignore().inline()).many(conn, rows)
    values = [row[column.name] for row in rows]
    if inserted == len(rows):
        return set(values)
    return {v for i in range(0, len(values), 500)
            for v in conn.execute(sa.select(column).where(column.in_(values[i:i + 500]))).scalars()}


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict], key: Iterable[str],
           update: Iterable[str], where=None, keep_when_null: Iterable[str] = ()) -> None:
    """Insert rows or update ``update`` columns of the row with the same ``key``.

    ``where(table, excluded)`` optionally returns a condition the update must meet (e.g. "newer").
    ``keep_when_null``: columns of ``update`` a NULL does not overwrite (a source that does not know).
    """
    if not rows:
        return
    stmt = dialect_insert(conn, table)
    excluded = stmt.excluded
    keep = set(keep_when_null)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c: sa.func.coalesce(excluded[c], table.c[c]) if c in keep else excluded[c] for c in update},
        where=where(table, excluded) if where is not None else None)
    conn.execute(stmt, list(rows))


def insert_returning_ids(conn: sa.Connection, table: sa.Table, rows: Sequence[dict]) -> list[int]:
    """Insert rows in one batch and return their integer primary keys, in the order of ``rows``.

    PostgreSQL: the ids are drawn from the key's own sequence first (other writers draw from it
    too, never the same value), then the rows are inserted with them.
    SQLite cannot order a batched ``RETURNING`` (SQLAlchemy falls back to a statement per row),
    so the ids are assigned here, after the current maximum: safe because a SQLite write
    transaction (``BEGIN IMMEDIATE``) excludes every other writer; outside one, a clash fails
    loudly on the primary key instead of mixing rows up.
    """
    rows = list(rows)
    if not rows:
        return []
    (pk,) = table.primary_key.columns
    if len(rows) == 1:  # one row: its RETURNING needs no order (and SQLite needs no max() first)
        stmt = _driver_insert("insert-returning", conn, table, rows[0], lambda: sa.insert(table).returning(pk))
        return [stmt.rows(conn, rows[0])[0][0]]
    if conn.dialect.name == "sqlite":
        start = conn.execute(sa.select(sa.func.coalesce(sa.func.max(pk), 0))).scalar_one() + 1
        ids = list(range(start, start + len(rows)))
    else:
        # PostgreSQL: the ids from the key's sequence in one short query, then a plain executemany
        # (a batched, ordered RETURNING is a long statement psycopg re-parses in Python on every call).
        ids = list(conn.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence(:table, :column)) AS id "
                    "FROM generate_series(1, :n) ORDER BY id"),
            {"table": table.fullname, "column": pk.name, "n": len(rows)}).scalars())
    with_ids = [{**row, pk.name: i} for row, i in zip(rows, ids)]
    _driver_insert("insert", conn, table, with_ids[0], lambda: sa.insert(table).inline()).many(conn, with_ids)
    return ids


def host_tables(state) -> tuple[sa.Table, sa.Table]:
    """The host's ``chats`` and ``messages`` tables, found through the plugin's own foreign keys.

    For code that receives only ``(tx, state)`` (e.g. ``apply_parked``), not ``helpdesk``.
    """
    wm = state.tables["messages"]
    chats = next(iter(wm.c.chat_id.foreign_keys)).column.table
    messages = next(iter(wm.c.message_id.foreign_keys)).column.table
    return chats, messages


def in_batches(ctx, key, age: sa.Column, condition, write, batch: int, max_batches: int, written=None,
               seconds: float | None = None, timer=time.monotonic) -> int:
    """Run ``write(keys)`` on up to ``batch`` keys matching ``condition``, oldest ``age`` first, one
    short write transaction per batch, until none are left (or ``max_batches`` ran); returns the rows
    written. ``key``: a column (``keys`` are its values) or a tuple of columns (``keys`` are rows).
    Housekeeping's way: a backlog never holds the write lock for long, nor frees gigabytes in one commit;
    ``write`` repeats ``condition``, so that a row changed since it was read is left alone.

    ``written(tx, seq, rows)``: for a ``write`` that changes what a message shows, with a RETURNING: called
    in the batch's transaction with the rows it returns and the change counter ``seq``, taken before the
    write as every writer of messages takes it, to stamp them.

    ``seconds``: no batch starts once this long has gone by (the worker's sends wait for housekeeping)."""
    columns = key if isinstance(key, tuple) else (key,)
    done = 0
    started = timer()
    for _ in range(max_batches):
        if seconds is not None and timer() - started >= seconds:
            break
        with ctx.helpdesk.db.write() as tx:
            # Keys only, read through the condition's index (never a row with its bytes).
            found = tx.conn.execute(sa.select(*columns).where(condition).order_by(age).limit(batch))
            keys = found.all() if isinstance(key, tuple) else found.scalars().all()
            if keys and written is None:
                done += tx.conn.execute(write(keys)).rowcount
            elif keys:
                seq = tx.change_seq
                rows = tx.conn.execute(write(keys)).all()
                written(tx, seq, rows)
                done += len(rows)
        if len(keys) < batch:
            break
    return done
