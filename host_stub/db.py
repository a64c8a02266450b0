"""Engine, transactions and the change counter.

Writes go through :meth:`Database.write`: on SQLite it begins with ``BEGIN IMMEDIATE``, so
concurrent writers queue instead of failing half-way with "database is locked" (first on the
:class:`WriterQueue` file lock, which wakes the next writer at once, then on the busy timeout);
on PostgreSQL it is an ordinary transaction. Both stamp changed rows with one value of
the change counter (taken lazily, at first use, and held until commit).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import event

from host_stub.errors import StartupError
from host_stub.models import ChangeCounter

log = logging.getLogger(__name__)


# A pooled server connection returned this recently is taken as alive without a ping (as
# HikariCP's aliveBypassWindowMs, 500 ms by default): under load every checkout paid a round trip.
ALIVE_BYPASS_SECONDS = 0.5


def make_engine(url: str, sqlite_synchronous: str = "FULL", alive_bypass_seconds: float = ALIVE_BYPASS_SECONDS,
                **kwargs) -> sa.Engine:
    """An engine with this project's settings: SQLite in WAL with a busy timeout; a server database
    with a pool that checks a connection before use unless it was returned within
    ``alive_bypass_seconds`` (``pool_pre_ping=True`` given here checks every checkout instead)."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {}).update({"timeout": 30, "check_same_thread": False})
        if url in ("sqlite://", "sqlite:///:memory:"):
            kwargs.setdefault("poolclass", sa.pool.StaticPool)
        engine = sa.create_engine(url, **kwargs)
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    try:
        engine = sa.create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise StartupError(f"HELPDESK_DATABASE_URL needs the {exc.name!r} driver, which is not installed: for "
                           "PostgreSQL, pip install -e '.[postgres]' (psycopg)") from None
    if not kwargs.get("pool_pre_ping"):
        _ping_unless_recently_used(engine, alive_bypass_seconds)
    if engine.dialect.name == "postgresql":
        _configure_postgresql(engine)
    return engine


def _ping_unless_recently_used(engine: sa.Engine, bypass_seconds: float) -> None:
    """Check a pooled connection before use, as ``pool_pre_ping`` does, unless it was in use within
    ``bypass_seconds``: a connection the server dropped in that window (a restart takes longer)
    fails its request once, and SQLAlchemy then replaces every older connection of the pool, so
    that nothing half-done survives (the transaction never began) and the next request reconnects."""
    dialect = engine.dialect
    clock = time.monotonic

    @event.listens_for(engine, "connect")
    def _new(dbapi_conn, record):
        record.info["returned_at"] = clock()

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_conn, record):
        record.info["returned_at"] = clock()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, proxy):
        returned = record.info.get("returned_at")
        if returned is not None and clock() - returned < bypass_seconds:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_conn, None):
                raise sa.exc.DisconnectionError() from exc  # the pool connects again and retries
            raise


def _configure_postgresql(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _utc_session(dbapi_conn, record):
        # Sessions in UTC: psycopg then loads every timestamp with ``datetime.timezone.utc``, which
        # ``UTCDateTime`` passes through as is. Under a named zone (often the server's default,
        # e.g. Etc/UTC) each value carried a ZoneInfo and was converted again: a page of 50 chats
        # holds 150 of them. Stored instants do not change. A statement per new connection, not a
        # startup ``options``: that would replace the operator's PGOPTIONS or service settings.
        # Where a pooler resets the session, values come in another zone and are converted, as before.
        cursor = dbapi_conn.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_conn.commit()


def _configure_sqlite(engine: sa.Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred only).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        # SQLite's lower() folds ASCII only; searching "иван" must find "Иван" as on PostgreSQL.
        dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # Straight to the driver: SQLAlchemy's execution machinery cost more than the BEGIN itself,
        # and every request begins at least one transaction.
        conn.connection.dbapi_connection.execute(_BEGIN[mode])


_BEGIN = {"DEFERRED": "BEGIN DEFERRED", "IMMEDIATE": "BEGIN IMMEDIATE"}


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


@dataclass
class WriteTx:
    """One write transaction. Stamp ``change_seq`` on every chat/message row you write."""

    conn: sa.Connection
    _db: "Database"
    chat_ids: set[int] = field(default_factory=set)
    message_ids: set[int] = field(default_factory=set)
    _seq: int | None = None
    # ``Database.write_one_statement``: the statement takes the counter itself (``change_seq_cte``).
    one_statement: bool = False

    @property
    def change_seq(self) -> int:
        if self.one_statement:
            # Before the statement a counter taken on its own would commit at once; after it, its
            # value is committed and its lock released: a later write stamped with it would be
            # invisible to a poller that has read past it.
            raise RuntimeError("a one-statement write takes the counter inside its statement "
                               "(tx.change_seq_cte())")
        if self._seq is None:
            self._seq = self._db.next_change_seq(self.conn)
        return self._seq

    def change_seq_cte(self, only_if: sa.ColumnElement | None = None) -> sa.CTE:
        return self._db.change_seq_cte(only_if)

    def touched(self, chat_ids=(), message_ids=()) -> None:
        self.chat_ids.update(chat_ids)
        self.message_ids.update(message_ids)


class Database:
    """The host's database access, handed to plugins as ``helpdesk.db``."""

    def __init__(self, engine: sa.Engine, on_commit=None):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._on_commit = on_commit
        self._counter = c = ChangeCounter.__table__
        # Built once: every write takes the counter, and building the statement cost as much as running it.
        # Every write takes it, inside the write lock: compiled once (no parameters) and sent straight
        # to the driver, it costs a fifth of SQLAlchemy's execution of the same statement.
        take_counter = (sa.update(c).where(c.c.id == sa.literal_column("1"))
                        .values(value=c.c.value + sa.literal_column("1")).returning(c.c.value))
        self._take_counter_sql = take_counter.compile(dialect=engine.dialect).string
        self._read_counter = sa.select(c.c.value).where(c.c.id == 1)
        self._counter_cte = None
        self._writers = WriterQueue.for_engine(engine)
        self._reads_autocommit = self.dialect == "postgresql"

    @contextmanager
    def read(self):
        """A connection for reading. On PostgreSQL it reads in autocommit: under READ COMMITTED
        every statement takes its own snapshot inside a transaction too, so ``BEGIN`` and
        ``COMMIT`` bought nothing but two round trips per read (a page runs three statements in all).
        The pool puts the connection back in transactional mode when it is returned."""
        with self.engine.connect() as conn:
            if self._reads_autocommit:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            with conn.begin():
                yield conn

    @contextmanager
    def write(self):
        # The connection is checked out inside the writer's turn (a writer waiting for its turn holds
        # no pool connection, so queued writers never starve readers) and goes back to the pool after
        # the turn: its return (a reset) is no work for the lock every other writer waits for.
        with ExitStack() as after_the_turn:
            with self._writers.turn() if self._writers else nullcontext():
                conn = after_the_turn.enter_context(self.engine.connect())
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    tx = WriteTx(conn, self)
                    yield tx
        if self._on_commit and (tx.chat_ids or tx.message_ids):
            self._on_commit(tx.chat_ids, tx.message_ids)

    @contextmanager
    def write_one_statement(self):
        """PostgreSQL: a write made of one statement, which commits by itself (autocommit).

        A statement is atomic on its own, so ``BEGIN`` and ``COMMIT`` would cost two round trips and
        buy nothing; and a counter taken inside the statement holds its lock only while the statement
        runs and commits, not across round trips. Yields a ``WriteTx`` whose ``conn`` runs each
        statement as its own transaction: reads may come first; the one statement that writes takes
        the counter through ``tx.change_seq_cte()``. A write that needs more than one statement uses
        ``write()``.
        """
        if self.dialect != "postgresql":
            raise NotImplementedError("one-statement writes need PostgreSQL (data-modifying WITH)")
        tx = None
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                with conn.begin():  # no BEGIN on the wire in autocommit; driver statements ask for it
                    tx = WriteTx(conn, self, one_statement=True)
                    yield tx
        finally:
            # What the statement wrote is committed the moment it returns: announced even when
            # something after it (a look at what is parked, say) fails.
            if self._on_commit and tx is not None and (tx.chat_ids or tx.message_ids):
                self._on_commit(tx.chat_ids, tx.message_ids)

    def change_seq_cte(self, only_if: sa.ColumnElement | None = None) -> sa.CTE:
        """PostgreSQL: the counter taken inside one statement, as a CTE named ``change_seq``.

        Its columns: ``value``, the value taken (its row stays locked until the statement commits),
        and ``seen``, the counter in the statement's own snapshot. Under READ COMMITTED a statement
        reads a snapshot taken when it starts, before it waits for the counter; ``value == seen + 1``
        says no other write committed in between (every write takes the counter), so whatever else
        the statement read is as current as if it had taken the counter first. Otherwise its reads
        may miss that write; its writes stay safe (an update re-reads the newest row, a unique
        constraint sees every commit). No row at all: the counter does not exist yet (the first
        write ever, through ``write()``, creates it), or ``only_if`` was false. Every write the
        statement makes must depend on this CTE's row, so that the counter is taken before anything
        else is written.

        ``only_if``: a condition on what the statement reads (in its snapshot); when it is false the
        counter is neither taken nor locked, and a statement whose writes all depend on this CTE
        writes nothing: a lookup and a write in one round trip.
        """
        if only_if is not None:
            return self._build_change_seq_cte(only_if)
        if self._counter_cte is None:
            self._counter_cte = self._build_change_seq_cte(None)
        return self._counter_cte

    def _build_change_seq_cte(self, only_if: sa.ColumnElement | None) -> sa.CTE:
        c = self._counter
        seen = c.alias("counter_seen")
        where = c.c.id == sa.literal_column("1")
        return (sa.update(c).where(where if only_if is None else sa.and_(where, only_if))
                .values(value=c.c.value + sa.literal_column("1"))
                .returning(c.c.value, sa.select(seen.c.value).where(seen.c.id == sa.literal_column("1"))
                           .scalar_subquery().label("seen"))
                .cte("change_seq"))

    def next_change_seq(self, conn: sa.Connection) -> int:
        """Take the next counter value; its row stays locked until this transaction ends."""
        c = self._counter
        value = _driver_scalar(conn, self._take_counter_sql)
        if value is None:
            # First write ever: create the row. A concurrent creator makes this fail on the
            # primary key, and then the update above is safe to repeat.
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(c).values(id=1, value=1))
                return 1
            except sa.exc.IntegrityError:
                return self.next_change_seq(conn)
        return value

    def with_change_seq(self, stmt: sa.Select, label: str) -> sa.Select:
        """``stmt`` with the counter's current value as one more column, read in the same snapshot."""
        return stmt.add_columns(self._read_counter.scalar_subquery().label(label))

    def current_change_seq(self) -> int:
        with self.read() as conn:
            return self.current_change_seq_in(conn)

    def current_change_seq_in(self, conn: sa.Connection) -> int:
        return conn.execute(self._read_counter).scalar() or 0


def _driver_scalar(conn: sa.Connection, sql: str):
    """The first column of the first row of ``sql`` (no parameters), run on the driver's cursor.

    Cursor listeners still see the statement, and an error goes through SQLAlchemy's own handler
    (private API, stable since 1.4) exactly as in ``Connection.execute``: wrapped as SQLAlchemy's,
    ``handle_error`` listeners run, a lost connection invalidated.
    """
    params = ()
    cursor = None
    try:
        cursor = conn.connection.dbapi_connection.cursor()
        dispatch = conn.dispatch
        if dispatch.before_cursor_execute:
            for listener in dispatch.before_cursor_execute:
                sql, params = listener(conn, cursor, sql, params, None, False)
        cursor.execute(sql, params)
        if dispatch.after_cursor_execute:
            for listener in dispatch.after_cursor_execute:
                listener(conn, cursor, sql, params, None, False)
        row = cursor.fetchone()
        return row[0] if row is not None else None
    except BaseException as exc:
        conn._handle_dbapi_exception(exc, sql, params, cursor, None)
        raise  # the handler raises; this is never reached
    finally:
        if cursor is not None:
            cursor.close()


class WriterQueue:
    """Writers to one SQLite file take turns on an OS file lock before ``BEGIN IMMEDIATE``.

    SQLite itself lets one writer in at a time; the others poll with growing sleeps (1, 2, 5 … 100
    ms), so the write lock often sits free while a waiter sleeps, which costs throughput and makes
    the slowest requests very slow. A blocking ``flock`` wakes the next writer the moment the lock
    is released. SQLite's own lock still guards correctness (a process that does not use this
    queue, such as a migration, is simply not queued); the kernel drops a dead process's lock.
    A writer waits as long as the transaction ahead of it, and no transaction waits on the network.

    One queue per file and process (every ``Database`` on the file shares it), so a write nested in
    another in one thread is never queued behind itself. Each turn opens and closes its own
    descriptor: nothing is kept per thread, and a forked child closes the turns it inherited.
    """

    _by_path: dict[str, "WriterQueue"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._warned = False

    @classmethod
    def for_engine(cls, engine: sa.Engine) -> "WriterQueue | None":
        if engine.dialect.name != "sqlite":
            return None
        database = engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        path = os.path.abspath(database) + "-writers"
        with cls._registry_lock:
            queue = cls._by_path.get(path)
            if queue is None:
                _close_inherited_turns_after_fork()
                queue = cls._by_path[path] = cls(path)
            return queue

    @contextmanager
    def turn(self):
        depth = getattr(self._local, "depth", 0)
        fd = None
        if depth == 0:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:  # e.g. a read-only directory: SQLite's busy timeout still queues writers
                if not self._warned:
                    self._warned = True
                    log.warning("SQLite writers are not queued: %s", exc.strerror)
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _TURNS_HELD.add(fd)
            self._local.depth = depth + 1
            yield
        finally:
            self._local.depth = depth
            if fd is not None:
                _TURNS_HELD.discard(fd)
                os.close(fd)  # closing the descriptor ends the turn


# Descriptors of turns in progress in this process. A child forked meanwhile shares their locks;
# it closes its copies at once, so a parent that dies holding a turn does not keep the file locked.
_TURNS_HELD: set[int] = set()
_FORK_HOOK = []


def _close_inherited_turns_after_fork() -> None:
    if _FORK_HOOK:
        return
    _FORK_HOOK.append(True)

    def close_inherited():
        for fd in list(_TURNS_HELD):
            try:
                os.close(fd)
            except OSError:
                pass
        _TURNS_HELD.clear()
        for queue in WriterQueue._by_path.values():
            queue._local = threading.local()  # the forking thread's depth is not the child's

    os.register_at_fork(after_in_child=close_inherited)
