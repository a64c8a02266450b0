"""``Prefer: respond-async`` on send and resend: answered 202 once stored; the outbox worker sends it.

``tests/wazzup/test_send_e2e_sandbox.py`` has the same under gunicorn, with the worker as a process.
"""

import pytest
import sqlalchemy as sa

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def settings(settings):
    return {**settings, "WAZZUP24_ASYNC_BACKLOG": "3"}  # every test here queues fewer, but the one that fills it


@pytest.fixture
def chat(make_wazzup_chat):
    return make_wazzup_chat()


@pytest.fixture
def work(outbox_ctx):
    """One loop of the outbox worker."""
    from wazzup_plugin.outbound import worker

    return lambda: worker.run_once(outbox_ctx, worker.worker_id())


def _status(helpdesk, message_id):
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return tuple(conn.execute(sa.select(m.c.status, m.c.error_code).where(m.c.id == message_id)).one())


def _all_messages(helpdesk):
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(m.c.id)).all()


def test_respond_async_answers_202_with_the_stored_message_and_the_worker_sends_it(
        send, chat, wazzup_api, wazzup_url, sent_bodies, helpdesk, work):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"text": "Hello, Ivan"}, headers=ASYNC)
    assert result.status_code == 202
    assert result.headers["Preference-Applied"] == "respond-async"
    assert (result.json["status"], result.json["text"], result.json["wazzup_message_id"]) == ("queued", "Hello, Ivan", None)
    assert sent_bodies() == []  # the request called nobody: no web worker waits on Wazzup
    work()
    [body] = sent_bodies()
    assert body["crmMessageId"] == result.json["wazzup_crm_message_id"]
    assert _status(helpdesk, result.json["id"]) == ("accepted", None)


def test_a_refusal_of_an_async_send_keeps_the_message_failed_with_wazzups_code(
        send, chat, wazzup_api, wazzup_url, api_payload, helpdesk, work):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    result = send(chat, {"text": "to nobody"}, headers=ASYNC)
    assert (result.status_code, result.json["status"]) == (202, "queued")
    work()
    assert _status(helpdesk, result.json["id"]) == ("failed", "BAD_CONTACT")


def test_the_async_verdict_reaches_the_change_feed_after_the_answers_change_seq(
        client, auth, send, chat, wazzup_api, wazzup_url, api_payload, work):
    """How an integrator learns the verdict: the chat's messages changed since the 202's change_seq."""
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    answered = send(chat, {"text": "to nobody"}, headers=ASYNC).json
    work()
    changed = client.simulate_get(f"/api/chats/{chat}/messages", params={"changed_since": answered["change_seq"]},
                                  headers=auth).json["items"]
    assert [(m["id"], m["status"], m["error_code"]) for m in changed] == [(answered["id"], "failed", "BAD_CONTACT")]


@pytest.mark.parametrize("second", [ASYNC, {}], ids=["second async", "second answered with the verdict"])
def test_a_message_sent_after_an_async_one_reaches_wazzup_after_it(
        send, chat, wazzup_api, wazzup_url, sent_bodies, work, second):
    """The first waits for the worker, so the second queues behind it (the customer reads them in order)."""
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(chat, text="first", headers=ASYNC).status_code == 202
    queued = send(chat, text="second", headers=second)
    assert (queued.status_code, queued.json["status"]) == (202, "queued")
    work()
    assert [b["text"] for b in sent_bodies()] == ["first", "second"]


def test_a_resend_while_a_message_of_the_chat_waits_in_the_outbox_queues_behind_it(
        client, auth, send, chat, wazzup_api, wazzup_url, api_payload, sent_bodies, work):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    failed = send(chat, text="failed once").json["message_id"]
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(chat, text="waiting", headers=ASYNC).status_code == 202
    resent = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed}/resend", headers=auth)
    assert (resent.status_code, resent.json["status"]) == (202, "queued")
    work()
    assert [b["text"] for b in sent_bodies()] == ["failed once", "waiting", "failed once"]


def test_a_repeat_of_an_async_send_answers_the_same_and_stores_nothing_more(
        send, chat, wazzup_api, wazzup_url, sent_bodies, helpdesk, work):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first = send(chat, {"text": "once"}, headers={**ASYNC, "Idempotency-Key": "async-1"})
    again = send(chat, {"text": "once"}, headers={**ASYNC, "Idempotency-Key": "async-1"})
    assert (first.status_code, again.status_code, again.json) == (202, 202, first.json)
    work()
    assert len(sent_bodies()) == 1 and len(_all_messages(helpdesk)) == 1


@pytest.mark.parametrize("prefer", ["respond-async", "RESPOND-ASYNC", "wait=10, respond-async",
                                    "handling=lenient,respond-async;x=1"])
def test_respond_async_is_read_as_rfc_7240_spells_preferences(send, chat, wazzup_api, sent_bodies, prefer):
    result = send(chat, {"text": "hi"}, headers={"Prefer": prefer})
    assert (result.status_code, result.headers.get("Preference-Applied")) == (202, "respond-async")
    assert sent_bodies() == []


@pytest.mark.parametrize("prefer", ["", "respond-asyncx", "return=minimal", "wait=respond-async"])
def test_without_respond_async_the_send_answers_with_wazzups_verdict(send, chat, wazzup_api, wazzup_url, prefer):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"text": "hi"}, headers={"Prefer": prefer})
    assert (result.status_code, result.json["status"]) == (201, "accepted")
    assert "Preference-Applied" not in result.headers


def test_a_bad_async_send_is_refused_before_anything_is_stored(send, chat, wazzup_api, helpdesk):
    result = send(chat, {"text": "   "}, headers=ASYNC)
    assert (result.status_code, list(result.json["fields"])) == (422, ["text"])
    assert _all_messages(helpdesk) == []
    assert "Preference-Applied" not in result.headers


def test_an_async_resend_answers_202_and_the_worker_sends_it_again(
        client, auth, send, chat, wazzup_api, wazzup_url, api_payload, sent_bodies, helpdesk, work):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    failed = send(chat, {"text": "again"}).json["message_id"]
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed}/resend", headers={**auth, **ASYNC})
    assert (result.status_code, result.json["status"], result.headers["Preference-Applied"]) == (
        202, "queued", "respond-async")
    work()
    assert len(sent_bodies()) == 2
    assert _status(helpdesk, result.json["id"]) == ("accepted", None)


def test_async_sends_are_refused_with_429_while_the_outbox_is_full_and_nothing_is_stored(
        send, chat, make_wazzup_chat, wazzup_api, wazzup_url, helpdesk, work, sent_bodies):
    """WAZZUP24_ASYNC_BACKLOG (3 here): a burst cannot grow the one queue past what the worker drains."""
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first = send(chat, text="m0", headers={**ASYNC, "Idempotency-Key": "burst-0"})
    for i in (1, 2):
        assert send(chat, text=f"m{i}", headers=ASYNC).status_code == 202
    full = send(chat, text="one too many", headers=ASYNC)
    assert (full.status_code, full.json["code"], full.headers["Retry-After"]) == (429, "wazzup_outbox_full", "1")
    assert "WAZZUP24_ASYNC_BACKLOG" in full.json["message"] and len(_all_messages(helpdesk)) == 3
    again = send(chat, text="m0", headers={**ASYNC, "Idempotency-Key": "burst-0"})  # stored already: replayed
    assert (again.status_code, again.json["id"]) == (202, first.json["id"])
    other = make_wazzup_chat(wazzup_chat_id="79000000001", phone="79000000001")
    assert send(other, text="an agent's answer").status_code == 201  # the default send is never refused so
    work()
    assert send(chat, text="room again", headers=ASYNC).status_code == 202
    assert len(sent_bodies()) == 4


def test_an_async_send_to_a_chat_whose_channel_needs_a_person_reports_it_on_the_message(
        send, make_wazzup_chat, wazzup_api, helpdesk, clock, work):
    """As README says: 202 once stored (not the default's 409), then failed with what to do, nothing sent."""
    from wazzup_plugin.state import get_state

    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id="tg-channel", transport="tgapi", plain_id="shop_bot", state="blocked", updated_at=clock()))
    chat = make_wazzup_chat(wazzup_chat_id="123456789", channel_id="tg-channel", chat_type="telegram")
    result = send(chat, {"text": "hello"}, headers=ASYNC)
    assert (result.status_code, result.json["status"]) == (202, "queued")
    work()
    assert _status(helpdesk, result.json["id"]) == ("failed", "CHANNEL_NEEDS_ATTENTION")
    assert len(wazzup_api.calls) == 0
