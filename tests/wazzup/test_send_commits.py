"""A send commits once before calling Wazzup (message, attempt marker and rate-limit call together)
and once after; the guarantees of the longer path still hold."""

import json

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound import outbox
from wazzup_plugin.state import get_state

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
CUSTOMER = "79011112233"


@pytest.fixture
def chat(make_wazzup_chat):
    return make_wazzup_chat(wazzup_chat_id=CUSTOMER)


def calls_counted(helpdesk) -> int:
    rl = get_state(helpdesk).tables["rate_limit"]
    with helpdesk.db.read() as conn:
        return sum(conn.execute(sa.select(rl.c.count)).scalars())


def test_the_attempt_and_its_rate_limit_call_are_committed_before_wazzup_is_called(
        send, chat, wazzup_api, wazzup_url, helpdesk):
    o = get_state(helpdesk).tables["outbox"]
    seen = {}

    def callback(request):
        with helpdesk.db.read() as conn:  # another connection: sees only what was committed
            seen["outbox"] = [tuple(r) for r in conn.execute(sa.select(
                o.c.attempts, o.c.attempt_started_at.is_not(None), o.c.channel_id, o.c.wazzup_chat_id))]
        seen["calls counted"] = calls_counted(helpdesk)
        return 201, {}, json.dumps({"messageId": WAZZUP_ID})

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=callback)
    assert send(chat).status_code == 201
    assert seen["outbox"] == [(1, True, json.loads(wazzup_api.calls[0].request.body)["channelId"], CUSTOMER)]
    assert seen["calls counted"] == 1
    assert calls_counted(helpdesk) == 1  # the call was counted once, not again by the client


def test_a_send_whose_process_died_after_storing_is_treated_as_maybe_sent(
        chat, wazzup_api, outbox_ctx, clock, helpdesk):
    with helpdesk.db.write() as tx:  # what the send route commits before calling Wazzup; then the process dies
        message_id = outbox.enqueue(tx, outbox_ctx, chat_id=chat, now=clock(), lease_owner="web:died", text="hi")
    assert outbox.claim_due(outbox_ctx, "worker") == []  # still leased to the dead request
    clock.advance(outbox.lease_seconds(outbox_ctx) + 1)
    assert outbox.claim_due(outbox_ctx, "worker") == [message_id]
    o = get_state(helpdesk).tables["outbox"]
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(o.c.maybe_sent).where(o.c.message_id == message_id)).scalar() is True
    # Past Wazzup's dedupe window it is never sent again: the agent sees it as unknown.
    assert outbox.attempt(outbox_ctx, message_id, "worker").kind == "unknown"
    assert len(wazzup_api.calls) == 0


@pytest.mark.parametrize("answer, status", [
    ((201, {"messageId": WAZZUP_ID}), "accepted"),
    ((201, {}), "accepted"),  # accepted without a readable id
    ((400, {"error": "BAD_CONTACT", "description": "no WhatsApp"}), "failed"),
])
def test_an_echo_typed_on_the_phone_during_a_send_is_released_when_the_send_settles(
        send, chat, wazzup_api, wazzup_url, helpdesk, deliver, payload, channel_id, answer, status):
    echo = payload("echo_from_phone")
    echo["messages"][0].update(channelId=channel_id, chatId=CUSTOMER, messageId="WZ-phone", text="From the phone")

    def callback(request):
        assert deliver(echo).json["parked"] == 1  # a send is in flight in this chat: the echo waits
        return answer[0], {}, json.dumps(answer[1])

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=callback)
    result = send(chat, text="From the helpdesk")
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        out = {r.text: r.status for r in conn.execute(sa.select(m.c.text, m.c.status).where(m.c.direction == "out"))}
        parked = conn.execute(sa.select(sa.func.count()).select_from(get_state(helpdesk).tables["parked"])).scalar()
    assert result.status_code in (201, 422)
    assert out == {"From the helpdesk": status, "From the phone": "sent"}
    assert parked == 0


def test_the_inline_attempt_sends_what_was_stored_without_reading_it_back(
        send, chat, wazzup_api, wazzup_url, helpdesk, engine):
    wazzup_api.add("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    outbox_reads, stored = [], []

    def listener(conn, cursor, statement, *rest):
        # Reads of the outbox once the message is stored in it (the check for a message of the chat
        # still waiting comes before, and reads nothing of this one).
        words = statement.lstrip().upper()
        if words.startswith("INSERT") and "WAZZUP_OUTBOX" in words:
            stored.append(statement)
        elif stored and words.startswith("SELECT") and "wazzup_outbox" in statement:
            outbox_reads.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        answer = send(chat, text="Привет")
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert answer.status_code == 201, answer.text
    assert stored and outbox_reads == []
    sent = json.loads(wazzup_api.calls[0].request.body)
    o = get_state(helpdesk).tables["outbox"]
    with helpdesk.db.read() as conn:
        crm_id, chat_type, state = conn.execute(sa.select(o.c.crm_message_id, o.c.chat_type, o.c.state)).one()
    assert (sent["text"], sent["chatId"], sent["chatType"], sent["crmMessageId"]) == ("Привет", CUSTOMER, chat_type, crm_id)
    assert sent["crmUserId"] and state == "done"
    assert answer.json["status"] == "accepted" and answer.json["wazzup_message_id"] == WAZZUP_ID


def test_a_send_left_to_the_worker_keeps_its_key_and_answer_in_the_one_commit_that_stores_it(
        send, chat, wazzup_api, helpdesk, monkeypatch):
    """Prefer: respond-async (or a file): one write transaction, the Idempotency-Key's answer in it."""
    writes = []
    write = helpdesk.db.write
    monkeypatch.setattr(helpdesk.db, "write", lambda: writes.append(1) or write())
    first = send(chat, {"text": "once"}, headers={"Prefer": "respond-async", "Idempotency-Key": "one-commit"})
    assert (first.status_code, len(writes)) == (202, 1)
    again = send(chat, {"text": "once"}, headers={"Prefer": "respond-async", "Idempotency-Key": "one-commit"})
    assert (again.status_code, again.json) == (202, first.json)
    assert len(wazzup_api.calls) == 0
