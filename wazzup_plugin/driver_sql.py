"""The webhook's hottest statements, compiled once and run on the driver's cursor.

A delivery of one message runs about seven statements, five of them inside the write lock
(SQLite's single writer, PostgreSQL's change counter). SQLAlchemy's execution of a statement
(cache key, parameter processing, execution context, result wrapping) costs 20-25 µs on top of the
driver's own 5-20 µs, and on SQLite every microsecond inside the lock is a microsecond every other
writer waits. :class:`DriverStatement` compiles a statement once per dialect and keeps what
SQLAlchemy would do per call that matters here:

- parameters go through the column types' own bind processors, and results through their result
  processors (dates in UTC, booleans as booleans), exactly as with ``Connection.execute``;
- ``before_cursor_execute``/``after_cursor_execute`` listeners still see every statement;
- driver errors become SQLAlchemy's (``IntegrityError``, ``OperationalError``…), and a lost
  connection is invalidated, exactly as ``Connection.execute`` would.

On psycopg a statement is compiled with ``$1``-style placeholders and run on a ``RawCursor``, which
sends it as it is. A ``%(name)s`` statement is rewritten by psycopg on every call, with a regular
expression, when it is longer than 4 KiB or has more than 50 parameters (psycopg caches only
smaller ones): the usual delivery's one statement is 5 KiB, and rewriting it cost a tenth of a
worker's time under load.
"""

from __future__ import annotations

import copy
from collections import namedtuple
from collections.abc import Sequence
from operator import itemgetter

import sqlalchemy as sa


class DriverStatement:
    """One SQLAlchemy statement compiled for one dialect, with its parameters in the driver's order."""

    __slots__ = ("sql", "_order", "_get", "_processors", "_constants", "_positional", "_row", "_results", "_cursor")

    def __init__(self, stmt, dialect: sa.Dialect, column_keys: Sequence[str] | None = None):
        raw_cursor = _raw_cursor_class(dialect)
        compiled = stmt.compile(dialect=_dollar_placeholders(dialect) if raw_cursor else dialect,
                                column_keys=list(column_keys) if column_keys else None)
        self._cursor = raw_cursor  # None: the driver connection's own cursor()
        defaulted = compiled.insert_prefetch or compiled.update_prefetch
        if defaulted:  # Python-side column defaults are filled in by SQLAlchemy's execution context
            raise TypeError(f"{stmt} has Python-side defaults for {defaulted}")
        if compiled.post_compile_params or compiled.literal_execute_params or compiled.escaped_bind_names:
            # Expanding IN, literal-execute and escaped names are rewritten per call by SQLAlchemy.
            raise TypeError(f"{stmt} needs SQLAlchemy's per-call rendering of its parameters")
        self.sql = compiled.string
        self._positional = compiled.positional
        binds: dict[str, list] = {}
        for bind, name in compiled.bind_names.items():
            binds.setdefault(name, []).append(bind)
        self._order = tuple(compiled.positiontup) if compiled.positional else tuple(binds)
        # Values are picked by one C-level itemgetter, then only the typed ones are converted:
        # a delivery of 100 messages converts 100 rows of 26 columns inside the write lock.
        get = itemgetter(*self._order) if self._order else (lambda values: ())
        self._get = get if len(self._order) != 1 else (lambda values: (get(values),))
        processors = {}
        self._constants = {}
        for name in dict.fromkeys(self._order):
            process = None
            for bind in binds[name]:  # as SQLAlchemy does: the last of a name's binds with a processor
                process = bind.type.dialect_impl(dialect).bind_processor(dialect) or process
                if not bind.required and bind.callable is None:
                    self._constants[name] = bind.value  # e.g. the 1 in ``value + 1``
            if process is not None:
                processors[name] = process
        # By position in the driver's parameters, not by name: converting in the picked list spares a
        # copy of every row's dict (SQLite's ``?`` repeats a reused name: each position is converted).
        self._processors = [(i, processors[name]) for i, name in enumerate(self._order) if name in processors]
        columns = getattr(stmt, "exported_columns", None)
        self._row = namedtuple("DriverRow", list(columns.keys())) if columns else None
        # The driver's type code is not known here: a type whose result processing needs it (e.g.
        # Numeric on psycopg) raises now, at construction, never silently later.
        self._results = [(i, process) for i, column in enumerate(columns or ())
                         if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))]

    def parameters(self, values: dict):
        """The driver's parameters for ``values`` (a missing key is an error, never a silent NULL)."""
        out = list(self._get({**self._constants, **values} if self._constants else values))
        for i, process in self._processors:  # None too: a type may store it as something else
            out[i] = process(out[i])
        return out if self._positional else dict(zip(self._order, out))

    def rows(self, conn: sa.Connection, values: dict | None = None) -> list[tuple]:
        """Run once; the rows it returns (RETURNING, SELECT) as named tuples of processed values."""
        return self._process(_run(conn, self.sql, self.parameters(values or {}), False, self._fetch, self._cursor))

    def many(self, conn: sa.Connection, rows: Sequence[dict]) -> int:
        """Run once per row in one ``executemany`` (statements that return nothing); the rows changed.

        The count is the sum over all rows on both drivers (sqlite3, psycopg): an insert-or-ignore
        counts only the rows it inserted."""
        if not rows:
            return 0
        return _run(conn, self.sql, [self.parameters(r) for r in rows], True, _rowcount, self._cursor)

    def _fetch(self, cursor) -> list:
        return cursor.fetchall() if self._row is not None and cursor.description is not None else []

    def _process(self, rows: list) -> list[tuple]:
        make, results = self._row._make if self._row is not None else tuple, self._results
        if not results:
            return [make(r) for r in rows]
        out = []
        for r in rows:
            r = list(r)
            for i, process in results:
                r[i] = process(r[i])
            out.append(make(r))
        return out


def one_of(column: sa.ColumnElement, name: str, dialect: sa.Dialect) -> sa.ColumnElement:
    """``column`` is one of the values of a list bound as ``name``, with one parameter however long the list.

    An expanding ``IN`` has one placeholder per value, so SQLAlchemy renders its statement anew on
    every call and a ``DriverStatement`` cannot hold it; a delivery of 100 messages looks up its chats
    and its stored messages by lists of up to 100 values. PostgreSQL: ``= ANY($n)`` of an array.
    SQLite: ``IN (SELECT value FROM json_each(?))`` of a JSON array; either way the column's index is
    used for each value. Lists of strings only (JSON and arrays carry no column type).
    """
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(name, type_=ARRAY(sa.String())))
    if dialect.name == "sqlite":
        values = sa.func.json_each(sa.bindparam(name, type_=sa.JSON())).table_valued("value")
        return column.in_(sa.select(values.c.value))
    raise NotImplementedError(f"one_of is not implemented for {dialect.name}")


def _raw_cursor_class(dialect: sa.Dialect):
    """psycopg's ``RawCursor`` (``$1`` placeholders, the statement sent as it is), else None."""
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return None
    import psycopg

    return psycopg.RawCursor


def _dollar_placeholders(dialect: sa.Dialect) -> sa.Dialect:
    """The dialect as it is (server version, features) but with ``$1``-style placeholders, for compiling.

    SQLAlchemy's compiler reads the placeholder style from the dialect it is given; the identifier
    preparer is made anew because it decides from that style whether ``%`` must be doubled. Made
    for each statement, which is compiled once: nothing is kept."""
    twin = copy.copy(dialect)
    twin.paramstyle, twin.positional = "numeric_dollar", True
    twin.identifier_preparer = twin.preparer(twin)
    return twin


def _dbapi_connection(conn: sa.Connection):
    if not conn.in_transaction():
        raise RuntimeError("driver statements run inside the caller's transaction")
    return conn.connection.dbapi_connection


def _rowcount(cursor) -> int:
    return cursor.rowcount


def _run(conn: sa.Connection, sql: str, params, many: bool, result, cursor_class=None):
    """Execute on a cursor of the connection's driver connection; ``result(cursor)`` is returned.

    Plain ``try`` blocks, not context managers: this runs for every statement inside the write lock.
    """
    dbapi_conn = _dbapi_connection(conn)
    try:
        cursor = dbapi_conn.cursor() if cursor_class is None else cursor_class(dbapi_conn)
    except BaseException as exc:
        _handle(conn, exc, sql, params, None)
    try:
        sql, params = _before(conn, cursor, sql, params, many)
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
        except BaseException as exc:
            _handle(conn, exc, sql, params, cursor)
        _after(conn, cursor, sql, params, many)
        try:
            return result(cursor)
        except BaseException as exc:
            _handle(conn, exc, None, None, cursor)
    finally:
        cursor.close()


def _before(conn: sa.Connection, cursor, sql: str, params, many: bool):
    dispatch = conn.dispatch
    if dispatch.before_cursor_execute:  # tests stage races and failures here
        for listener in dispatch.before_cursor_execute:
            sql, params = listener(conn, cursor, sql, params, None, many)
    return sql, params


def _after(conn: sa.Connection, cursor, sql: str, params, many: bool) -> None:
    dispatch = conn.dispatch
    if dispatch.after_cursor_execute:
        for listener in dispatch.after_cursor_execute:
            listener(conn, cursor, sql, params, None, many)


def _handle(conn: sa.Connection, exc: BaseException, sql: str | None, params, cursor):
    """An error while the driver works goes through SQLAlchemy's own handler, as in ``Connection.execute``.

    Driver errors become SQLAlchemy's (with the parameters hidden when the engine hides them),
    ``handle_error`` listeners run, a lost connection is invalidated (the pool's older connections
    with it), and an interrupt invalidates the connection it cut short. The handler is private
    SQLAlchemy API (stable since 1.4); re-implementing it would drift from what it does. Errors
    raised by cursor listeners are not passed to it: they reach the caller as raised.
    """
    conn._handle_dbapi_exception(exc, sql, params, cursor, None)
    raise exc  # the handler raises; this is never reached
