"""The webhook's hottest statements, compiled once and run on the driver's cursor.

A delivery of one message runs about seven statements, five of them inside the write lock
(SQLite's single writer, PostgreSQL's change counter). SQLAlchemy's execution of a statement
(cache key, parameter processing, execution context, result wrapping) costs 20-25 µs on top of the
driver's own 5-20 µs, and on SQLite every microsecond inside the lock is a microsecond every other
writer waits. :class:`DriverStatement` compiles a statement once per dialect and keeps what
SQLAlchemy would do per call that matters here:

- parameters go through the column types' own bind processors (dates in UTC, as every other write);
- ``before_cursor_execute``/``after_cursor_execute`` listeners still see every statement;
- driver errors become SQLAlchemy's (``IntegrityError``, ``OperationalError``…), and a lost
  connection is invalidated, exactly as ``Connection.execute`` would.

It returns the driver's own values, so it is only for statements whose results need no type
processing (integers, or no rows): anything else goes through ``Connection.execute``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

_INTEGER_RESULTS = (sa.Integer,)


class DriverStatement:
    """One SQLAlchemy statement compiled for one dialect, with its parameters in the driver's order."""

    __slots__ = ("sql", "_order", "_processors", "_constants", "_positional")

    def __init__(self, stmt, dialect: sa.Dialect, column_keys: Sequence[str] | None = None):
        for column in getattr(stmt, "exported_columns", ()):
            if not isinstance(column.type, _INTEGER_RESULTS):
                raise TypeError(f"{column} is not an integer: its values need SQLAlchemy's result processing")
        compiled = stmt.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        if compiled.insert_prefetch or compiled.update_prefetch:
            # Python-side column defaults are filled in by SQLAlchemy's execution context.
            raise TypeError(f"{stmt} has Python-side defaults for {compiled.insert_prefetch or compiled.update_prefetch}")
        self.sql = compiled.string
        self._positional = compiled.positional
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self._order = tuple(compiled.positiontup) if compiled.positional else tuple(binds)
        self._processors = {}
        self._constants = {}
        for name in self._order:
            bind = binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._processors[name] = process
            if not bind.required and bind.callable is None:
                self._constants[name] = bind.value  # e.g. the 1 in ``value + 1``

    def parameters(self, values: dict):
        """The driver's parameters for ``values`` (a missing key is an error, never a silent NULL)."""
        processors, constants = self._processors, self._constants
        out = []
        for name in self._order:
            value = values[name] if name in values or name not in constants else constants[name]
            if value is not None and name in processors:
                value = processors[name](value)
            out.append(value)
        return out if self._positional else dict(zip(self._order, out))

    def rows(self, conn: sa.Connection, values: dict | None = None) -> list[tuple]:
        """Run once; the rows it returns (RETURNING, SELECT), as the driver's tuples."""
        cursor = _run(conn, self.sql, self.parameters(values or {}), many=False)
        try:
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()

    def many(self, conn: sa.Connection, rows: Sequence[dict]) -> int:
        """Run once per row in one ``executemany`` (statements that return nothing); the rows changed.

        The count is the sum over all rows on both drivers (sqlite3, psycopg): an insert-or-ignore
        counts only the rows it inserted."""
        if not rows:
            return 0
        cursor = _run(conn, self.sql, [self.parameters(r) for r in rows], many=True)
        try:
            return cursor.rowcount
        finally:
            cursor.close()


def _run(conn: sa.Connection, sql: str, params, many: bool):
    if not conn.in_transaction():
        raise RuntimeError("driver statements run inside the caller's transaction")
    dbapi_conn = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    dispatch = conn.dispatch
    try:
        if dispatch.before_cursor_execute:  # tests stage races and failures here
            for listener in dispatch.before_cursor_execute:
                sql, params = listener(conn, cursor, sql, params, None, many)
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
        if dispatch.after_cursor_execute:
            for listener in dispatch.after_cursor_execute:
                listener(conn, cursor, sql, params, None, many)
        return cursor
    except conn.dialect.loaded_dbapi.Error as exc:
        cursor.close()
        lost = conn.dialect.is_disconnect(exc, dbapi_conn, cursor)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error,
                                         connection_invalidated=lost, dialect=conn.dialect) from exc
    except BaseException:
        cursor.close()
        raise
