"""Data: migrations match the models, the change counter, SQLite settings, disabled plugins."""

from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from host_stub.db import Database, make_engine
from host_stub.errors import StartupError
from host_stub.migrate import alembic_config, schema_differences, upgrade
from host_stub.models import MESSAGE_STATUSES
from host_stub.schema import assemble_metadata
from wazzup_plugin.inbound.parse import quarantine_digest



def _heads(pm) -> list[str]:
    """The newest revision of every branch (the host's and each enabled plugin's)."""
    return sorted(ScriptDirectory.from_config(alembic_config(pm)).get_heads())


@pytest.fixture
def empty_engine(database_url):
    """A database with no tables at all (the ``engine`` fixture creates them; this one does not)."""
    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    yield engine
    engine.dispose()


def _differences(engine, metadata, skip_prefix=None):
    def include_name(name, type_, parent_names):
        return not (skip_prefix and type_ == "table" and name.startswith(skip_prefix))

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        return compare_metadata(context, metadata)


def test_migrating_an_empty_database_yields_exactly_the_models(empty_engine, pm):
    heads = upgrade(empty_engine, pm)
    assert heads == _heads(pm)
    metadata, _ = assemble_metadata(pm)
    assert _differences(empty_engine, metadata) == []


def test_upgrade_twice_is_harmless(empty_engine, pm):
    first = upgrade(empty_engine, pm)
    assert upgrade(empty_engine, pm) == first


def test_db_upgrade_keeps_working_when_a_plugin_is_disabled_and_enabled_again(empty_engine, pm, pm_with):
    upgrade(empty_engine, pm)
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO wazzup_channels (channel_id, state, updated_at) "
                             "VALUES ('ch-1', 'active', CURRENT_TIMESTAMP)"))
    without = pm_with(wazzup=False)
    assert upgrade(empty_engine, without) == _heads(pm)  # its revision is kept aside, not lost
    host_only, _ = assemble_metadata(without)
    assert _differences(empty_engine, host_only, skip_prefix="wazzup_") == []
    assert upgrade(empty_engine, pm) == _heads(pm)
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT channel_id FROM wazzup_channels")).scalars().all() == ["ch-1"]


def _schema(engine) -> dict:
    """Every table's columns, indexes (with a partial index's condition), constraints: to compare two databases."""
    def where(index):
        options = index.get("dialect_options", {})
        clause = options.get("postgresql_where", options.get("sqlite_where"))
        return None if clause is None else " ".join(str(clause).replace("(", "").replace(")", "").split())

    inspector = sa.inspect(engine)
    return {table: {
        "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)),
        "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]), where(i))
                          for i in inspector.get_indexes(table)),
        "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
        "foreign_keys": sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                                (f.get("options") or {}).get("ondelete")) for f in inspector.get_foreign_keys(table)),
        "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
    } for table in sorted(inspector.get_table_names()) if table != "alembic_version"}


def _wipe(engine):
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    else:
        reflected = sa.MetaData()
        reflected.reflect(engine)
        reflected.drop_all(engine)


def _fresh_schema(engine, pm) -> dict:
    _wipe(engine)
    upgrade(engine, pm)
    return _schema(engine)


def _old_chat(conn, metadata, now, messages: list[tuple[str, str]]) -> tuple[int, list[int]]:
    """A chat and its outgoing messages ((status, text) each) in a database an older revision made."""
    chats, table = metadata.tables["chats"], metadata.tables["messages"]
    chat_id = conn.execute(sa.insert(chats).values(type="wazzup", title="Ann", phone="79160000000",
                                                   last_activity_at=now, created_at=now, change_seq=1)
                           ).inserted_primary_key[0]
    return chat_id, [conn.execute(sa.insert(table).values(chat_id=chat_id, direction="out", status=status, text=text,
                                                          created_at=now, change_seq=2)).inserted_primary_key[0]
                     for status, text in messages]


def test_a_database_made_by_the_first_migrations_upgrades_to_a_fresh_schema_and_keeps_its_rows(empty_engine, pm):
    """The first revisions as they shipped (0001_host, 0001_wazzup before they were edited in
    place): the later changes come as revisions of their own, and the rows come along."""
    cfg = alembic_config(pm)
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001_host")
        command.upgrade(cfg, "0001_wazzup")
    inspector = sa.inspect(empty_engine)
    assert "resent_as" in {c["name"] for c in inspector.get_columns("wazzup_outbox")}  # the old shape
    assert "ix_chats_phone" in {i["name"] for i in inspector.get_indexes("chats")}
    metadata, _ = assemble_metadata(pm)
    now = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    with empty_engine.begin() as conn:
        chat_id, (failed, resend, imported, resend_of_imported) = _old_chat(
            conn, metadata, now, [("failed", "one"), ("queued", "one"), ("failed", "old"), ("queued", "old")])
        conn.execute(sa.text(
            "INSERT INTO wazzup_messages (message_id, chat_id, crm_message_id, is_echo) VALUES (:m, :c, :crm, :no)"
        ).bindparams(sa.bindparam("no", False, type_=sa.Boolean())),
            [{"m": failed, "c": chat_id, "crm": "crm-1"}, {"m": resend, "c": chat_id, "crm": "crm-2"}])
        conn.execute(sa.text(
            "INSERT INTO wazzup_outbox (message_id, chat_id, state, crm_message_id, attempts, maybe_sent,"
            " next_attempt_at, created_at, updated_at, resent_as)"
            " VALUES (:m, :c, :state, :crm, 1, :no, :now, :now, :now, :resent_as)"
        ).bindparams(sa.bindparam("no", False, type_=sa.Boolean()), sa.bindparam("now", now, type_=sa.DateTime())),
            [{"m": failed, "c": chat_id, "state": "done", "crm": "crm-1", "resent_as": resend},
             {"m": resend, "c": chat_id, "state": "pending", "crm": "crm-2", "resent_as": None},
             # the old resend's placeholder for a message with no Wazzup row
             {"m": imported, "c": chat_id, "state": "done", "crm": "-", "resent_as": resend_of_imported}])

    assert upgrade(empty_engine, pm) == _heads(pm)
    assert _differences(empty_engine, metadata) == []
    upgraded = _schema(empty_engine)
    with empty_engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT message_id, crm_message_id, resent_as FROM wazzup_messages"
                                    " ORDER BY message_id")).all()
        outbox = conn.execute(sa.text("SELECT message_id, state FROM wazzup_outbox ORDER BY message_id")).all()
        titles = conn.execute(sa.select(metadata.tables["chats"].c.title)).scalars().all()
    assert kept == [(failed, "crm-1", resend), (resend, "crm-2", None), (imported, None, resend_of_imported)]
    assert outbox == [(failed, "done"), (resend, "pending"), (imported, "done")]
    assert titles == ["Ann"]
    assert upgraded == _fresh_schema(empty_engine, pm)


@pytest.mark.parametrize("edited_by", ["a59d048", "df533ec", "51c7580"])
def test_a_database_made_while_the_first_migrations_were_edited_in_place_upgrades_too(empty_engine, pm, edited_by):
    """Stamped 0001 but made by an edited 0001 (already part of the later shape): each new
    revision looks before it changes, and the database ends up as a fresh one."""
    edited = alembic_config(pm)
    edited.set_main_option("version_locations", str(Path(__file__).parent / "edited_migrations" / edited_by))
    with empty_engine.begin() as conn:
        edited.attributes["connection"] = conn
        command.upgrade(edited, "0001_host")
        command.upgrade(edited, "0001_wazzup")
    assert upgrade(empty_engine, pm) == _heads(pm)
    upgraded = _schema(empty_engine)
    assert upgraded == _fresh_schema(empty_engine, pm)


def test_db_upgrade_refuses_a_database_at_head_that_lacks_a_column(empty_engine, pm):
    upgrade(empty_engine, pm)
    with empty_engine.begin() as conn:
        if empty_engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE wazzup_messages DROP COLUMN resent_as")
        else:
            conn.exec_driver_sql("DROP TABLE wazzup_quarantine")
            conn.exec_driver_sql("ALTER TABLE wazzup_outbox DROP COLUMN last_error")
    with pytest.raises(StartupError) as refused:
        upgrade(empty_engine, pm)
    message = str(refused.value)
    assert "does not match" in message and "HELPDESK_DATABASE_URL" in message
    if empty_engine.dialect.name == "postgresql":
        assert "column wazzup_messages.resent_as is missing" in message
    else:
        assert "table wazzup_quarantine is missing" in message
        assert "column wazzup_outbox.last_error is missing" in message


def test_the_schema_check_finds_nothing_on_a_fresh_database_and_ignores_what_an_operator_added(empty_engine, pm):
    upgrade(empty_engine, pm)
    assert schema_differences(empty_engine, pm) == []
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE reports (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE INDEX ix_messages_text_local ON messages (author_name)")
        conn.exec_driver_sql("ALTER TABLE chats ADD COLUMN crm_note VARCHAR(20)")
    assert schema_differences(empty_engine, pm) == []


def test_the_schema_check_names_a_partial_index_whose_condition_was_changed_or_dropped(empty_engine, pm):
    upgrade(empty_engine, pm)
    with empty_engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_wazzup_outbox_due")
        conn.exec_driver_sql("CREATE INDEX ix_wazzup_outbox_due ON wazzup_outbox (lane, next_attempt_at, message_id) "
                             "WHERE state = 'done'")
        conn.exec_driver_sql("DROP INDEX uq_wazzup_messages_crm_message_id")
        conn.exec_driver_sql("CREATE UNIQUE INDEX uq_wazzup_messages_crm_message_id ON wazzup_messages (crm_message_id)")
    problems = schema_differences(empty_engine, pm)
    assert len(problems) == 2, problems
    outbox, crm = sorted(problems)
    assert outbox.startswith("index ix_wazzup_outbox_due on wazzup_outbox has the condition") and "'done'" in outbox
    assert "state = 'pending'" in outbox
    assert crm.startswith("index uq_wazzup_messages_crm_message_id on wazzup_messages has the condition 'none'")
    with pytest.raises(StartupError, match="ix_wazzup_outbox_due"):
        upgrade(empty_engine, pm)


def test_change_counter_grows_with_every_insert_and_update(helpdesk, make_chat, make_message):
    chats, messages = helpdesk.tables.chats, helpdesk.tables.messages
    seen = []

    def seq_of(table, row_id):
        with helpdesk.db.read() as conn:
            return conn.execute(sa.select(table.c.change_seq).where(table.c.id == row_id)).scalar_one()

    chat_id = make_chat()
    seen.append(seq_of(chats, chat_id))
    message_id = make_message(chat_id)
    seen.append(seq_of(messages, message_id))
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(messages).where(messages.c.id == message_id)
                        .values(status="read", change_seq=tx.change_seq))
    seen.append(seq_of(messages, message_id))
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(chats).where(chats.c.id == chat_id).values(title="renamed",
                                                                             change_seq=tx.change_seq))
    seen.append(seq_of(chats, chat_id))
    assert seen == sorted(seen) and len(set(seen)) == 4
    assert helpdesk.db.current_change_seq() == seen[-1]


def test_one_transaction_takes_one_counter_value_and_a_read_only_one_takes_none(helpdesk):
    before = helpdesk.db.current_change_seq()
    with helpdesk.db.write() as tx:
        first, again = tx.change_seq, tx.change_seq
    assert first == again == before + 1
    with helpdesk.db.write():
        pass
    assert helpdesk.db.current_change_seq() == first


def test_a_failed_transaction_leaves_nothing_behind(helpdesk, make_chat):
    chats = helpdesk.tables.chats
    chat_id = make_chat(title="before")
    with pytest.raises(RuntimeError):
        with helpdesk.db.write() as tx:
            tx.conn.execute(sa.update(chats).where(chats.c.id == chat_id).values(title="half",
                                                                                 change_seq=tx.change_seq))
            raise RuntimeError("boom")
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(chats.c.title).where(chats.c.id == chat_id)).scalar_one() == "before"


def test_postgresql_reads_open_no_transaction_and_writes_still_do(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite reads are read transactions (one snapshot for every statement)")
    import psycopg

    engine = make_engine(database_url, pool_size=1, max_overflow=0)  # one connection: reads and writes share it
    db = Database(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS read_mode_probe")
        conn.exec_driver_sql("CREATE TABLE read_mode_probe (x INTEGER)")
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM read_mode_probe").scalar() == 0
            assert conn.connection.dbapi_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with pytest.raises(RuntimeError):
            with db.write() as tx:  # the same pooled connection, transactional again: rolled back whole
                tx.conn.exec_driver_sql("INSERT INTO read_mode_probe VALUES (1)")
                raise RuntimeError("boom")
        with db.read() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM read_mode_probe").scalar() == 0
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE read_mode_probe")
        engine.dispose()


def test_a_one_statement_write_takes_the_counter_inside_its_statement_and_commits_by_itself(helpdesk, make_chat,
                                                                                           database_url):
    if helpdesk.db.dialect != "postgresql":  # SQLite has no data-modifying WITH
        with pytest.raises(NotImplementedError):
            with helpdesk.db.write_one_statement():
                pass
        return
    import psycopg

    chats = helpdesk.tables.chats
    chat_id = make_chat(title="before")
    # One pooled connection: the write after the statement gets the very one that ran in autocommit.
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    elsewhere = sa.create_engine(database_url)
    committed = []
    db = Database(engine, on_commit=lambda chat_ids, message_ids: committed.append(chat_ids))
    before = db.current_change_seq()
    try:
        with db.write_one_statement() as tx:
            with pytest.raises(RuntimeError, match="inside its statement"):
                tx.change_seq  # a counter taken as a statement of its own would commit at once
            seq = tx.change_seq_cte()
            moved = (sa.update(chats).where(chats.c.id == chat_id)
                     .values(title="after", change_seq=sa.select(seq.c.value).scalar_subquery())
                     .returning(chats.c.id).cte("moved"))
            value, seen, _ = tx.conn.execute(
                sa.select(seq.c.value, seq.c.seen, sa.select(moved.c.id).scalar_subquery()).select_from(seq)).one()
            tx.touched(chat_ids=[chat_id])
            assert value == seen + 1 == before + 1
            with pytest.raises(RuntimeError, match="inside its statement"):
                tx.change_seq  # still: the value taken is committed, a later write would not hold it
            # Committed by the statement itself: no transaction is open, and another session sees it.
            autocommitted = tx.conn.connection.dbapi_connection
            assert autocommitted.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with elsewhere.connect() as other:
                assert other.execute(sa.select(chats.c.title, chats.c.change_seq)
                                     .where(chats.c.id == chat_id)).one() == ("after", value)
        assert committed == [{chat_id}]
        with db.write() as tx:  # the same pooled connection, transactional again
            assert tx.conn.connection.dbapi_connection is autocommitted
            assert tx.change_seq == before + 2
            assert autocommitted.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    finally:
        engine.dispose()
        elsewhere.dispose()


def test_changes_committed_by_a_one_statement_write_are_announced_even_if_a_later_read_fails(helpdesk,
                                                                                               database_url):
    if helpdesk.db.dialect != "postgresql":
        pytest.skip("one-statement writes are PostgreSQL's")
    committed = []
    engine = make_engine(database_url)
    db = Database(engine, on_commit=lambda chat_ids, message_ids: committed.append(message_ids))
    with db.write() as tx:
        tx.change_seq  # the counter exists
    try:
        with pytest.raises(sa.exc.ProgrammingError):
            with db.write_one_statement() as tx:
                seq = tx.change_seq_cte()
                tx.conn.execute(sa.select(seq.c.value)).one()
                tx.touched(message_ids=[42])  # what the committed statement wrote
                tx.conn.exec_driver_sql("SELECT * FROM no_such_table")  # a later look fails
    finally:
        engine.dispose()
    assert committed == [{42}]


def test_the_counter_taken_inside_a_statement_tells_a_snapshot_older_than_the_lock(helpdesk, database_url):
    """``seen`` is the counter in the statement's snapshot; a write that commits while the statement
    waits for the counter makes ``value`` run ahead of ``seen + 1``."""
    if not database_url.startswith("postgresql"):
        pytest.skip("one-statement writes are PostgreSQL's")
    import threading
    import time

    db = helpdesk.db
    with db.write() as tx:
        tx.change_seq  # the counter exists
    holder = db.engine.connect()
    holder.begin()
    holder.exec_driver_sql("UPDATE change_counter SET value = value + 1")  # another write holds the counter
    holder_pid = holder.exec_driver_sql("SELECT pg_backend_pid()").scalar()

    def release_once_the_statement_waits():
        # Commit only once the statement is queued behind the holder's lock (a fixed delay let a slow
        # machine start the statement after the commit: then value == seen + 1 and the test failed).
        with db.engine.connect() as watcher:
            for _ in range(200):  # at most 10 s
                if watcher.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                                           (holder_pid,)).scalar():
                    break
                time.sleep(0.05)
        holder.commit()
        holder.close()

    release = threading.Thread(target=release_once_the_statement_waits)
    release.start()
    try:
        with db.write_one_statement() as tx:
            seq = tx.change_seq_cte()
            value, seen = tx.conn.execute(sa.select(seq.c.value, seq.c.seen)).one()
    finally:
        release.join()
    assert value == seen + 2


def test_a_counter_taken_only_if_a_condition_holds_is_neither_taken_nor_locked_when_it_does_not(
        helpdesk, make_chat, database_url):
    """``change_seq_cte(only_if=…)``: a lookup and a write in one statement, which writes nothing
    (and leaves the counter free) when the lookup says so."""
    if not database_url.startswith("postgresql"):
        pytest.skip("one-statement writes are PostgreSQL's")
    db, chats = helpdesk.db, helpdesk.tables.chats
    chat_id = make_chat(title="before")
    before = db.current_change_seq()

    def rename_if_titled(title: str):
        with db.write_one_statement() as tx:
            seq = tx.change_seq_cte(only_if=sa.exists().where(chats.c.id == chat_id, chats.c.title == title))
            moved = (sa.update(chats).where(chats.c.id == chat_id, sa.exists(sa.select(seq.c.value)))
                     .values(title="after", change_seq=sa.select(seq.c.value).scalar_subquery())
                     .returning(chats.c.id).cte("moved"))
            return tx.conn.execute(sa.select(sa.select(seq.c.value).scalar_subquery(),
                                             sa.select(moved.c.id).scalar_subquery())).one()

    import threading

    holder = db.engine.connect()
    holder.begin()
    holder.exec_driver_sql("UPDATE change_counter SET value = value + 1")  # another write holds the counter
    answers = []
    # Not titled "nothing": the statement neither waits for the counter nor writes (a wait would
    # last until the holder lets go, below: the thread would still be running).
    looking = threading.Thread(target=lambda: answers.append(rename_if_titled("nothing")))
    looking.start()
    try:
        looking.join(5)
        assert not looking.is_alive()
    finally:
        holder.rollback()
        holder.close()
        looking.join(5)
    assert answers == [(None, None)]
    assert db.current_change_seq() == before
    assert rename_if_titled("before") == (before + 1, chat_id)
    with db.read() as conn:
        assert conn.execute(sa.select(chats.c.title, chats.c.change_seq).where(chats.c.id == chat_id)).one() == (
            "after", before + 1)


def _pings(engine, monkeypatch) -> list:
    pings = []
    real = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi_conn: pings.append(1) or real(dbapi_conn))
    return pings


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def _terminate(database_url, pid) -> None:
    killer = sa.create_engine(database_url)
    with killer.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    killer.dispose()


def test_a_pooled_connection_is_pinged_only_when_idle_past_the_window(database_url, monkeypatch):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server connection to check")
    recent = make_engine(database_url, alive_bypass_seconds=3600, pool_size=1, max_overflow=0)
    pings = _pings(recent, monkeypatch)
    first = _backend_pid(recent)
    assert [_backend_pid(recent) for _ in range(3)] == [first] * 3 and pings == []  # in use moments ago
    recent.dispose()
    idle = make_engine(database_url, alive_bypass_seconds=0, pool_size=1, max_overflow=0)
    pings = _pings(idle, monkeypatch)
    pid = _backend_pid(idle)
    _terminate(database_url, pid)  # the server drops it while it sits in the pool
    assert _backend_pid(idle) != pid and pings  # pinged, found dead, replaced: the request never saw it
    idle.dispose()


def test_a_connection_dropped_within_the_window_fails_one_request_and_the_pool_recovers(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server connection to drop")
    engine = make_engine(database_url, alive_bypass_seconds=3600, pool_size=2, max_overflow=0)
    db = Database(engine)
    pid = _backend_pid(engine)
    _terminate(database_url, pid)
    with pytest.raises(sa.exc.DBAPIError) as failed:
        with db.write() as tx:
            tx.conn.exec_driver_sql("SELECT 1")
    assert failed.value.connection_invalidated
    assert _backend_pid(engine) != pid  # the next request reconnects
    engine.dispose()


def test_postgresql_sessions_run_in_utc_and_load_utc_datetimes(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL session setting")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"
        loaded = conn.exec_driver_sql("SELECT TIMESTAMPTZ '2026-11-27 05:30:00+03'").scalar()
        assert loaded.tzinfo is timezone.utc and loaded == datetime(2026, 11, 27, 2, 30, tzinfo=timezone.utc)
    engine.dispose()
    separator = "&" if "?" in database_url else "?"
    own = make_engine(f"{database_url}{separator}options=-c%20statement_timeout%3D1234")
    with own.connect() as conn:  # an operator's own session options are kept beside it
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1234ms"
        assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"
    own.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.sqlite3'}", "NORMAL")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    engine.dispose()


def test_sqlite_writes_begin_immediately(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'lock.sqlite3'}")
    db = Database(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with db.write() as tx:
        # BEGIN IMMEDIATE took the write lock up front: another writer cannot start now.
        other = make_engine(f"sqlite:///{tmp_path / 'lock.sqlite3'}", connect_args={"timeout": 0})
        with other.connect() as conn2:
            conn2.exec_driver_sql("PRAGMA busy_timeout=0")
            with pytest.raises(sa.exc.OperationalError, match="locked"):
                conn2.exec_driver_sql("BEGIN IMMEDIATE")
        other.dispose()
        tx.conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    engine.dispose()


def test_sqlite_search_folds_case_beyond_ascii(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'lower.sqlite3'}")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.lower("ИВАН Öz"))).scalar() == "иван öz"
    engine.dispose()


def test_postgresql_is_chosen_by_helpdesk_database_url(monkeypatch):
    from host_stub.config import Config

    url = "postgresql+psycopg://helpdesk@db.internal:5432/helpdesk"
    config = Config.from_env({"HELPDESK_DATABASE_URL": url}, dotenv_path=None)
    assert config.database_url == url
    assert make_engine(config.database_url).dialect.name == "postgresql"
    assert Config.from_env({}, dotenv_path=None).database_url.startswith("sqlite:///")


def test_message_statuses_are_the_shared_vocabulary():
    assert MESSAGE_STATUSES == ("inbound", "queued", "accepted", "sent", "delivered", "read", "failed", "unknown")


def test_messages_keep_every_generic_fact(helpdesk):
    columns = set(helpdesk.tables.messages.c.keys())
    assert {"direction", "status", "type", "text", "content_uri", "content_name", "content_type", "author_agent_id",
            "author_name", "messenger_at", "created_at", "error_code", "error_text", "edited_at", "deleted_at",
            "previous_text", "change_seq"} <= columns
    assert {f"{status}_at" for status in MESSAGE_STATUSES if status != "inbound"} <= columns
    assert {"type", "title", "phone", "avatar_uri", "unread_count", "last_message_at", "change_seq"} <= set(
        helpdesk.tables.chats.c.keys())


def test_outbox_rows_from_before_the_lanes_go_in_the_agents_lane_and_maybe_sent_ones_first(empty_engine, pm):
    """0011_wazzup: pending rows already marked maybe sent keep their deadline's place; the rest go
    in the agents' lane (a respond-async send queued before the upgrade cannot be told apart)."""
    cfg = alembic_config(pm)
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, next(head for head in _heads(pm) if head.endswith("_host")))
        command.upgrade(cfg, "0010_wazzup")
    metadata, _ = assemble_metadata(pm)
    now = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)
    with empty_engine.begin() as conn:
        chat_id, ids = _old_chat(conn, metadata, now, [("queued", str(n)) for n in range(3)])
        conn.execute(sa.text(
            "INSERT INTO wazzup_outbox (message_id, chat_id, state, crm_message_id, attempts, maybe_sent,"
            " next_attempt_at, created_at, updated_at) VALUES (:m, :c, :state, :crm, 1, :maybe, :now, :now, :now)"
        ).bindparams(sa.bindparam("maybe", type_=sa.Boolean()), sa.bindparam("now", now, type_=sa.DateTime())),
            [{"m": ids[0], "c": chat_id, "state": "pending", "crm": "crm-0", "maybe": True},
             {"m": ids[1], "c": chat_id, "state": "pending", "crm": "crm-1", "maybe": False},
             {"m": ids[2], "c": chat_id, "state": "done", "crm": "crm-2", "maybe": True}])

    assert upgrade(empty_engine, pm) == _heads(pm)
    with empty_engine.connect() as conn:
        lanes = conn.execute(sa.text("SELECT message_id, lane FROM wazzup_outbox ORDER BY message_id")).all()
    assert [tuple(row) for row in lanes] == [(ids[0], 0), (ids[1], 1), (ids[2], 1)]
    assert schema_differences(empty_engine, pm) == []


def test_quarantined_rows_from_before_the_digest_get_it_and_a_repeat_stays_without_one(empty_engine, pm):
    """0012_wazzup: each quarantined item's first row gets its digest (so a redelivery of it adds no
    row); a row repeating an older one keeps NULL and stays: an upgrade deletes nothing quarantined."""
    cfg = alembic_config(pm)
    with empty_engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, next(head for head in _heads(pm) if head.endswith("_host")))
        command.upgrade(cfg, "0011_wazzup")
    now = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)
    items = ['{"messageId": "a"}', '{"messageId": "b"}', '{"messageId": "a"}', '{"messageId": "a"}']
    sections = ["messages", "messages", "messages", "statuses"]
    with empty_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO wazzup_quarantine (section, reason, item, received_at)"
                             " VALUES (:section, 'odd', :item, :now)")
                     .bindparams(sa.bindparam("now", now, type_=sa.DateTime())),
                     [{"section": section, "item": item} for section, item in zip(sections, items)])

    assert upgrade(empty_engine, pm) == _heads(pm)
    assert schema_differences(empty_engine, pm) == []
    with empty_engine.connect() as conn:
        digests = conn.execute(sa.text("SELECT item_digest FROM wazzup_quarantine ORDER BY id")).scalars().all()
    assert digests == [quarantine_digest("messages", items[0]), quarantine_digest("messages", items[1]), None,
                       quarantine_digest("statuses", items[3])]
