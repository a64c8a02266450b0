"""DriverStatement: the webhook's hot statements on the driver's cursor behave as Connection.execute does."""

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from wazzup_plugin.driver_sql import DriverStatement, one_of
from wazzup_plugin.types import UTCDateTime


@pytest.fixture
def scratch(engine):
    metadata = sa.MetaData()
    table = sa.Table("wazzup_driver_scratch", metadata,
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(50), nullable=False, unique=True),
                     sa.Column("at", UTCDateTime()),
                     sa.Column("hits", sa.Integer, nullable=False, server_default="0"))
    metadata.create_all(engine)
    yield table
    metadata.drop_all(engine)


def test_driver_insert_stores_what_sqlalchemy_stores(engine, scratch):
    at = datetime(2026, 11, 26, 15, 4, 5, 123456, tzinfo=timezone(timedelta(hours=3)))
    stmt = DriverStatement(sa.insert(scratch).returning(scratch.c.id), engine.dialect, ("name", "at"))
    with engine.begin() as conn:
        [(driver_id,)] = stmt.rows(conn, {"name": "driver", "at": at})
        sa_id = conn.execute(sa.insert(scratch).returning(scratch.c.id), {"name": "sqlalchemy", "at": at}).scalar_one()
        stored_at = sa.text("SELECT at FROM wazzup_driver_scratch WHERE id = :id")
        raw = {name: conn.execute(stored_at, {"id": i}).scalar_one()
               for name, i in (("driver", driver_id), ("sqlalchemy", sa_id))}
        read = dict(conn.execute(sa.select(scratch.c.name, scratch.c.at)).all())
    assert raw["driver"] == raw["sqlalchemy"]  # the same stored text (SQLite) or value (PostgreSQL)
    assert read["driver"] == read["sqlalchemy"] == at


def test_driver_update_many_with_constants_and_named_parameters(engine, scratch):
    with engine.begin() as conn:
        conn.execute(sa.insert(scratch), [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        bump = DriverStatement(sa.update(scratch).where(scratch.c.name == sa.bindparam("b_name"))
                               .values(hits=scratch.c.hits + 5), engine.dialect)
        bump.many(conn, [{"b_name": "a"}, {"b_name": "c"}, {"b_name": "c"}])
        assert dict(conn.execute(sa.select(scratch.c.name, scratch.c.hits)).all()) == {"a": 5, "b": 0, "c": 10}


def test_percent_signs_and_a_reused_parameter_reach_the_database_as_written(engine, scratch):
    """psycopg gets ``$1`` placeholders on a raw cursor: a ``%`` in the SQL is not a placeholder there,
    so it must not arrive doubled, and a parameter used twice is sent once."""
    pick = DriverStatement(
        sa.select(scratch.c.name, (scratch.c.hits % sa.literal_column("7")).label("rest"))
        .where(scratch.c.name.like(sa.literal_column("'a%'")), scratch.c.hits >= sa.bindparam("b_least"),
               scratch.c.hits <= sa.bindparam("b_least") + 100)
        .order_by(scratch.c.name), engine.dialect)
    with engine.begin() as conn:
        conn.execute(sa.insert(scratch), [{"name": "a%b", "hits": 9}, {"name": "ab", "hits": 50},
                                          {"name": "ba", "hits": 9}, {"name": "ac", "hits": 200}])
        assert [tuple(r) for r in pick.rows(conn, {"b_least": 5})] == [("a%b", 2), ("ab", 1)]
    if engine.dialect.driver == "psycopg":
        assert "$1" in pick.sql and "%(" not in pick.sql and "'a%'" in pick.sql


def test_a_statement_over_psycopgs_cache_limits_runs_with_its_many_parameters(engine, scratch):
    """Longer than 4 KiB, more than 50 parameters: as the usual delivery's one statement."""
    names = [f"name-{i:03d}" for i in range(120)]
    binds = [sa.bindparam(f"b_{i}", type_=sa.String) for i in range(120)]
    many = DriverStatement(sa.select(scratch.c.name).where(sa.or_(*[scratch.c.name == b for b in binds]))
                           .order_by(scratch.c.name), engine.dialect)
    assert len(many.sql) > 4096 or engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        conn.execute(sa.insert(scratch), [{"name": n} for n in names[::2]])
        for _ in range(7):  # past psycopg's prepare threshold: the prepared statement gives the same rows
            rows = many.rows(conn, {f"b_{i}": n for i, n in enumerate(names)})
            assert [r.name for r in rows] == names[::2]


def test_a_missing_parameter_is_an_error_not_a_null(engine, scratch):
    stmt = DriverStatement(sa.insert(scratch).returning(scratch.c.id), engine.dialect, ("name", "at"))
    with engine.begin() as conn, pytest.raises(KeyError, match="at"):
        stmt.rows(conn, {"name": "no stamp"})


def test_driver_errors_become_sqlalchemy_errors_and_the_transaction_rolls_back(engine, scratch):
    stmt = DriverStatement(sa.insert(scratch).returning(scratch.c.id), engine.dialect, ("name",))
    with engine.begin() as conn:
        stmt.rows(conn, {"name": "taken"})
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        stmt.rows(conn, {"name": "first of two"})
        stmt.rows(conn, {"name": "taken"})
    assert "INSERT INTO wazzup_driver_scratch" in caught.value.statement
    with engine.connect() as conn:
        assert conn.execute(sa.select(scratch.c.name)).scalars().all() == ["taken"]


def test_cursor_listeners_see_driver_statements(engine, scratch):
    seen = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement.split()[0], executemany))

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        with engine.begin() as conn:
            insert = DriverStatement(sa.insert(scratch).returning(scratch.c.id), engine.dialect, ("name",))
            insert.rows(conn, {"name": "x"})
            DriverStatement(sa.select(scratch.c.id), engine.dialect).rows(conn)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert seen == [("INSERT", False), ("SELECT", False)]


def test_driver_rows_are_processed_as_sqlalchemy_processes_them(engine, scratch):
    at = datetime(2026, 11, 26, 15, 4, 5, 123456, tzinfo=timezone(timedelta(hours=3)))
    flag = sa.literal(True, sa.Boolean).label("flag")
    with engine.begin() as conn:
        conn.execute(sa.insert(scratch), [{"name": "a", "at": at}, {"name": "b", "at": None}])
        query = sa.select(scratch.c.name, scratch.c.at, scratch.c.hits, flag).order_by(scratch.c.name)
        expected = [tuple(r) for r in conn.execute(query)]
        rows = DriverStatement(query, engine.dialect).rows(conn)
    assert rows == expected and rows[0].at.tzinfo is timezone.utc and rows[0].flag is True
    assert (rows[0].name, rows[1].at) == ("a", None)


def test_statements_with_python_side_defaults_are_refused(engine):
    with_default = sa.Table("wazzup_driver_defaults", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                            sa.Column("n", sa.Integer, default=7))
    with pytest.raises(TypeError, match="Python-side defaults"):
        DriverStatement(sa.insert(with_default), engine.dialect, ("id",))


def test_driver_statements_run_inside_a_transaction_only(engine, scratch):
    with engine.connect() as conn, pytest.raises(RuntimeError, match="transaction"):
        DriverStatement(sa.select(scratch.c.id), engine.dialect).rows(conn)


def test_a_lost_connection_is_invalidated_and_the_pool_recovers(engine, scratch, backend):
    if backend != "postgres":
        pytest.skip("a SQLite file has no server connection to lose")
    select = DriverStatement(sa.select(scratch.c.id), engine.dialect)
    with pytest.raises(sa.exc.OperationalError) as caught, engine.begin() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with engine.connect() as killer:
            killer.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        select.rows(conn)
    assert caught.value.connection_invalidated
    with engine.begin() as conn:  # the dead connection left the pool: the next one works
        assert select.rows(conn) == []


def _sent_by_sqlalchemy(engine, conn, stmt, values):
    sent = []
    listener = lambda c, cursor, statement, parameters, *rest: sent.append(parameters)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        conn.execute(stmt, values)
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    return sent[0]


def test_a_bind_used_twice_is_converted_as_sqlalchemy_converts_it(engine, scratch):
    at = datetime(2030, 1, 1, 5, 0, tzinfo=timezone(timedelta(hours=3)))
    later = sa.bindparam("y")  # untyped: the comparison types one use, the other stays untyped
    stmt = (sa.update(scratch).where(scratch.c.name == sa.bindparam("b_name"))
            .values(at=sa.case((scratch.c.at < later, later), else_=scratch.c.at)))
    values = {"b_name": "a", "y": at}
    with engine.begin() as conn:
        conn.execute(sa.insert(scratch), {"name": "a", "at": datetime(2029, 1, 1, tzinfo=timezone.utc)})
        expected = _sent_by_sqlalchemy(engine, conn, stmt, values)
        driver = DriverStatement(stmt, engine.dialect)
        sent = driver.parameters(values)
        if isinstance(expected, dict):  # psycopg: SQLAlchemy sends names, we send $1, $2… in order
            sent = dict(zip(driver._order, sent))
        assert sent == (list(expected) if isinstance(expected, (list, tuple)) else expected)


def test_driver_errors_hide_parameters_when_the_engine_hides_them(database_url, scratch):
    from host_stub.db import make_engine

    hiding = make_engine(database_url, hide_parameters=True)
    insert = DriverStatement(sa.insert(scratch), hiding.dialect, ("name",))
    try:
        with pytest.raises(sa.exc.IntegrityError) as caught, hiding.begin() as conn:
            insert.many(conn, [{"name": "secret-value-1"}, {"name": "secret-value-1"}])
    finally:
        hiding.dispose()
    # SQLAlchemy's own rendering; PostgreSQL's detail ("Key (name)=(…) already exists") is the server's text.
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(caught.value)
    assert "'secret-value-1'" not in str(caught.value)


def test_handle_error_listeners_see_driver_errors(engine, scratch):
    seen = []
    listener = lambda context: seen.append(type(context.original_exception).__name__)  # noqa: E731
    sa.event.listen(engine, "handle_error", listener)
    insert = DriverStatement(sa.insert(scratch), engine.dialect, ("name",))
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            insert.many(conn, [{"name": "twice"}, {"name": "twice"}])
    finally:
        sa.event.remove(engine, "handle_error", listener)
    assert len(seen) == 1 and ("Integrity" in seen[0] or "UniqueViolation" in seen[0])


def test_statements_sqlalchemy_renders_per_call_are_refused(engine, scratch):
    with pytest.raises(TypeError, match="per-call rendering"):
        DriverStatement(sa.select(scratch.c.id).where(scratch.c.name.in_(sa.bindparam("names", expanding=True))),
                        engine.dialect)


def test_one_of_matches_exactly_the_listed_values_with_one_parameter(engine, scratch):
    """A list lookup compiled once: values with quotes, commas, brackets and Cyrillic match as they
    are, a prefix or a differently cased value does not, and an empty list matches nothing."""
    pick = DriverStatement(sa.select(scratch.c.name).where(one_of(scratch.c.name, "b_names", engine.dialect))
                           .order_by(scratch.c.name), engine.dialect)
    names = ['it\'s', 'a,b', '["x"]', 'Клиент', 'plain', '%_']
    with engine.begin() as conn:
        conn.execute(sa.insert(scratch), [{"name": n} for n in names + ["plai", "PLAIN", "other"]])
        assert [r.name for r in pick.rows(conn, {"b_names": names + ["absent"]})] == sorted(names)
        assert pick.rows(conn, {"b_names": ["pla%"]}) == []
        assert pick.rows(conn, {"b_names": []}) == []
    assert pick.sql.count("?") + pick.sql.count("$") <= 1  # one placeholder, however long the list
