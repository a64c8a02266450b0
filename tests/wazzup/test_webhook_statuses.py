"""The webhook's `statuses`, and what waits for a message id: parked statuses and echoes."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from wazzup_plugin.sandbox.deliveries import delivery, incoming_message, status_update

CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"
PHONE = "79161234567"


@pytest.fixture
def chat_id(deliver, payload, wazzup_rows):
    deliver(payload("incoming_text"))
    return wazzup_rows.chats()[0]["id"]


@pytest.fixture
def sent(outgoing_send, chat_id):
    """An agent's message that Wazzup accepted as WZ-1."""
    send = outgoing_send(chat_id)
    send.settle("WZ-1")
    return send


def at(minute: int) -> datetime:
    return datetime(2026, 11, 26, 12, minute, tzinfo=timezone.utc)


def test_statuses_move_forward_with_a_timestamp_each(deliver, wazzup_rows, sent):
    deliver(delivery(statuses=[status_update(message_id="WZ-1", status="sent", at=at(1))]))
    deliver(delivery(statuses=[status_update(message_id="WZ-1", status="delivered", at=at(2))]))
    deliver(delivery(statuses=[status_update(message_id="WZ-1", status="read", at=at(3))]))
    message = wazzup_rows.message("WZ-1")
    assert message["status"] == "read"
    assert (message["sent_at"], message["delivered_at"], message["read_at"]) == (at(1), at(2), at(3))


def test_a_late_status_never_moves_a_message_backwards(deliver, wazzup_rows, sent):
    deliver(delivery(statuses=[status_update(message_id="WZ-1", status="read", at=at(3))]))
    result = deliver(delivery(statuses=[status_update(message_id="WZ-1", status="sent", at=at(1)),
                                        status_update(message_id="WZ-1", status="delivered", at=at(2))]))
    assert result.status_code == 200
    message = wazzup_rows.message("WZ-1")
    assert message["status"] == "read"
    assert message["read_at"] == at(3)
    assert message["delivered_at"] == at(2)  # the report is still a fact worth its time


def test_statuses_in_one_delivery_apply_in_any_order(deliver, wazzup_rows, sent):
    deliver(delivery(statuses=[status_update(message_id="WZ-1", status="read", at=at(3)),
                               status_update(message_id="WZ-1", status="sent", at=at(1)),
                               status_update(message_id="WZ-1", status="delivered", at=at(2))]))
    assert wazzup_rows.message("WZ-1")["status"] == "read"


def test_repeated_status_changes_nothing(deliver, wazzup_rows, sent):
    body = delivery(statuses=[status_update(message_id="WZ-1", status="delivered", at=at(2))])
    deliver(body)
    first = wazzup_rows.message("WZ-1")
    assert deliver(body).json["statuses_applied"] == 0
    assert wazzup_rows.message("WZ-1") == first


def test_error_status_is_stored_as_failed_with_code_and_description(deliver, payload, wazzup_rows, outgoing_send,
                                                                    chat_id):
    send = outgoing_send(chat_id)
    send.settle("f66c53a6-957a-46b2-b41b-5a2ef4844bcb")
    deliver(payload("statuses_error"))
    message = wazzup_rows.message("f66c53a6-957a-46b2-b41b-5a2ef4844bcb")
    assert message["status"] == "failed"
    # A code we know is stored in our words (wazzup_plugin/error_texts.py HUMAN_TEXT), Wazzup's otherwise.
    assert (message["error_code"], message["error_text"]) == (
        "BAD_CONTACT", "The number is not on WhatsApp, or the customer's app is too old.")
    assert message["failed_at"] == datetime(2025, 2, 5, 6, 1, 9, 120000, tzinfo=timezone.utc)
    deliver(delivery(statuses=[status_update(message_id="f66c53a6-957a-46b2-b41b-5a2ef4844bcb", status="read")]))
    assert wazzup_rows.message("f66c53a6-957a-46b2-b41b-5a2ef4844bcb")["status"] == "failed"


def test_a_message_reported_failed_is_logged_with_its_ids_and_code_once(deliver, payload, wazzup_rows, outgoing_send,
                                                                       chat_id, caplog):
    send = outgoing_send(chat_id)
    send.settle("f66c53a6-957a-46b2-b41b-5a2ef4844bcb")
    with caplog.at_level("INFO", logger="wazzup_plugin.inbound.webhook"):
        deliver(payload("statuses_error"))
        deliver(payload("statuses_error"))                      # Wazzup redelivers: nothing changes
    message_id = wazzup_rows.message("f66c53a6-957a-46b2-b41b-5a2ef4844bcb")["id"]
    [failed] = [r for r in caplog.records if r.getMessage() == "Wazzup24 message not delivered"]
    assert failed.levelname == "WARNING"
    assert failed.context == {"message_id": message_id, "wazzup_message_id": "f66c53a6-957a-46b2-b41b-5a2ef4844bcb",
                              "error_code": "BAD_CONTACT"}
    stored = [r for r in caplog.records if r.getMessage() == "webhook delivery stored"]
    assert stored[0].context["message_ids"] == [message_id] and stored[1].context["message_ids"] == []


def test_edited_status_marks_the_message_edited_without_changing_its_status(deliver, payload, wazzup_rows,
                                                                            outgoing_send, chat_id):
    send = outgoing_send(chat_id)
    send.settle("be3dc577-60c4-4fc8-83a5-8c358e0bfe15")
    deliver(payload("statuses_edited"))
    message = wazzup_rows.message("be3dc577-60c4-4fc8-83a5-8c358e0bfe15")
    assert message["edited_at"] == datetime(2025, 2, 5, 6, 5, tzinfo=timezone.utc)
    assert message["status"] == "accepted"


def test_messages_and_statuses_in_one_delivery(deliver, payload, wazzup_rows, outgoing_send, chat_id):
    send = outgoing_send(chat_id)
    send.settle("be3dc577-60c4-4fc8-83a5-8c358e0bfe15")
    result = deliver(payload("messages_and_statuses"))
    assert result.status_code == 200
    assert result.json["new_messages"] == 2 and result.json["statuses_applied"] == 1
    assert wazzup_rows.message("be3dc577-60c4-4fc8-83a5-8c358e0bfe15")["status"] == "read"
    assert {m["text"] for m in wazzup_rows.messages(direction="in")} >= {"First", "Second"}


def test_status_before_the_send_call_returns_is_parked_and_applied_when_the_id_is_known(
        deliver, wazzup_rows, outgoing_send, chat_id):
    send = outgoing_send(chat_id)
    result = deliver(delivery(statuses=[status_update(message_id="WZ-early", status="delivered", at=at(2))]))
    assert result.json["parked"] == 1
    assert [p["wazzup_message_id"] for p in wazzup_rows.table("parked")] == ["WZ-early"]
    assert wazzup_rows.messages(direction="out")[0]["status"] == "queued"

    send.settle("WZ-early")  # the outbound flow learns the id and calls apply_parked in its transaction

    message = wazzup_rows.message("WZ-early")
    assert (message["status"], message["delivered_at"]) == ("delivered", at(2))
    assert wazzup_rows.table("parked") == []


def test_redelivered_parked_status_is_parked_once(deliver, wazzup_rows, chat_id):
    body = delivery(statuses=[status_update(message_id="WZ-x", status="sent")])
    deliver(body)
    deliver(body)
    assert len(wazzup_rows.table("parked")) == 1


def test_parked_statuses_expire_after_a_day_and_are_logged(deliver, wazzup_rows, chat_id, clock, caplog):
    deliver(delivery(statuses=[status_update(message_id="WZ-never", status="sent")]))
    clock.advance(hours=23)
    deliver(delivery(statuses=[status_update(message_id="WZ-other", status="sent")]))
    assert len(wazzup_rows.table("parked")) == 2
    clock.advance(hours=2)
    with caplog.at_level("WARNING", logger="wazzup_plugin.inbound.store"):
        deliver(delivery(statuses=[status_update(message_id="WZ-third", status="sent")]))
    assert sorted(p["wazzup_message_id"] for p in wazzup_rows.table("parked")) == ["WZ-other", "WZ-third"]
    [record] = [r for r in caplog.records if "expired" in r.getMessage()]
    assert record.context["wazzup_message_ids"] == ["WZ-never"]


def test_echo_that_beats_the_send_answer_is_parked_and_merged_when_the_send_settles(
        deliver, wazzup_rows, outgoing_send, chat_id):
    send = outgoing_send(chat_id, text="On its way")
    echo = incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="On its way", message_id="WZ-2", is_echo=True)
    echo["status"] = "delivered"
    result = deliver(delivery(messages=[echo]))
    assert result.json["parked"] == 1
    assert len(wazzup_rows.messages(direction="out")) == 1

    send.settle("WZ-2")

    [message] = wazzup_rows.messages(direction="out")
    assert (message["id"], message["wazzup_message_id"], message["status"]) == (send.id, "WZ-2", "delivered")
    assert wazzup_rows.table("parked") == []


def test_parked_echo_that_was_not_our_send_becomes_an_outgoing_message_when_the_send_settles(
        deliver, wazzup_rows, outgoing_send, chat_id):
    send = outgoing_send(chat_id, text="From the helpdesk")
    phone_echo = incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="From the phone", message_id="WZ-phone",
                                  is_echo=True)
    deliver(delivery(messages=[phone_echo]))
    send.settle("WZ-helpdesk")

    out = {m["wazzup_message_id"]: m for m in wazzup_rows.messages(direction="out")}
    assert set(out) == {"WZ-helpdesk", "WZ-phone"}
    assert (out["WZ-phone"]["text"], out["WZ-phone"]["is_echo"]) == ("From the phone", True)
    assert wazzup_rows.table("parked") == []


def test_parked_echo_is_released_once_the_send_in_its_chat_failed(deliver, wazzup_rows, outgoing_send, chat_id,
                                                                    clock):
    send = outgoing_send(chat_id)
    deliver(delivery(messages=[incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="typed on phone",
                                                message_id="WZ-p", is_echo=True)]))
    send.fail()  # nothing in flight any more, yet nobody called apply_parked
    clock.advance(minutes=2)
    deliver(delivery(statuses=[status_update(message_id="WZ-unrelated", status="sent")]))
    assert wazzup_rows.message("WZ-p")["text"] == "typed on phone"


def test_stale_parked_echo_is_released_even_with_a_send_stuck_in_flight(deliver, wazzup_rows, outgoing_send, chat_id,
                                                                        clock):
    outgoing_send(chat_id)
    deliver(delivery(messages=[incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="typed on phone",
                                                message_id="WZ-p", is_echo=True)]))
    clock.advance(hours=25)
    deliver(delivery(statuses=[status_update(message_id="WZ-unrelated", status="sent")]))
    assert wazzup_rows.message("WZ-p")["direction"] == "out"


def test_a_stale_parked_echo_is_released_with_the_statuses_parked_for_it(deliver, wazzup_rows, outgoing_send,
                                                                        chat_id, clock):
    """Its statuses waited for it as long as it waited for the send: they expire only if it never comes."""
    outgoing_send(chat_id)  # stuck in flight: the echo waits for it
    deliver(delivery(messages=[incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="typed on phone",
                                                message_id="WZ-p", is_echo=True, at=at(1))]))
    deliver(delivery(statuses=[status_update(message_id="WZ-p", status="read", at=at(3))]))
    assert len(wazzup_rows.table("parked")) == 2
    clock.advance(hours=25)
    deliver(delivery(statuses=[status_update(message_id="WZ-unrelated", status="sent")]))
    message = wazzup_rows.message("WZ-p")
    assert (message["direction"], message["status"], message["read_at"]) == ("out", "read", at(3))
    assert [p["wazzup_message_id"] for p in wazzup_rows.table("parked")] == ["WZ-unrelated"]


def test_status_parked_for_a_phone_echo_applies_when_the_echo_arrives(deliver, wazzup_rows, chat_id):
    deliver(delivery(statuses=[status_update(message_id="WZ-ph", status="read", at=at(5))]))
    deliver(delivery(messages=[incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="hi", message_id="WZ-ph",
                                                is_echo=True, at=at(4))]))
    message = wazzup_rows.message("WZ-ph")
    assert (message["status"], message["read_at"]) == ("read", at(5))
    assert wazzup_rows.table("parked") == []


def test_status_changes_are_visible_to_pollers(deliver, wazzup_rows, sent, client, auth, chat_id):
    seq = wazzup_rows.message("WZ-1")["change_seq"]
    deliver(delivery(statuses=[status_update(message_id="WZ-1", status="delivered")]))
    items = client.simulate_get(f"/api/chats/{chat_id}/messages", params={"changed_since": seq},
                                headers=auth).json["items"]
    assert [(m["wazzup_message_id"], m["status"]) for m in items] == [("WZ-1", "delivered")]


def test_echo_after_a_send_settled_without_an_id_settles_that_send(deliver, wazzup_rows, outgoing_send, chat_id,
                                                                     helpdesk):
    # REPEATED_CRM_MESSAGE_ID: Wazzup says an earlier attempt went out but gives no id; the echo brings it.
    send = outgoing_send(chat_id, text="Repeat-safe reply")
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(helpdesk.tables.messages).where(helpdesk.tables.messages.c.id == send.id)
                        .values(status="accepted", change_seq=tx.change_seq))
    echo = incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="Repeat-safe reply", message_id="WZ-late",
                            is_echo=True)
    echo["status"] = "delivered"
    deliver(delivery(messages=[echo]))
    [message] = wazzup_rows.messages(direction="out")
    assert (message["id"], message["wazzup_message_id"], message["status"]) == (send.id, "WZ-late", "delivered")


def test_echo_parked_during_a_send_that_became_unknown_settles_it(deliver, wazzup_rows, outgoing_send, chat_id,
                                                                   helpdesk):
    from wazzup_plugin.inbound.parked import send_settled
    from wazzup_plugin.state import get_state

    send = outgoing_send(chat_id, text="Maybe sent")
    deliver(delivery(messages=[
        incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="Maybe sent", message_id="WZ-ours", is_echo=True),
        incoming_message(channel_id=CHANNEL, chat_id=PHONE, text="typed on phone", message_id="WZ-phone",
                         is_echo=True)]))
    assert len(wazzup_rows.table("parked")) == 2
    with helpdesk.db.write() as tx:  # as the outbox records a fate unclear past the dedupe window
        tx.conn.execute(sa.update(helpdesk.tables.messages).where(helpdesk.tables.messages.c.id == send.id)
                        .values(status="unknown", change_seq=tx.change_seq))
        send_settled(tx, get_state(helpdesk), [chat_id])
    out = {m["wazzup_message_id"]: m for m in wazzup_rows.messages(direction="out")}
    assert set(out) == {"WZ-ours", "WZ-phone"}
    assert out["WZ-ours"]["id"] == send.id
    assert out["WZ-ours"]["status"] == "sent"
    assert wazzup_rows.table("parked") == []


def _settled_without_id(helpdesk, send, status, first_attempt, settled):
    """As the outbox leaves a send Wazzup took without an id (REPEATED_CRM_MESSAGE_ID: accepted) or
    whose fate is unclear (unknown): its outbox row says when it was tried and when it settled."""
    from wazzup_plugin.state import get_state

    m, o = helpdesk.tables.messages, get_state(helpdesk).tables["outbox"]
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(m).where(m.c.id == send.id).values(status=status, change_seq=tx.change_seq))
        tx.conn.execute(sa.insert(o).values(
            message_id=send.id, chat_id=send.chat_id, state="done", crm_message_id=send.crm_message_id,
            attempts=3, first_attempt_at=first_attempt, maybe_sent=True, next_attempt_at=settled,
            created_at=first_attempt, updated_at=settled))


def _echo(text, message_id, when):
    return incoming_message(channel_id=CHANNEL, chat_id=PHONE, text=text, message_id=message_id, is_echo=True,
                            at=when)


def test_an_echo_in_a_chat_with_a_send_in_flight_waits_for_it_rather_than_settle_an_older_send(
        deliver, wazzup_rows, outgoing_send, chat_id, helpdesk):
    """An unknown "OK" that never went out, then a second "OK" whose echo beats its answer: the echo
    is the second one's."""
    older = outgoing_send(chat_id, text="OK")
    older.chat_id = chat_id
    _settled_without_id(helpdesk, older, "unknown", at(1), at(3))
    newer = outgoing_send(chat_id, text="OK")
    deliver(delivery(messages=[_echo("OK", "WZ-new", at(5))]))
    newer.settle("WZ-new")
    out = {m["id"]: m for m in wazzup_rows.messages(direction="out")}
    assert (out[newer.id]["wazzup_message_id"], out[older.id]["wazzup_message_id"]) == ("WZ-new", None)
    assert out[older.id]["status"] == "unknown" and len(out) == 2


def test_an_echo_long_after_a_send_settled_is_not_taken_for_it(deliver, wazzup_rows, outgoing_send, chat_id,
                                                               helpdesk):
    """The same words typed on the phone an hour later are a new message, not the unknown send."""
    send = outgoing_send(chat_id, text="OK")
    send.chat_id = chat_id
    _settled_without_id(helpdesk, send, "unknown", at(1), at(3))
    deliver(delivery(messages=[_echo("OK", "WZ-phone", at(1).replace(hour=13))]))
    out = {m["id"]: m for m in wazzup_rows.messages(direction="out")}
    assert out[send.id]["wazzup_message_id"] is None and out[send.id]["status"] == "unknown"
    assert [m["wazzup_message_id"] for m in out.values() if m["id"] != send.id] == ["WZ-phone"]


def test_an_echo_settles_the_latest_of_two_sends_with_the_same_words(deliver, wazzup_rows, outgoing_send, chat_id,
                                                                      helpdesk):
    older, newer = outgoing_send(chat_id, text="OK"), outgoing_send(chat_id, text="OK")
    older.chat_id = newer.chat_id = chat_id
    _settled_without_id(helpdesk, older, "unknown", at(1), at(3))
    _settled_without_id(helpdesk, newer, "accepted", at(3), at(4))
    deliver(delivery(messages=[_echo("OK", "WZ-2", at(4))]))
    out = {m["id"]: m for m in wazzup_rows.messages(direction="out")}
    assert (out[newer.id]["wazzup_message_id"], out[older.id]["wazzup_message_id"]) == ("WZ-2", None)


def test_statuses_parked_before_an_echo_brings_the_id_apply_when_it_does(deliver, wazzup_rows, outgoing_send,
                                                                         chat_id, helpdesk):
    send = outgoing_send(chat_id, text="Your order is ready")
    send.chat_id = chat_id
    _settled_without_id(helpdesk, send, "accepted", at(1), at(2))
    deliver(delivery(statuses=[status_update(message_id="WZ-9", status=s, at=at(2)) for s in
                               ("sent", "delivered", "read")]))
    assert len(wazzup_rows.table("parked")) == 3
    deliver(delivery(messages=[_echo("Your order is ready", "WZ-9", at(2))]))
    message = wazzup_rows.message("WZ-9")
    assert (message["id"], message["status"]) == (send.id, "read")
    assert wazzup_rows.table("parked") == []


def test_an_echo_released_from_parking_still_settles_the_send_it_matches(deliver, wazzup_rows, outgoing_send,
                                                                         chat_id, helpdesk, clock):
    """Waiting for a send in flight is what parking is for: once the echo is released (a day on,
    that send still stuck), it settles the send without an id whose words and time it matches."""
    settled = outgoing_send(chat_id, text="Your order is ready")
    settled.chat_id = chat_id
    _settled_without_id(helpdesk, settled, "accepted", clock(), clock())
    outgoing_send(chat_id, text="still in flight")
    deliver(delivery(messages=[_echo("Your order is ready", "WZ-r", clock())]))
    assert len(wazzup_rows.table("parked")) == 1
    clock.advance(hours=25)
    deliver(delivery(statuses=[status_update(message_id="WZ-unrelated", status="sent")]))
    assert wazzup_rows.message("WZ-r")["id"] == settled.id


def _file_send(outgoing_send, helpdesk, chat_id, name: str):
    """An agent's file send, as the send route stores it: our public link to the upload, and its name."""
    send = outgoing_send(chat_id, text=None)
    send.chat_id = chat_id
    m = helpdesk.tables.messages
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(m).where(m.c.id == send.id).values(
            type="document", content_name=name, content_type="application/pdf",
            content_uri=f"https://helpdesk.example.com/wazzup24/files/{'t' * 43}/{quote(name[:40], safe='')}"))
    return send


def _file_echo(uri, message_id, when):
    echo = incoming_message(channel_id=CHANNEL, chat_id=PHONE, text=None, content_uri=uri, message_id=message_id,
                            is_echo=True, at=when)
    echo["type"] = "document"
    return echo


def test_an_echo_of_a_file_from_wazzups_store_settles_the_file_send_without_an_id(deliver, wazzup_rows,
                                                                                   outgoing_send, chat_id, helpdesk):
    """Wazzup took the file at once and echoes it from its own store: another link, the same name."""
    send = _file_send(outgoing_send, helpdesk, chat_id, "invoice 42.pdf")
    _settled_without_id(helpdesk, send, "unknown", at(1), at(3))

    deliver(delivery(messages=[_file_echo("https://store.wazzup24.com/9f8e7d/?filename=invoice%2042.pdf", "WZ-f",
                                          at(2))]))

    [message] = wazzup_rows.messages(direction="out")
    assert (message["id"], message["wazzup_message_id"]) == (send.id, "WZ-f")


def test_an_echo_of_a_file_whose_long_name_our_link_shortened_settles_the_send(deliver, wazzup_rows, outgoing_send,
                                                                               chat_id, helpdesk):
    name = "a-very-long-name-" * 12 + ".pdf"
    send = _file_send(outgoing_send, helpdesk, chat_id, name)
    m = helpdesk.tables.messages
    with helpdesk.db.write() as tx:  # as public_url names a long file: file.<extension>
        tx.conn.execute(sa.update(m).where(m.c.id == send.id).values(
            content_uri=f"https://helpdesk.example.com/wazzup24/files/{'t' * 43}/file.pdf"))
    _settled_without_id(helpdesk, send, "accepted", at(1), at(3))

    deliver(delivery(messages=[_file_echo("https://store.wazzup24.com/1a2b/?filename=file.pdf", "WZ-long", at(2))]))

    assert wazzup_rows.message("WZ-long")["id"] == send.id


def test_a_file_echo_with_another_name_is_not_taken_for_a_file_send(deliver, wazzup_rows, outgoing_send, chat_id,
                                                                    helpdesk):
    """Guards against taking too much: a file sent from the phone meanwhile is a message of its own."""
    send = _file_send(outgoing_send, helpdesk, chat_id, "invoice.pdf")
    _settled_without_id(helpdesk, send, "unknown", at(1), at(3))

    deliver(delivery(messages=[_file_echo("https://store.wazzup24.com/5c6d/?filename=price-list.pdf", "WZ-phone",
                                          at(2))]))

    out = {m["id"]: m for m in wazzup_rows.messages(direction="out")}
    assert out[send.id]["wazzup_message_id"] is None and len(out) == 2
