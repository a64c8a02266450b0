"""``Prefer: respond-async`` on send and resend: answered 202 once stored, the attempt made after the answer.

In-process, Falcon's test client closes the answer's body as a WSGI server does, so the attempt has
run by the time ``simulate_post`` returns; ``tests/wazzup/test_send_e2e_sandbox.py`` shows the
answer arriving before a slow Wazzup has answered, under gunicorn.
"""

import json
import logging

import pytest
import sqlalchemy as sa
from falcon import testing

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def chat(make_wazzup_chat):
    return make_wazzup_chat()


def _status(helpdesk, message_id):
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(m.c.status, m.c.error_code).where(m.c.id == message_id)).one()


def test_respond_async_answers_202_with_the_stored_message_and_then_sends_it(
        send, chat, wazzup_api, wazzup_url, sent_bodies, helpdesk):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"text": "Hello, Ivan"}, headers=ASYNC)
    assert result.status_code == 202
    assert result.headers["Preference-Applied"] == "respond-async"
    assert (result.json["status"], result.json["text"], result.json["wazzup_message_id"]) == ("queued", "Hello, Ivan", None)
    assert int(result.headers["Content-Length"]) == len(result.content)
    [body] = sent_bodies()
    assert body["crmMessageId"] == result.json["wazzup_crm_message_id"]
    assert tuple(_status(helpdesk, result.json["id"])) == ("accepted", None)


def test_the_async_answer_is_written_before_wazzup_is_called(client, auth, chat, wazzup_api, wazzup_url):
    """The body the client reads is complete before the attempt starts (the attempt runs on close())."""
    calls = []
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message",
                            callback=lambda request: calls.append(1) or (201, {}, f'{{"messageId": "{WAZZUP_ID}"}}'))
    env = testing.create_environ(f"/api/chats/{chat}/wazzup24/send", method="POST", body='{"text": "hi"}',
                                 headers={**auth, **ASYNC, "Content-Type": "application/json"})
    started = []
    body = client.app(env, lambda status, headers, exc_info=None: started.append(status))
    read = b"".join(body)
    assert started == ["202 Accepted"] and json.loads(read)["status"] == "queued"
    assert calls == []
    body.close()
    assert calls == [1]


def test_a_process_that_dies_after_the_async_answer_leaves_the_message_to_the_worker(
        client, auth, chat, wazzup_api, wazzup_url, sent_bodies, helpdesk, outbox_ctx, clock):
    """The server never calls close() (the process was killed once the answer was out): the request's
    lease runs out and the outbox worker sends the message, once."""
    from wazzup_plugin.outbound import outbox, worker

    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    env = testing.create_environ(f"/api/chats/{chat}/wazzup24/send", method="POST", body='{"text": "hi"}',
                                 headers={**auth, **ASYNC, "Content-Type": "application/json"})
    b"".join(client.app(env, lambda *args: None))  # read, never closed
    [message_id] = [row.id for row in _all_messages(helpdesk)]
    assert tuple(_status(helpdesk, message_id)) == ("queued", None)
    worker.run_once(outbox_ctx, worker.worker_id())
    assert sent_bodies() == []  # the request's lease still holds it
    clock.advance(outbox.lease_seconds(outbox_ctx) + 1)
    worker.run_once(outbox_ctx, worker.worker_id())
    assert len(sent_bodies()) == 1
    assert tuple(_status(helpdesk, message_id)) == ("accepted", None)


def _answered_not_closed(client, auth, chat, text, headers=None):
    """An async send whose answer was read, its attempt not made yet (close() not called)."""
    env = testing.create_environ(f"/api/chats/{chat}/wazzup24/send", method="POST", body=json.dumps({"text": text}),
                                 headers={**auth, **ASYNC, **(headers or {}), "Content-Type": "application/json"})
    body = client.app(env, lambda *args: None)
    return json.loads(b"".join(body)), body


@pytest.mark.parametrize("second", [ASYNC, {}], ids=["second async", "second answered with the verdict"])
def test_a_message_sent_after_an_async_answer_reaches_wazzup_after_it(
        client, auth, send, chat, wazzup_api, wazzup_url, sent_bodies, outbox_ctx, second):
    """The client has the first 202 before it sends the second: the second queues behind the first,
    whose attempt is still to come, and the customer reads them in the order they were sent."""
    from wazzup_plugin.outbound import worker

    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first, body = _answered_not_closed(client, auth, chat, "first")
    queued = send(chat, text="second", headers=second)
    assert (queued.status_code, queued.json["status"]) == (202, "queued")
    body.close()  # the first request's worker makes its attempt now
    worker.run_once(outbox_ctx, worker.worker_id())
    assert [b["text"] for b in sent_bodies()] == ["first", "second"]


def test_a_repeat_after_the_worker_took_a_late_async_attempts_message_reads_its_fate(
        client, auth, send, chat, wazzup_api, wazzup_url, sent_bodies, outbox_ctx, clock):
    """The request's attempt came after its lease ran out and the worker had sent the message: the
    attempt does nothing, and a repeat answers the message as it is, not a stale "queued"."""
    from wazzup_plugin.outbound import outbox, worker

    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first, body = _answered_not_closed(client, auth, chat, "late", headers={"Idempotency-Key": "late-1"})
    clock.advance(outbox.lease_seconds(outbox_ctx) + 1)
    worker.run_once(outbox_ctx, worker.worker_id())
    body.close()
    assert len(sent_bodies()) == 1
    again = send(chat, text="late", headers={"Idempotency-Key": "late-1"})
    assert (again.status_code, again.json["id"], again.json["status"]) == (201, first["id"], "accepted")


def _all_messages(helpdesk):
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(m.c.id)).all()


def test_a_refusal_after_the_async_answer_keeps_the_message_failed_with_wazzups_code(
        send, chat, wazzup_api, wazzup_url, api_payload, helpdesk):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    result = send(chat, {"text": "to nobody"}, headers=ASYNC)
    assert (result.status_code, result.json["status"]) == (202, "queued")
    assert tuple(_status(helpdesk, result.json["id"])) == ("failed", "BAD_CONTACT")


def test_a_repeat_of_an_async_send_answers_wazzups_verdict_and_sends_nothing_more(
        send, chat, wazzup_api, wazzup_url, sent_bodies):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first = send(chat, {"text": "once"}, headers={**ASYNC, "Idempotency-Key": "async-1"})
    again = send(chat, {"text": "once"}, headers={**ASYNC, "Idempotency-Key": "async-1"})
    assert (first.status_code, again.status_code) == (202, 201)
    assert (again.json["id"], again.json["status"], again.json["wazzup_message_id"]) == (
        first.json["id"], "accepted", WAZZUP_ID)
    assert len(sent_bodies()) == 1


def test_a_failure_after_the_async_answer_is_logged_and_the_worker_retries_it(
        send, chat, wazzup_api, wazzup_url, sent_bodies, helpdesk, caplog, monkeypatch):
    from wazzup_plugin.outbound import outbox

    def fails(*args, **kwargs):
        raise RuntimeError("a bug while recording the answer")

    monkeypatch.setattr(outbox, "_record", fails)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    with caplog.at_level(logging.ERROR):
        result = send(chat, {"text": "hi"}, headers=ASYNC)
    assert result.status_code == 202
    assert "the outbox worker will retry it" in caplog.text
    assert tuple(_status(helpdesk, result.json["id"])) == ("queued", None)


@pytest.mark.parametrize("prefer", ["respond-async", "RESPOND-ASYNC", "wait=10, respond-async",
                                    "handling=lenient,respond-async;x=1"])
def test_respond_async_is_read_as_rfc_7240_spells_preferences(send, chat, wazzup_api, wazzup_url, prefer):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"text": "hi"}, headers={"Prefer": prefer})
    assert (result.status_code, result.headers.get("Preference-Applied")) == (202, "respond-async")


@pytest.mark.parametrize("prefer", ["", "respond-asyncx", "return=minimal", "wait=respond-async"])
def test_without_respond_async_the_send_answers_with_wazzups_verdict(send, chat, wazzup_api, wazzup_url, prefer):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"text": "hi"}, headers={"Prefer": prefer})
    assert (result.status_code, result.json["status"]) == (201, "accepted")
    assert "Preference-Applied" not in result.headers


def test_a_bad_async_send_is_refused_before_anything_is_stored(send, chat, wazzup_api, helpdesk):
    result = send(chat, {"text": "   "}, headers=ASYNC)
    assert (result.status_code, result.json["fields"]) == (422, {"text": result.json["fields"]["text"]})
    assert _all_messages(helpdesk) == []
    assert "Preference-Applied" not in result.headers


def test_an_async_resend_answers_202_and_sends_it_again(
        client, auth, send, chat, wazzup_api, wazzup_url, api_payload, sent_bodies, helpdesk):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    failed = send(chat, {"text": "again"}).json["message_id"]
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed}/resend", headers={**auth, **ASYNC})
    assert (result.status_code, result.json["status"], result.headers["Preference-Applied"]) == (
        202, "queued", "respond-async")
    assert len(sent_bodies()) == 2
    assert tuple(_status(helpdesk, result.json["id"])) == ("accepted", None)


def test_the_async_verdict_reaches_the_change_feed_after_the_answers_change_seq(
        client, auth, send, chat, wazzup_api, wazzup_url, api_payload):
    """How an integrator learns the verdict: the chat's messages changed since the 202's change_seq."""
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    answered = send(chat, {"text": "to nobody"}, headers=ASYNC).json
    changed = client.simulate_get(f"/api/chats/{chat}/messages", params={"changed_since": answered["change_seq"]},
                                  headers=auth).json["items"]
    assert [(m["id"], m["status"], m["error_code"]) for m in changed] == [(answered["id"], "failed", "BAD_CONTACT")]


def test_a_resend_while_a_message_of_the_chat_waits_in_the_outbox_queues_behind_it(
        client, auth, send, chat, wazzup_api, wazzup_url, api_payload, sent_bodies, outbox_ctx):
    from wazzup_plugin.outbound import worker

    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    failed = send(chat, text="failed once").json["message_id"]
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first, body = _answered_not_closed(client, auth, chat, "waiting")
    resent = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed}/resend", headers=auth)
    assert (resent.status_code, resent.json["status"]) == (202, "queued")
    body.close()
    worker.run_once(outbox_ctx, worker.worker_id())
    assert [b["text"] for b in sent_bodies()] == ["failed once", "waiting", "failed once"]
