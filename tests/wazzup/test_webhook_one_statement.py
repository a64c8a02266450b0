"""PostgreSQL writes the usual delivery (one new incoming message in a known chat) as one statement in
autocommit, the change counter taken inside it (``store._write_in_one_statement``). What its snapshot
cannot see is looked at again, and housekeeping covers a process stopped in between."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa

from wazzup_plugin.inbound.store import Writer
from wazzup_plugin.sandbox.deliveries import delivery, status_update
from wazzup_plugin.state import get_state

TEXT_ID = "caa1f2b4-cce3-424c-86cd-05f4e2a95073"  # the message of the incoming_text fixture


@pytest.fixture
def known_chat(deliver, payload, wazzup_rows):
    """The chat of the incoming_text fixture, with another message in it (same contact: no rename)."""
    first = payload("incoming_text")
    first["messages"][0]["messageId"] = "0b8f9a4e-0000-4000-8000-000000000001"
    deliver(first)
    return wazzup_rows.chats()[0]["id"]


@pytest.fixture
def statements(engine):
    """The first word of every statement but SELECTs, as sent, in order."""
    seen = []

    def listener(conn, cursor, statement, *rest):
        if not statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement.lstrip().split()[0].upper())

    sa.event.listen(engine, "before_cursor_execute", listener)
    yield seen
    sa.event.remove(engine, "before_cursor_execute", listener)


def test_a_status_parked_before_its_message_is_applied_when_the_message_arrives(
        deliver, payload, wazzup_rows, known_chat):
    edited = status_update(message_id=TEXT_ID, status="edited")
    assert deliver(delivery(statuses=[edited])).json["parked"] == 1

    answer = deliver(payload("incoming_text")).json
    assert answer["new_messages"] == 1
    assert wazzup_rows.message(TEXT_ID)["edited_at"] is not None
    assert wazzup_rows.table("parked") == []


@pytest.fixture
def write_commits_while_waiting(helpdesk, engine, backend):
    """``arm(park=bool)``: when our one statement is sent, another write holds the change counter
    (and, with ``park``, parks an "edited" status of the incoming_text message), and commits half a
    second later, while the statement waits for the counter. Its snapshot predates that commit.
    Returns a list that says, once the delivery is made, whether the statement went out first."""
    if backend != "postgres":
        pytest.skip("SQLite writes in BEGIN IMMEDIATE: nothing commits between a write's reads and its lock")
    parked = get_state(helpdesk).tables["parked"]
    counter = sa.table("change_counter", sa.column("id"), sa.column("value"))
    committed = threading.Event()
    sent_first, threads, listeners = [], [], []
    # Its own engine: the other write's statements are not ours (the ``statements`` fixture listens on ours).
    others = sa.create_engine(engine.url.render_as_string(hide_password=False))

    def arm(park: bool):
        def before(conn, cursor, statement, *rest):
            if "UPDATE change_counter" not in statement or not statement.lstrip().upper().startswith("WITH") \
                    or sent_first:
                return
            other = others.connect()
            other.begin()
            other.execute(sa.update(counter).where(counter.c.id == 1).values(value=counter.c.value + 1))
            if park:
                item = status_update(message_id=TEXT_ID, status="edited")
                other.execute(sa.insert(parked).values(kind="status", wazzup_message_id=TEXT_ID, chat_id=None,
                                                       dedupe_key=f"s:{TEXT_ID}:edited", item=json.dumps(item),
                                                       received_at=helpdesk.clock()))

            def commit_later():
                time.sleep(0.5)  # the statement is sent meanwhile and waits for the counter's row
                committed.set()
                other.commit()
                other.close()

            threads.append(threading.Thread(target=commit_later))
            threads[-1].start()
            sent_first.append(not committed.is_set())

        sa.event.listen(engine, "before_cursor_execute", before)
        listeners.append(before)
        return sent_first

    yield arm
    for before in listeners:
        sa.event.remove(engine, "before_cursor_execute", before)
    for thread in threads:
        thread.join(5)
    others.dispose()


@pytest.fixture
def one_statement_results(monkeypatch):
    """What each one-statement write returned (``OneStatement``: was its snapshot current?)."""
    results = []
    real = Writer.store_in_one_statement

    def spy(self, msg):
        result = real(self, msg)
        results.append(result)
        return result

    monkeypatch.setattr(Writer, "store_in_one_statement", spy)
    return results


def test_a_status_parked_while_the_statement_waits_for_the_counter_is_applied(
        deliver, payload, wazzup_rows, known_chat, statements, write_commits_while_waiting, one_statement_results):
    sent_first = write_commits_while_waiting(park=True)
    answer = deliver(payload("incoming_text")).json
    assert sent_first == [True]
    # The statement did not see the parked status: its snapshot predates the other write's commit.
    [result] = one_statement_results
    assert (result.current, result.parked) == (False, False)
    assert answer["new_messages"] == 1
    assert wazzup_rows.message(TEXT_ID)["edited_at"] is not None
    assert wazzup_rows.table("parked") == []
    assert statements[0] == "WITH" and "UPDATE" in statements[1:]  # applied under the counter


def test_a_write_committed_while_the_statement_waits_costs_one_look_when_nothing_was_parked(
        deliver, payload, wazzup_rows, known_chat, statements, write_commits_while_waiting, one_statement_results):
    sent_first = write_commits_while_waiting(park=False)
    assert deliver(payload("incoming_text")).json["new_messages"] == 1
    assert sent_first == [True]
    assert [r.current for r in one_statement_results] == [False]
    assert statements == ["WITH"]  # looked again (a SELECT), wrote nothing more
    assert wazzup_rows.message(TEXT_ID)["edited_at"] is None


def test_the_statement_writes_nothing_before_it_holds_the_counter(deliver, payload, helpdesk, engine, wazzup_rows,
                                                                 known_chat, backend):
    """While another write holds the counter, the waiting statement has inserted no Wazzup row: a third
    session stores the same message without waiting for it, and the statement then loses cleanly."""
    if backend != "postgres":
        pytest.skip("SQLite writes in BEGIN IMMEDIATE: the whole write waits for the lock")
    others = sa.create_engine(engine.url.render_as_string(hide_password=False))
    holder = others.connect()
    holder.begin()
    holder.exec_driver_sql("UPDATE change_counter SET value = value + 1")
    answers = []
    delivering = threading.Thread(target=lambda: answers.append(deliver(payload("incoming_text")).json))
    delivering.start()
    try:
        for _ in range(100):  # until our statement waits for the counter's row (bounded: 10 s)
            with others.connect() as conn:
                if conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND query LIKE :ours"), {"ours": "%INSERT INTO wazzup_messages%"}).scalar():
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the one statement never waited for the counter")
        tables, now = get_state(helpdesk).tables, helpdesk.clock()
        with others.begin() as third:
            third.exec_driver_sql("SET LOCAL lock_timeout = '2s'")  # a Wazzup row of ours would block this
            message_id = third.execute(sa.insert(helpdesk.tables.messages).values(
                chat_id=known_chat, direction="in", status="inbound", type="text", text="stored by a third session",
                created_at=now, change_seq=0)).inserted_primary_key[0]
            third.execute(sa.insert(tables["messages"]).values(
                message_id=message_id, chat_id=known_chat, wazzup_message_id=TEXT_ID, is_echo=False))
    finally:
        holder.commit()
        holder.close()
        delivering.join(10)
        others.dispose()
    assert answers and (answers[0]["new_messages"], answers[0]["duplicates"]) == (0, 1)
    assert wazzup_rows.message(TEXT_ID)["text"] == "stored by a third session"
    assert len(wazzup_rows.messages()) == 2  # the known chat's first message and the third session's: no orphan


def test_housekeeping_applies_a_status_parked_for_a_message_stored_since(
        deliver, payload, helpdesk, wazzup_rows, known_chat, clock):
    """As if the process stopped between a one-statement write and its second look at what is parked."""
    deliver(delivery(statuses=[status_update(message_id=TEXT_ID, status="edited")]))
    tables = get_state(helpdesk).tables
    now = helpdesk.clock()
    with helpdesk.db.write() as tx:
        message_id = tx.conn.execute(sa.insert(helpdesk.tables.messages).values(
            chat_id=known_chat, direction="in", status="inbound", type="text", text="Hello, is my order ready?",
            created_at=now, change_seq=tx.change_seq)).inserted_primary_key[0]
        tx.conn.execute(sa.insert(tables["messages"]).values(
            message_id=message_id, chat_id=known_chat, wazzup_message_id=TEXT_ID, is_echo=False))
    assert len(wazzup_rows.table("parked")) == 1

    clock.advance(minutes=5)  # housekeeping runs with the next delivery
    deliver(delivery(statuses=[status_update(message_id="WZ-unrelated", status="sent")]))
    assert wazzup_rows.message(TEXT_ID)["edited_at"] is not None
    assert [p["wazzup_message_id"] for p in wazzup_rows.table("parked")] == ["WZ-unrelated"]


def test_a_message_is_stored_when_the_change_counter_does_not_exist_yet(
        deliver, payload, helpdesk, engine, wazzup_rows, known_chat):
    with engine.begin() as conn:  # the counter's row is made by the first write ever
        conn.execute(sa.text("DELETE FROM change_counter"))
    assert deliver(payload("incoming_text")).json["new_messages"] == 1
    assert wazzup_rows.message(TEXT_ID)["change_seq"] == helpdesk.db.current_change_seq() == 1


def test_a_renamed_contact_renames_the_chat_along_with_the_new_message(deliver, payload, wazzup_rows, known_chat):
    renamed = payload("incoming_text")
    renamed["messages"][0]["contact"]["name"] = "Ivan Petrov (work)"
    assert deliver(renamed).json["new_messages"] == 1
    [chat] = wazzup_rows.chats()
    assert chat["title"] == "Ivan Petrov (work)"
    assert chat["unread_count"] == 2


def test_group_messages_from_two_senders_go_in_one_statement_without_renaming_the_group(
        deliver, payload, wazzup_rows, one_statement_results, round_trips, backend):
    deliver(payload("incoming_whatsgroup"))  # a new chat: the general path
    one_statement_results.clear()
    sent_per_delivery = []
    for n, name in enumerate(["Anna", "Boris"], 1):
        body = payload("incoming_whatsgroup")
        body["messages"][0].update(messageId=f"0b1f6c0e-0000-4000-8000-00000000000{n}", text=f"from {name}",
                                   contact={"name": name, "avatarUri": f"https://store.wazzup24.com/{name}"})
        round_trips.clear()
        assert deliver(body).json["new_messages"] == 1
        sent_per_delivery.append(len(round_trips))
    [chat] = wazzup_rows.chats()
    assert (chat["title"], chat["contact_name"], chat["avatar_uri"], chat["unread_count"]) == (
        "Suppliers group", "Suppliers group", None, 3)
    assert [(m["text"], m["author_name"]) for m in wazzup_rows.messages()] == [
        ("Hi all", "Suppliers group"), ("from Anna", "Anna"), ("from Boris", "Boris")]
    if backend == "postgres":  # the usual delivery: a sender's name is no rename of a group
        assert [r.outcome for r in one_statement_results] == ["stored", "stored"]
        assert sent_per_delivery == [1, 1]


@pytest.fixture
def round_trips(engine):
    """Every statement sent, SELECTs included: on PostgreSQL each one is a round trip."""
    sent = []

    def listener(conn, cursor, statement, *rest):
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    yield sent
    sa.event.remove(engine, "before_cursor_execute", listener)


def test_a_contacts_new_avatar_reaches_the_chat_along_with_the_new_message(deliver, payload, wazzup_rows,
                                                                          known_chat):
    body = payload("incoming_text")
    body["messages"][0]["contact"]["avatarUri"] = "https://store.wazzup24.com/new-avatar"
    assert deliver(body).json["new_messages"] == 1
    [chat] = wazzup_rows.chats()
    assert (chat["avatar_uri"], chat["title"], chat["unread_count"]) == (
        "https://store.wazzup24.com/new-avatar", "Ivan Petrov", 2)


def test_a_name_that_is_just_the_number_keeps_the_usual_delivery_in_one_round_trip(
        deliver, payload, wazzup_rows, known_chat, round_trips, backend):
    body = payload("incoming_text")
    body["messages"][0]["contact"]["name"] = "+7 (916) 123-45-67"  # as WhatsApp may send it: never a rename
    assert deliver(body).json["new_messages"] == 1
    sent = list(round_trips)
    assert wazzup_rows.chats()[0]["title"] == "Ivan Petrov"
    if backend == "postgres":
        assert len(sent) == 1


def test_an_edited_copy_of_a_stored_message_is_applied_after_the_one_statement_declines_it(
        deliver, payload, wazzup_rows, known_chat, one_statement_results, backend):
    deliver(payload("incoming_text"))
    edited = payload("incoming_text")
    edited["messages"][0].update(text="Hello, is my order ready? (edited)", isEdited=True,
                                 oldInfo={"oldText": "Hello, is my order ready?"})
    assert deliver(edited).json["duplicates"] == 1
    message = wazzup_rows.message(TEXT_ID)
    assert (message["text"], message["previous_text"]) == ("Hello, is my order ready? (edited)",
                                                           "Hello, is my order ready?")
    if backend == "postgres":
        assert one_statement_results[-1].outcome == "stored_before"  # it wrote nothing; the general path did


def test_a_later_transactions_summary_folds_into_the_deliverys_every_field():
    from dataclasses import fields

    from wazzup_plugin.inbound.store import Summary

    first = Summary(new=["m1"], statuses_applied=1, chat_ids={1}, message_ids={10})
    later = Summary(**{f.name: ({2} if f.type == "set[int]" else ["x"] if f.type.startswith("list") else 3)
                       for f in fields(Summary)})
    first.add(later)
    assert first.new == ["m1", "x"] and first.duplicates == ["x"] and first.chats_created == ["x"]
    assert (first.statuses_applied, first.quarantined, first.channels) == (4, 3, 3)
    assert first.chat_ids == {1, 2} and first.message_ids == {10, 2}
    assert all(getattr(first, f.name) for f in fields(Summary))  # nothing left out
