"""MESSAGE_CHANNEL_UNAVAILABLE ("Wait a minute", reference §3.5) is retried, not failed; and
REFERENCE_MESSAGE_NOT_FOUND is a permanent refusal with a clear text."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound import worker

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
UNAVAILABLE = {"status": 400, "requestId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "error": "MESSAGE_CHANNEL_UNAVAILABLE",
               "description": "Wait a minute"}


@pytest.fixture
def chat(make_wazzup_chat):
    return make_wazzup_chat()


def stored(helpdesk, message_id):
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(m).where(m.c.id == message_id)).first()


def run_worker_for(ctx, clock, seconds, step=1.0):
    owner = worker.worker_id()
    for _ in range(int(seconds / step)):
        clock.advance(step)
        worker.run_once(ctx, owner)


def test_channel_unavailable_answers_202_and_waits_about_a_minute_as_surely_unsent(
        send, chat, wazzup_api, wazzup_url, outbox_row, clock):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=UNAVAILABLE, status=400)
    result = send(chat)
    assert (result.status_code, result.json["status"]) == (202, "queued")
    row = outbox_row(result.json["id"])
    assert (row.state, row.maybe_sent, row.attempts) == ("pending", False, 1)
    assert row.next_attempt_at - clock() >= timedelta(seconds=60)
    assert "MESSAGE_CHANNEL_UNAVAILABLE" in row.last_error


def test_channel_unavailable_is_sent_once_the_channel_is_back_even_after_the_dedupe_window(
        send, chat, wazzup_api, sent_bodies, wazzup_url, helpdesk, clock, outbox_ctx):
    for _ in range(3):
        wazzup_api.post(f"{wazzup_url}/v3/message", json=UNAVAILABLE, status=400)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID, "chatId": "79011112233"}, status=201)
    result = send(chat)
    assert result.status_code == 202
    run_worker_for(outbox_ctx, clock, 300, step=5)
    message = stored(helpdesk, result.json["id"])
    assert message.status == "accepted"
    bodies = sent_bodies()
    assert len(bodies) == 4 and len({b["crmMessageId"] for b in bodies}) == 1


def test_channel_unavailable_for_an_hour_fails_with_wazzups_code_and_a_channel_problem(
        send, chat, wazzup_api, sent_bodies, wazzup_url, helpdesk, outbox_row, clock, outbox_ctx):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=UNAVAILABLE, status=400)
    result = send(chat)
    assert result.status_code == 202
    run_worker_for(outbox_ctx, clock, 3900, step=30)
    message = stored(helpdesk, result.json["id"])
    assert (message.status, message.error_code) == ("failed", "MESSAGE_CHANNEL_UNAVAILABLE")
    assert "unavailable" in message.error_text
    assert outbox_row(result.json["id"]).state == "done"
    # About one attempt a minute, not a tight loop.
    assert 40 <= len(sent_bodies()) <= 70


def test_a_worker_back_after_the_hour_fails_it_with_the_channels_reason_and_no_word_of_retrying(
        send, chat, wazzup_api, wazzup_url, helpdesk, clock, outbox_ctx):
    """The worker was down for the hour after Wazzup's "wait a minute": the hour rule fails the message,
    and its text gives that reason without the retry's own remark (nothing is retried any more)."""
    wazzup_api.post(f"{wazzup_url}/v3/message", json=UNAVAILABLE, status=400)
    result = send(chat)
    assert result.status_code == 202
    clock.advance(3700)
    worker.run_once(outbox_ctx, worker.worker_id())
    message = stored(helpdesk, result.json["id"])
    assert (message.status, message.error_code) == ("failed", "NOT_SENT")
    assert "The last attempt: The channel's phone is unavailable at Wazzup" in message.error_text
    assert "retrying" not in message.error_text


def test_an_unknown_quoted_message_fails_permanently_with_a_clear_text(
        send, chat, wazzup_api, wazzup_url, outbox_row):
    wazzup_api.post(f"{wazzup_url}/v3/message", status=400, json={
        "status": 400, "requestId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "error": "REFERENCE_MESSAGE_NOT_FOUND",
        "description": "Reference message not found"})
    result = send(chat)
    assert (result.status_code, result.json["wazzup_code"]) == (422, "REFERENCE_MESSAGE_NOT_FOUND")
    text = result.json["data"]["message"]["error_text"]
    assert "quotes" in text and "without replying" in text
    assert outbox_row(result.json["message_id"]).state == "done"
