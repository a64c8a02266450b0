"""The losing side of a race: another worker commits the same chat or message between our look-up
and our insert. On PostgreSQL this can be staged deterministically; SQLite's BEGIN IMMEDIATE lets no
other writer in, so there is nothing to stage there."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from wazzup_plugin.state import get_state

CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"


@pytest.fixture
def rival(helpdesk, engine, backend):
    """``rival(table_name, write)``: just before our first statement that inserts into that table
    (on its own, or within a larger statement), ``write(conn)`` runs and commits on another
    connection (a worker that got there first)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): no race to stage")
    armed = {}

    def arm(table_name, write):
        armed[table_name] = write

    def before(conn, cursor, statement, parameters, context, executemany):
        for name in list(armed):
            if f"INSERT INTO {name.upper()} " in statement.upper():
                write = armed.pop(name)
                with engine.begin() as other:
                    write(other)

    sa.event.listen(engine, "before_cursor_execute", before)
    yield arm
    sa.event.remove(engine, "before_cursor_execute", before)


def test_losing_the_race_for_a_new_chat_keeps_the_winners_chat_only(deliver, payload, helpdesk, wazzup_rows, rival):
    tables = get_state(helpdesk).tables
    now = helpdesk.clock()
    theirs = {}

    def other_worker_creates_the_chat(conn):
        theirs["id"] = chat_id = conn.execute(sa.insert(helpdesk.tables.chats).values(
            type="wazzup", title="Ivan (other worker)", phone="79161234567", unread_count=0,
            last_message_preview="", last_activity_at=now, created_at=now, change_seq=0)).inserted_primary_key[0]
        conn.execute(sa.insert(tables["chats"]).values(chat_id=chat_id, channel_id=CHANNEL, chat_type="whatsapp",
                                                       wazzup_chat_id="79161234567", contact_name="Ivan Petrov"))

    rival("wazzup_chats", other_worker_creates_the_chat)
    assert deliver(payload("incoming_text")).status_code == 200
    [chat] = wazzup_rows.chats()  # ours was deleted in our transaction
    assert (chat["id"], chat["title"]) == (theirs["id"], "Ivan (other worker)")
    assert chat["unread_count"] == 1 and chat["last_message_preview"] == "Hello, is my order ready?"
    assert [m["chat_id"] for m in wazzup_rows.messages()] == [chat["id"]]


def test_losing_the_race_for_a_new_message_leaves_no_second_copy(deliver, payload, helpdesk, wazzup_rows, rival):
    deliver(payload("incoming_image"))  # the chat exists; the race is on the message only
    [chat] = wazzup_rows.chats()
    tables = get_state(helpdesk).tables
    now = helpdesk.clock()

    def other_worker_stores_the_message(conn):
        message_id = conn.execute(sa.insert(helpdesk.tables.messages).values(
            chat_id=chat["id"], direction="in", status="inbound", type="text", text="stored by the other worker",
            created_at=now, change_seq=0)).inserted_primary_key[0]
        conn.execute(sa.insert(tables["messages"]).values(
            message_id=message_id, chat_id=chat["id"], wazzup_message_id="caa1f2b4-cce3-424c-86cd-05f4e2a95073",
            is_echo=False))

    rival("wazzup_messages", other_worker_stores_the_message)
    result = deliver(payload("incoming_text"))
    assert result.status_code == 200
    assert result.json["new_messages"] == 0 and result.json["duplicates"] == 1
    assert [m["text"] for m in wazzup_rows.messages(type="text")] == ["stored by the other worker"]
    assert len(wazzup_rows.messages()) == 2  # the image and the winner's copy: ours was removed
    assert wazzup_rows.chats()[0]["unread_count"] == 1  # a lost message is not counted as unread
