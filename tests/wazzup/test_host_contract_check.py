"""The plugin's check of the host's tables at startup, and the column list it checks against.

``wazzup_plugin.host.HOST_COLUMNS`` is what ``host_stub/hookspecs.py`` documents ("Host tables") and
what ``startup`` checks. A host that lacks any of it is refused with one message naming everything
missing, instead of answering its first webhook with a 500. And the list is enough: a host whose
``chats``, ``messages`` and ``agents`` have exactly these columns, with no default anywhere and NOT
NULL wherever the list allows it, runs the plugin's whole flow (deliveries of every kind, sends,
statuses, edits, parking).
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

import wazzup_plugin.hooks
from host_stub.db import Database, make_engine
from host_stub.errors import StartupError
from host_stub.models import Base, ChangeCounter, UTCDateTime
from wazzup_plugin.host import HOST_COLUMNS, KEY, SET, HostContractError, host_problems
from wazzup_plugin.tables import define_tables

CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"


# ---------------------------------------------------------------- hosts of various shapes


def _sql_type(column):
    if column.type is int:
        return sa.BigInteger() if column.name == "change_seq" else sa.Integer()
    if column.type is str:
        return sa.String(column.length) if column.length else sa.Text()
    return UTCDateTime()


def documented_tables(metadata, *, names=None, drop=(), extra=()):
    """``chats``, ``messages`` and ``agents`` with exactly the documented columns: NOT NULL wherever
    the list allows it, no default anywhere. ``names``: SQL names other than the usual; ``drop``:
    ``"table.column"`` left out; ``extra``: ``(table, Column)`` added."""
    tables = {}
    for name, columns in HOST_COLUMNS.items():
        cols = [sa.Column(c.name, _sql_type(c), primary_key=c.rule == KEY, nullable=c.rule not in (KEY, SET))
                for c in columns if f"{name}.{c.name}" not in drop]
        cols += [col for table, col in extra if table == name]
        tables[name] = sa.Table((names or {}).get(name, name), metadata, *cols)
    return SimpleNamespace(**tables)


def a_host(**shape) -> SimpleNamespace:
    metadata = sa.MetaData()
    return SimpleNamespace(metadata=metadata, tables=documented_tables(metadata, **shape))


def refusal(host) -> str:
    with pytest.raises(HostContractError) as refused:
        wazzup_plugin.hooks.startup(helpdesk=host)
    assert isinstance(refused.value, ValueError)  # what the contract's hosts report as a startup error
    return str(refused.value)


# ---------------------------------------------------------------- refused


def test_hook_startup_refuses_a_host_whose_messages_table_lacks_a_column():
    message = refusal(a_host(drop=("messages.messenger_at",)))
    assert "messages has no column 'messenger_at' (datetime, nullable)" in message
    assert message.count(";") == 0  # that one problem, nothing else


def test_hook_startup_refuses_a_host_whose_chats_table_is_named_differently():
    message = refusal(a_host(names={"chats": "hd_chats"}))
    assert "helpdesk.metadata has no table named 'chats' (helpdesk.tables.chats is 'hd_chats')" in message
    assert "messages" not in message


def test_hook_startup_lists_every_problem_at_once():
    message = refusal(a_host(names={"chats": "hd_chats", "messages": "hd_messages", "agents": "hd_agents"},
                             drop=("chats.phone",)))
    for name in ("chats", "messages", "agents"):
        assert f"no table named {name!r}" in message
    assert "chats" in message.split(";")[0] and len(message.split("; ")) == 3


def test_hook_startup_refuses_python_side_defaults_the_plugin_would_meet():
    message = refusal(a_host(extra=[
        ("chats", sa.Column("team", sa.String(20), nullable=False, default="support")),
        ("messages", sa.Column("priority", sa.Integer, default=lambda: 0)),
        ("chats", sa.Column("updated_at", UTCDateTime(), onupdate=datetime.now)),
    ]))
    assert "chats.team has a Python-side default=" in message
    assert "messages.priority has a Python-side default=" in message
    assert "chats.updated_at has a Python-side onupdate=" in message


def test_hook_startup_refuses_a_python_side_default_on_a_column_some_inserts_leave_unset():
    # The webhook's messages have no author agent: its insert leaves the column unset.
    message = refusal(a_host(drop=("messages.author_agent_id",), extra=[
        ("messages", sa.Column("author_agent_id", sa.Integer, default=0))]))
    assert "messages.author_agent_id has a Python-side default=" in message


def test_hook_startup_refuses_a_not_null_column_the_plugin_does_not_set():
    message = refusal(a_host(extra=[("messages", sa.Column("team", sa.String(20), nullable=False))]))
    assert "messages.team is NOT NULL without a database-side default, and the plugin does not set it" \
        in message


@pytest.mark.parametrize("column, problem", [
    (sa.Column("phone", sa.String(32), nullable=False),
     "chats.phone must be nullable: the plugin writes NULL"),
    (sa.Column("phone", sa.Integer), "chats.phone loads as int, not str"),
    (sa.Column("phone", sa.String(16)), "chats.phone holds 16 characters; the plugin writes up to 32"),
    (sa.Column("phone", UTCDateTime()), "chats.phone loads as datetime, not str"),
])
def test_hook_startup_refuses_a_column_of_the_wrong_kind(column, problem):
    metadata = sa.MetaData()
    tables = documented_tables(metadata, drop=("chats.phone",))
    tables.chats.append_column(column)
    assert problem in refusal(SimpleNamespace(metadata=metadata, tables=tables))


def test_hook_startup_refuses_ids_that_are_not_the_autoincrement_primary_key():
    metadata = sa.MetaData()
    tables = documented_tables(metadata, drop=("messages.id",))
    tables.messages.append_column(sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    assert "messages.id must be autoincrement" in refusal(SimpleNamespace(metadata=metadata, tables=tables))


# ---------------------------------------------------------------- accepted


def test_hook_startup_accepts_further_columns_with_database_side_defaults():
    host = a_host(extra=[
        ("chats", sa.Column("team", sa.String(20), nullable=False, server_default="support")),
        ("messages", sa.Column("stored_at", UTCDateTime(), nullable=False, default=sa.func.now())),
        ("messages", sa.Column("note", sa.Text)),
    ])
    assert host_problems(host.metadata, host.tables) == []


def test_the_reference_host_passes_the_check(helpdesk):
    # create_app ran the startup hook: it passed; the same check, directly:
    assert host_problems(helpdesk.metadata, helpdesk.tables) == []


def test_the_reference_host_reports_a_refusal_as_a_startup_error(monkeypatch, build_app, pm_with):
    """Through ``create_app``: the plugin's ValueError becomes the reference host's StartupError, as is."""
    import host_stub.app

    def without_messenger_at(pm):
        metadata = sa.MetaData(naming_convention=Base.metadata.naming_convention)
        for table in Base.metadata.sorted_tables:
            if table.name == "messages":
                sa.Table("messages", metadata, *[
                    sa.Column(c.name, c.type, *[sa.ForeignKey(fk.target_fullname) for fk in c.foreign_keys],
                              primary_key=c.primary_key, nullable=c.nullable)
                    for c in table.c if c.name != "messenger_at"])
            else:
                table.to_metadata(metadata)
        return metadata, [d for d in pm.hook.register_schema(metadata=metadata) if d]

    monkeypatch.setattr(host_stub.app, "assemble_metadata", without_messenger_at)
    with pytest.raises(StartupError, match=r"^the helpdesk's tables do not meet the contract the wazzup24 "
                                           r"plugin needs .*messages has no column 'messenger_at'"):
        build_app(pm_with())


# ---------------------------------------------------------------- the list is enough


class DocumentedHost:
    """A helpdesk facade whose host tables have the documented columns only (no defaults, NOT NULL
    wherever allowed), on the host's own ``Database`` (change counter, write queue)."""

    def __init__(self, engine, env, clock, http):
        self.metadata = sa.MetaData()
        self.tables = documented_tables(self.metadata)
        define_tables(self.metadata)
        ChangeCounter.__table__.create(engine)
        self.metadata.create_all(engine)
        self.db = Database(engine)
        self.config = SimpleNamespace(env=env, max_body_bytes=1 << 20)
        self.clock, self.http, self.plugin_state, self.chat_types = clock, http, {}, None

    def serialize_messages(self, conn, rows):
        return [dict(row) for row in rows]

    serialize_chats = serialize_messages


@pytest.fixture
def documented_host(database_url, settings, clock, http):
    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    env = dict(settings, WAZZUP24_WEBHOOK_SECRET="a-secret-of-some-length")
    host = DocumentedHost(engine, env, clock, http)
    wazzup_plugin.hooks.startup(helpdesk=host)  # the check passes
    yield host
    engine.dispose()


def test_a_host_with_only_the_documented_columns_runs_the_plugin(documented_host, payload, clock, wazzup_api,
                                                                  wazzup_url):
    import json

    from wazzup_plugin.inbound.parse import parse_delivery
    from wazzup_plugin.inbound.store import write_delivery
    from wazzup_plugin.outbound import outbox
    from wazzup_plugin.outbound.context import outbound
    from wazzup_plugin.outbound.info import InfoResource
    from wazzup_plugin.outbound.serialize import message_json
    from wazzup_plugin.sandbox.deliveries import delivery, incoming_message, status_update
    from wazzup_plugin.state import get_state

    host = documented_host
    state = get_state(host)
    m, c = host.tables.messages, host.tables.chats

    def deliver(body):
        return write_delivery(host.db, state, parse_delivery(body), clock.advance(1))

    assert deliver(payload("incoming_text")).chats_created          # a new chat and its first message
    writes = []
    write = host.db.write
    host.db.write = lambda: writes.append(1) or write()
    assert deliver(payload("incoming_image")).new                    # a known chat
    host.db.write = write
    assert len(writes) == (0 if host.db.dialect == "postgresql" else 1)  # PostgreSQL: in one statement
    deliver(payload("echo_from_phone"))                              # typed on the phone: its author
    deliver(payload("edited"))                                       # edits the chat's last message
    deliver(payload("messages_and_statuses"))                        # two messages; statuses parked
    deliver(delivery(messages=[incoming_message(channel_id=CHANNEL, chat_id=f"7999000000{i}", text="hi")
                               for i in (1, 2)]))                    # two new chats at once
    assert deliver(payload("statuses_error")).parked

    with host.db.read() as conn:
        chat_id = conn.execute(sa.select(c.c.id).where(c.c.phone == "79161234567")).scalar_one()
    with host.db.write() as tx:
        tx.conn.execute(sa.insert(host.tables.agents).values(id=7))

    ctx = outbound(host, state)
    answers = iter([(201, {}, json.dumps({"messageId": "WZ-SENT", "chatId": "79161234567"})),
                    (400, {}, json.dumps({"status": 400, "error": "CHAT_NOT_FOUND",
                                          "description": "No chat"}))])
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=lambda request: next(answers))
    outcomes = []
    for text in ("Your order is ready", "And another thing"):
        written = {}
        with host.db.write() as tx:
            message_id = outbox.enqueue(tx, ctx, chat_id=chat_id, now=clock(), lease_owner="test", text=text,
                                        author_agent_id=7, author_name="Alice", written=written)
        outcomes.append(outbox.attempt(ctx, message_id, "test", as_written=written.get("row")))
    assert [o.kind for o in outcomes] == ["accepted", "failed"]
    deliver(delivery(statuses=[status_update(message_id="WZ-SENT", status="delivered")]))

    with host.db.read() as conn:
        sent = message_json(conn, host, state, outcomes[0].message_id)
        failed = message_json(conn, host, state, outcomes[1].message_id)
        stored = conn.execute(sa.select(sa.func.count()).select_from(m)).scalar_one()
    assert (sent["status"], sent["author_agent_id"], sent["author_name"]) == ("delivered", 7, "Alice")
    assert (failed["status"], failed["error_code"]) == ("failed", "CHAT_NOT_FOUND")
    assert stored == 9
    info = InfoResource(host, state).collect(chat_id)
    assert info["counts"]["out"] == 3 and info["contact"]["name"]
