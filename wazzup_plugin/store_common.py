"""Set-based write helpers shared by the plugin's flows (dialect-aware, no host import)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def _dialect_insert(conn: sa.Connection, table: sa.Table):
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


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[dict]) -> None:
    """Insert rows, silently skipping any that hit a unique constraint (never check-then-insert).

    Callers pass rows sorted by their unique key, so that concurrent PostgreSQL transactions take
    index locks in the same order and cannot deadlock.
    """
    if rows:
        conn.execute(_built("ignore", conn, table, None, lambda: _dialect_insert(conn, table).on_conflict_do_nothing()),
                     list(rows))


def insert_ignore_returning(conn: sa.Connection, table: sa.Table, rows: Sequence[dict],
                            column: sa.Column) -> set:
    """Like :func:`insert_ignore`, and returns ``column`` of the rows this statement inserted.

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (PostgreSQL, SQLite >= 3.35): a row skipped on
    a conflict returns nothing, so the result is exactly the rows this transaction won, without
    selecting them again. Unordered: callers match by the returned value.
    """
    rows = list(rows)
    if not rows:
        return set()
    if len(rows) > 1 and conn.dialect.name == "postgresql":
        # A batched RETURNING is one long multi-row VALUES statement that psycopg re-parses in
        # Python on every call (its query cache stops at 4 KB): for many rows a plain executemany
        # (one short prepared statement) and a select of the rows by ``column`` cost less.
        # ``column`` must hold values unique to this transaction (e.g. ids it just allocated).
        insert_ignore(conn, table, rows)
        values = [row[column.name] for row in rows]
        return {v for i in range(0, len(values), 500)
                for v in conn.execute(sa.select(column).where(column.in_(values[i:i + 500]))).scalars()}
    stmt = _built("ignore-returning", conn, table, column,
                  lambda: _dialect_insert(conn, table).on_conflict_do_nothing().returning(column))
    return set(conn.execute(stmt, rows).scalars())


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict], key: Iterable[str],
           update: Iterable[str], where=None) -> None:
    """Insert rows or update ``update`` columns of the row with the same ``key``.

    ``where(table, excluded)`` optionally returns a condition the update must meet (e.g. "newer").
    """
    if not rows:
        return
    stmt = _dialect_insert(conn, table)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: excluded[c] for c in update},
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
        stmt = _built("insert-returning", conn, table, pk, lambda: sa.insert(table).returning(pk))
        return [conn.execute(stmt, rows[0]).scalar_one()]
    if conn.dialect.name == "sqlite":
        start = conn.execute(sa.select(sa.func.coalesce(sa.func.max(pk), 0))).scalar_one() + 1
        ids = list(range(start, start + len(rows)))
        conn.execute(sa.insert(table), [{**row, pk.name: i} for row, i in zip(rows, ids)])
        return ids
    # PostgreSQL: the ids from the key's sequence in one short query, then a plain executemany
    # (a batched, ordered RETURNING is a long statement psycopg re-parses in Python on every call).
    ids = list(conn.execute(
        sa.text("SELECT nextval(pg_get_serial_sequence(:table, :column)) AS id "
                "FROM generate_series(1, :n) ORDER BY id"),
        {"table": table.fullname, "column": pk.name, "n": len(rows)}).scalars())
    conn.execute(sa.insert(table), [{**row, pk.name: i} for row, i in zip(rows, ids)])
    return ids


def host_tables(state) -> tuple[sa.Table, sa.Table]:
    """The host's ``chats`` and ``messages`` tables, found through the plugin's own foreign keys.

    For code that receives only ``(tx, state)`` (e.g. ``apply_parked``), not ``helpdesk``.
    """
    wm = state.tables["messages"]
    chats = next(iter(wm.c.chat_id.foreign_keys)).column.table
    messages = next(iter(wm.c.message_id.foreign_keys)).column.table
    return chats, messages
