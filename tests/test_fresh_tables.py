"""The suite's own promise: every test starts on empty tables, made by ``create_all`` or as good as.

The ``engine`` fixture no longer makes the schema for every test (see ``fresh_schema`` in conftest):
SQLite copies an empty file, PostgreSQL empties the tables it made earlier. These tests hold that to
what making the schema anew gives.
"""

from pathlib import Path

import pytest
import sqlalchemy as sa

from host_stub.db import make_engine
from host_stub.models import Chat, Message


def _add_chat(engine) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.insert(Chat.__table__).values(
            type="internal", title="t", unread_count=0, last_message_preview="", last_activity_at=sa.func.now(),
            created_at=sa.func.now(), change_seq=1)).inserted_primary_key[0]


def _again(engine, fresh_tables, rebuild=False):
    """The next test's start on the same database (SQLite: a new file, as each test has its own)."""
    if engine.dialect.name == "sqlite":
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{engine.url.database}{suffix}").unlink(missing_ok=True)
    fresh_tables(engine, rebuild)


def test_the_next_test_finds_no_rows_and_ids_counted_from_one(database_url, fresh_tables):
    engine = make_engine(database_url)
    try:
        fresh_tables(engine)
        assert [_add_chat(engine) for _ in range(3)] == [1, 2, 3]
        _again(engine, fresh_tables)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(Chat.__table__)).scalar_one() == 0
        assert _add_chat(engine) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("change", ["ALTER TABLE chats ADD COLUMN extra INTEGER",
                                    "CREATE TABLE leftover (id INTEGER PRIMARY KEY)",
                                    "DROP INDEX ix_chats_activity"])
def test_a_schema_a_test_changed_is_made_anew_for_the_next(database_url, fresh_tables, change):
    engine = make_engine(database_url)
    try:
        before = _after_a_test_that_ran(engine, fresh_tables, change)
        with engine.connect() as conn:
            assert _catalog(conn) == before
        assert _add_chat(engine) == 1
    finally:
        engine.dispose()


def _after_a_test_that_ran(engine, fresh_tables, change: str) -> dict:
    """The next test's start on this database after a test ran ``change``; the catalog before it."""
    fresh_tables(engine)
    with engine.begin() as conn:
        before = _catalog(conn)
        conn.exec_driver_sql(change)
    _again(engine, fresh_tables)
    return before


def _catalog(conn) -> dict:
    inspector = sa.inspect(conn)
    return {table: (sorted(c["name"] for c in inspector.get_columns(table)),
                    sorted(i["name"] for i in inspector.get_indexes(table)))
            for table in inspector.get_table_names()}


@pytest.mark.parametrize("change", ["ALTER TABLE messages DISABLE TRIGGER ALL",
                                    "ALTER SEQUENCE chats_id_seq INCREMENT BY 10",
                                    "CREATE RULE no_chats AS ON INSERT TO chats DO INSTEAD NOTHING",
                                    "ALTER TABLE chats ALTER COLUMN title TYPE varchar(300) COLLATE \"C\""])
def test_postgresql_changes_a_delete_would_not_undo_make_the_schema_anew(pg_database_url, fresh_tables, change):
    engine = make_engine(pg_database_url)
    try:
        _after_a_test_that_ran(engine, fresh_tables, change)
        assert [_add_chat(engine), _add_chat(engine)] == [1, 2]  # the sequence and the rule are gone
        with engine.connect() as conn:  # the foreign keys hold again
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.insert(Message.__table__).values(
                    chat_id=999, direction="in", status="inbound", type="text", text="orphan",
                    created_at=sa.func.now(), change_seq=1))
            conn.rollback()
            collation = conn.exec_driver_sql("SELECT collation_name FROM information_schema.columns "
                                             "WHERE table_name = 'chats' AND column_name = 'title'").scalar_one()
        assert collation is None
    finally:
        engine.dispose()
