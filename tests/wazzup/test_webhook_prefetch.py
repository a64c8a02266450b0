"""A delivery's lookups run before its write lock (``store.write_delivery``): what another delivery
commits in between must still end up stored once, with nothing lost; plain copies write nothing."""

from __future__ import annotations

import copy

import sqlalchemy as sa

from wazzup_plugin.inbound.parse import parse_delivery
from wazzup_plugin.inbound.store import prefetch, store_delivery
from wazzup_plugin.state import get_state


def _edited_by_the_customer(original: dict) -> dict:
    body = copy.deepcopy(original)
    body["messages"][0].update(text="Hello, is my order ready? (edited)", isEdited=True,
                               oldInfo={"oldText": original["messages"][0]["text"]})
    return body


def _stale_lookup(helpdesk, body):
    """The lookups of ``body`` as they were before anything below was stored."""
    state = get_state(helpdesk)
    delivery = parse_delivery(body)
    with helpdesk.db.read() as conn:
        return state, delivery, prefetch(conn, state, delivery, helpdesk.clock())


def _write(helpdesk, state, delivery, found):
    with helpdesk.db.write() as tx:
        return store_delivery(tx, state, delivery, helpdesk.clock(), prefetched=found)


def test_plain_redelivery_takes_no_write_lock_and_changes_nothing(deliver, payload, helpdesk, engine, backend):
    deliver(payload("incoming_text"))
    seq = helpdesk.db.current_change_seq()
    writes = []
    listener = lambda conn, cursor, statement, *rest: writes.append(statement)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        answer = deliver(payload("incoming_text")).json
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert (answer["new_messages"], answer["duplicates"]) == (0, 1)
    assert helpdesk.db.current_change_seq() == seq
    assert not [s for s in writes if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE"))]
    if backend == "postgres":  # one round trip: the usual delivery's statement, which found it stored
        assert len(writes) == 1


def test_redelivered_edit_is_still_written(deliver, payload, wazzup_rows):
    deliver(payload("incoming_text"))
    answer = deliver(_edited_by_the_customer(payload("incoming_text"))).json
    assert answer["duplicates"] == 1
    message = wazzup_rows.message("caa1f2b4-cce3-424c-86cd-05f4e2a95073")
    assert message["text"] == "Hello, is my order ready? (edited)"


def test_message_stored_after_the_lookup_is_kept_once(deliver, payload, helpdesk, wazzup_rows):
    state, delivery, found = _stale_lookup(helpdesk, payload("incoming_text"))
    assert found.stored == {} and found.chats == {}
    deliver(payload("incoming_text"))  # another worker stores the message and its chat meanwhile

    summary = _write(helpdesk, state, delivery, found)
    assert (summary.new, summary.duplicates) == ([], ["caa1f2b4-cce3-424c-86cd-05f4e2a95073"])
    [chat] = wazzup_rows.chats()
    assert [m["chat_id"] for m in wazzup_rows.messages()] == [chat["id"]]
    assert chat["unread_count"] == 1
    with helpdesk.db.read() as conn:  # our own host row was dropped with the lost insert
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 1


def test_edit_of_a_message_stored_after_the_lookup_is_applied(deliver, payload, helpdesk, wazzup_rows):
    edit = _edited_by_the_customer(payload("incoming_text"))
    state, delivery, found = _stale_lookup(helpdesk, edit)
    deliver(payload("incoming_text"))  # the original arrives through another worker first

    summary = _write(helpdesk, state, delivery, found)
    assert summary.edited == ["caa1f2b4-cce3-424c-86cd-05f4e2a95073"]
    [message] = wazzup_rows.messages()
    assert message["text"] == "Hello, is my order ready? (edited)"
    assert message["previous_text"] == "Hello, is my order ready?"


def test_chat_created_after_the_lookup_is_used_not_created_again(deliver, payload, helpdesk, wazzup_rows):
    other = payload("incoming_image")  # same chat, another message
    state, delivery, found = _stale_lookup(helpdesk, payload("incoming_text"))
    deliver(other)

    _write(helpdesk, state, delivery, found)
    [chat] = wazzup_rows.chats()
    assert sorted(m["chat_id"] for m in wazzup_rows.messages()) == [chat["id"], chat["id"]]
    assert chat["unread_count"] == 2


def test_chat_moved_after_the_lookup_keeps_its_newest_message_as_preview(deliver, payload, helpdesk, wazzup_rows):
    older = payload("incoming_text")
    newer = payload("incoming_image")
    newer["messages"][0]["dateTime"] = "2025-05-06T15:00:00.000Z"
    deliver(payload("incoming_text"))  # the chat exists for both lookups
    first = copy.deepcopy(older)
    first["messages"][0]["messageId"] = "0b8f9a4e-0000-4000-8000-000000000001"
    state, delivery, found = _stale_lookup(helpdesk, first)  # looked up before the newer message came
    deliver(newer)

    _write(helpdesk, state, delivery, found)
    [chat] = wazzup_rows.chats()
    assert chat["last_message_preview"] != "Hello, is my order ready?"  # the newer image stays the preview
    assert chat["unread_count"] == 3


def test_a_delivery_of_statuses_alone_opens_no_lookup_transaction(deliver, payload, engine):
    """Statuses have nothing to look up before the write: one transaction, no read before it."""
    deliver(payload("incoming_text"))
    checkouts = []
    listener = lambda *args: checkouts.append(1)  # noqa: E731
    sa.event.listen(engine, "checkout", listener)
    try:
        answer = deliver({"statuses": [{"messageId": "caa1f2b4-cce3-424c-86cd-05f4e2a95073", "status": "read",
                                        "timestamp": "2025-05-06T14:19:00.000Z"}]})
    finally:
        sa.event.remove(engine, "checkout", listener)
    assert answer.status_code == 200
    assert len(checkouts) == 1


def test_a_message_is_looked_up_in_one_statement_over_a_network_and_without_its_chat_when_stored_on_sqlite(
        deliver, payload, engine, backend):
    deliver(payload("incoming_text"))
    selects = []

    def listener(conn, cursor, statement, *rest):
        selects.append([table for table in ("wazzup_messages", "wazzup_chats") if f"FROM {table}" in statement])

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        assert deliver(payload("incoming_text")).json["duplicates"] == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    # PostgreSQL: the stored message and the chat in one statement (one round trip); on SQLite the
    # chat is not needed for a stored message, and a statement costs no round trip.
    assert selects == ([["wazzup_messages", "wazzup_chats"]] if backend == "postgres" else [["wazzup_messages"]])


def test_a_new_message_in_a_known_chat_is_written_in_one_statement_on_postgresql(
        deliver, payload, engine, backend, wazzup_rows):
    first = payload("incoming_text")
    first["messages"][0]["messageId"] = "0b8f9a4e-0000-4000-8000-000000000001"
    deliver(first)  # the chat exists, with the same contact (no rename)
    sent = []
    listener = lambda conn, cursor, statement, *rest: sent.append(statement.lstrip().split()[0].upper())  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        answer = deliver(payload("incoming_text")).json
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert answer["new_messages"] == 1
    # PostgreSQL: one round trip, a statement that looks up, takes the counter and writes the message,
    # its Wazzup row and the chat, committing by itself; SQLite: the counter, then three statements in
    # BEGIN IMMEDIATE.
    writes = [word for word in sent if word != "SELECT"]
    assert writes == (["WITH"] if backend == "postgres" else ["UPDATE", "INSERT", "INSERT", "UPDATE"])
    if backend == "postgres":
        assert sent == ["WITH"]
    [chat] = wazzup_rows.chats()
    assert chat["unread_count"] == 2
    assert chat["last_message_preview"] == "Hello, is my order ready?"
    assert len(wazzup_rows.messages()) == 2
