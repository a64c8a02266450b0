"""POST /api/chats/{chat}/wazzup24/send: store first, send with our crmMessageId, answer honestly."""

import json

import pytest
import requests
import sqlalchemy as sa

from wazzup_plugin.state import get_state

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"


@pytest.fixture
def chat(make_wazzup_chat):
    return make_wazzup_chat()


def test_accepted_send_answers_201_with_the_wazzup_id(client, auth, send, chat, wazzup_api, sent_bodies,
                                                      wazzup_url, api_payload, channel_id, agent):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("message_created"), status=201)
    result = send(chat, {"text": "Hello, Ivan"})
    assert result.status_code == 201
    message = result.json
    assert (message["status"], message["direction"], message["wazzup_message_id"]) == ("accepted", "out", WAZZUP_ID)
    assert message["accepted_at"] and message["queued_at"] and message["author_name"] == "Alice Agent"
    [body] = sent_bodies()
    assert body == {"channelId": channel_id, "chatType": "whatsapp", "chatId": "79011112233", "text": "Hello, Ivan",
                    "crmMessageId": message["wazzup_crm_message_id"], "crmUserId": str(agent["id"])}
    # The host's own message list shows the same message with the plugin's fields.
    listed = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json["items"]
    assert [(m["id"], m["status"], m["wazzup_message_id"]) for m in listed] == [(message["id"], "accepted", WAZZUP_ID)]


def test_the_message_is_stored_before_wazzup_is_called(send, chat, wazzup_api, wazzup_url, helpdesk):
    seen = {}

    def callback(request):
        m = helpdesk.tables.messages
        with helpdesk.db.read() as conn:
            seen["rows"] = conn.execute(sa.select(m.c.status, m.c.text)).all()
        return 201, {}, json.dumps({"messageId": WAZZUP_ID})

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=callback)
    assert send(chat, {"text": "stored first"}).status_code == 201
    assert [tuple(r) for r in seen["rows"]] == [("queued", "stored first")]


def test_content_uri_is_sent_with_a_guessed_type_and_name(send, chat, wazzup_api, sent_bodies, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"content_uri": "https://files.example.com/a/invoice%20May.pdf"})
    assert result.status_code == 201
    assert (result.json["type"], result.json["content_name"]) == ("document", "invoice May.pdf")
    assert sent_bodies()[0]["contentUri"] == "https://files.example.com/a/invoice%20May.pdf"
    assert "text" not in sent_bodies()[0]


def test_reply_to_sends_the_quoted_messages_wazzup_id(send, chat, wazzup_api, sent_bodies, wazzup_url,
                                                      make_message, helpdesk):
    quoted = make_message(chat, "question?")
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["messages"]).values(
            message_id=quoted, chat_id=chat, wazzup_message_id="in-1", is_echo=False))
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(chat, {"text": "answer", "reply_to": quoted}).status_code == 201
    assert sent_bodies()[0]["refMessageId"] == "in-1"


@pytest.mark.parametrize("body, field", [
    ({}, "_schema"),
    ({"text": "a", "content_uri": "https://x.example/a.png"}, "_schema"),
    ({"text": "x" * 10_001}, "text"),
    ({"text": "   "}, "text"),
    ({"content_uri": "ftp://x.example/a.png"}, "content_uri"),
    ({"content_uri": "javascript:alert(1)"}, "content_uri"),
    ({"text": "a", "reply_to": "7"}, "reply_to"),
    ({"text": "a", "reply_to": 999999}, "reply_to"),
    ({"text": "a", "reply_to": 2**31}, "reply_to"),  # past the id column: a 500 on PostgreSQL before
    ({"text": "a\x00b"}, "text"),
    ({"content_uri": "https://x.example/a.pdf", "content_name": "a\x00b.pdf"}, "content_name"),
])
def test_bad_bodies_are_422_with_fields_and_nothing_stored(send, chat, wazzup_api, helpdesk, body, field):
    result = send(chat, body)
    assert result.status_code == 422
    assert result.json["status"] == 422 and field in result.json["fields"]
    assert len(wazzup_api.calls) == 0
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0


@pytest.mark.parametrize("raw, field", [
    ('{"text": "\\ud800"}', "text"),
    ('{"content_uri": "https://x.example/\\udfff.pdf"}', "content_uri"),
    ('{"content_uri": "https://x.example/a.pdf", "content_name": "a\\ud800"}', "content_name"),
])
def test_a_lone_surrogate_is_422_naming_the_field_and_nothing_stored(client, auth, chat, wazzup_api, helpdesk, raw,
                                                                   field):
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/send", body=raw,
                                  headers={**auth, "Content-Type": "application/json"})
    assert result.status_code == 422, result.text
    assert "lone surrogates" in result.json["fields"][field][0]
    assert len(wazzup_api.calls) == 0
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0


def test_a_link_whose_name_decodes_to_a_nul_is_sent_with_the_nul_left_out(send, chat, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"content_uri": "https://files.example.com/inv%00oice.pdf"})
    assert result.status_code == 201 and result.json["content_name"] == "invoice.pdf"


def test_a_body_nested_deeper_than_json_goes_is_400(client, auth, chat, wazzup_api):
    body = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/send", body=body,
                                  headers={**auth, "Content-Type": "application/json"})
    assert result.status_code == 400 and result.json["code"] == "invalid_body"
    assert len(wazzup_api.calls) == 0


def test_text_limit_counts_code_points_not_bytes(send, chat, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(chat, {"text": "ж" * 9_999 + "😀"}).status_code == 201
    assert send(chat, {"text": "😀" * 10_001}).status_code == 422


def test_not_json_is_400(client, auth, chat):
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/send", body="{nope",
                                  headers={**auth, "Content-Type": "application/json"})
    assert result.status_code == 400
    assert result.json["code"] == "invalid_body"


@pytest.mark.parametrize("content_type, body", [
    ("application/x-www-form-urlencoded", "text=hello+from+a+form"),
    ("multipart/form-data; boundary=b", '--b\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--b--\r\n'),
    ("text/plain", '{"text": "hello"}'),
    ("application/json; charset=latin-1", '{"text": "hello"}'),
])
def test_a_send_that_is_not_json_in_utf8_is_415_and_stores_and_sends_nothing(client, auth, chat, helpdesk, wazzup_api,
                                                                             wazzup_url, content_type, body):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/send", body=body,
                                  headers={**auth, "Content-Type": content_type})
    assert (result.status_code, result.json["code"]) == (415, "unsupported_media_type"), result.text
    assert set(result.json) == {"status", "code", "message"} and "application/json" in result.json["message"]
    assert len(wazzup_api.calls) == 0
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0


def test_a_missing_chat_is_chat_not_found_on_send_and_resend_as_on_the_host_routes(client, auth, send):
    host = client.simulate_get("/api/chats/4242", headers=auth).json["code"]
    sent = send(4242, {"text": "a"})
    resent = client.simulate_post("/api/chats/4242/wazzup24/messages/1/resend", headers=auth)
    assert (sent.status_code, resent.status_code) == (404, 404)
    assert host == sent.json["code"] == resent.json["code"] == "chat_not_found"


def test_resending_a_message_that_is_not_in_the_chat_is_message_not_found(client, auth, chat, make_wazzup_chat,
                                                                          make_message):
    other = make_wazzup_chat(wazzup_chat_id="79015556677", phone="79015556677")
    message_id = make_message(other, "elsewhere", direction="out", status="failed")
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{message_id}/resend", headers=auth)
    assert (result.status_code, result.json["code"]) == (404, "message_not_found")


def test_unknown_chat_is_404_and_another_type_is_409(send, make_chat):
    assert send(4242, {"text": "a"}).status_code == 404
    internal = make_chat(type="internal")
    result = send(internal, {"text": "a"})
    assert result.status_code == 409
    assert result.json["code"] == "wrong_chat_type"


def test_send_needs_an_agent(client, chat):
    assert client.simulate_post(f"/api/chats/{chat}/wazzup24/send", json={"text": "a"}).status_code == 401


@pytest.mark.parametrize("fixture, status, code", [
    ("error_bad_contact", 422, "BAD_CONTACT"),
    ("error_text_too_long", 422, "MESSAGE_TEXT_TOO_LONG"),
    ("error_invalid_message_data", 422, "INVALID_MESSAGE_DATA"),
    ("error_channel_not_found", 409, "CHANNEL_NOT_FOUND"),
])
def test_permanent_refusal_keeps_the_message_failed_and_answers_4xx_with_wazzups_code(
        send, chat, wazzup_api, wazzup_url, api_payload, outbox_row, fixture, status, code):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload(fixture), status=400)
    result = send(chat, {"text": "hi"})
    assert result.status_code == status
    assert result.json["wazzup_code"] == code
    assert result.json["code"] == "wazzup_" + code.lower()
    assert result.json["message"]
    stored = result.json["data"]["message"]
    assert (stored["id"], stored["status"], stored["error_code"]) == (result.json["message_id"], "failed", code)
    assert stored["error_text"] and stored["failed_at"]
    assert outbox_row(stored["id"]).state == "done"


@pytest.mark.parametrize("body", [None, {"error": "BAD_CONTACT"}, {"error": "BAD_CONTACT", "description": "No such number"}])
def test_a_refusal_names_wazzups_code_once(send, chat, wazzup_api, wazzup_url, body):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=body, status=400)
    result = send(chat, {"text": "hi"})
    code = result.json["wazzup_code"]
    assert result.json["message"].count(code) == 1, result.json["message"]


def test_wazzup_refusing_our_key_is_502_not_401(send, chat, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", status=401)
    result = send(chat, {"text": "hi"})
    assert result.status_code == 502
    assert result.json["code"] == "wazzup_auth_failed"
    assert "WAZZUP24_API_KEY" in result.json["message"]
    assert result.json["data"]["message"]["status"] == "failed"


@pytest.mark.parametrize("failure", [requests.ConnectionError("refused"), requests.ReadTimeout("hung")])
def test_transient_failure_answers_202_and_leaves_it_queued_for_the_worker(
        send, chat, wazzup_api, wazzup_url, helpdesk, outbox_row, failure):
    wazzup_api.post(f"{wazzup_url}/v3/message", body=failure)
    result = send(chat, {"text": "hi"})
    assert result.status_code == 202
    assert result.json["status"] == "queued"
    row = outbox_row(result.json["id"])
    assert (row.state, row.lease_owner, row.attempts) == ("pending", None, 1)
    assert row.next_attempt_at > helpdesk.clock()


def test_a_send_while_another_send_to_the_chat_is_in_flight_is_sent_at_once_too(send, chat, wazzup_api, wazzup_url):
    """Two agents answer one chat at the same moment: the second does not queue behind the first's live
    call (only behind a message waiting for the worker), so both are sent and both answer 201."""
    second = []

    def wazzup(request):
        body = json.loads(request.body)
        if body["text"] == "first" and not second:
            second.append(send(chat, text="second"))  # arrives while the first call is still at Wazzup
        return 201, {}, json.dumps({"messageId": f"wz-{body['crmMessageId']}", "chatId": "79011112233"})

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=wazzup)
    first = send(chat, text="first")
    assert (first.status_code, second[0].status_code) == (201, 201), second[0].text
    assert [c.request.body and json.loads(c.request.body)["text"] for c in wazzup_api.calls] == ["second", "first"]


def test_429_answers_202(send, chat, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", status=429, headers={"Retry-After": "3"})
    assert send(chat, {"text": "hi"}).status_code == 202


def test_repeated_crm_message_id_means_accepted(send, chat, wazzup_api, wazzup_url, api_payload):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_repeated_camel"), status=400)
    result = send(chat, {"text": "hi"})
    assert result.status_code == 201
    assert (result.json["status"], result.json["wazzup_message_id"]) == ("accepted", None)


@pytest.mark.parametrize("answer", ['{"messageId": "%s"}' % ("x" * 65), '{"messageId": "a\\u0000b"}',
                                    '{"messageId": "\\ud800"}'])
def test_an_accepted_answer_with_an_id_we_cannot_store_is_accepted_without_it(
        send, chat, wazzup_api, wazzup_url, answer):
    """Wazzup took the message: recording its odd id must not turn that into an error after the fact."""
    wazzup_api.post(f"{wazzup_url}/v3/message", body=answer, status=201, content_type="application/json")
    result = send(chat, {"text": "hi"}, headers={"Idempotency-Key": "odd-id"})
    assert result.status_code == 201, result.text
    assert (result.json["status"], result.json["wazzup_message_id"]) == ("accepted", None)
    assert send(chat, {"text": "hi"}, headers={"Idempotency-Key": "odd-id"}).json == result.json


def test_a_failure_recording_wazzups_answer_answers_202_and_frees_the_idempotency_key(
        send, chat, wazzup_api, sent_bodies, wazzup_url, helpdesk, caplog, monkeypatch):
    """The message is stored and went out: a 500 would invite a second send by hand. The worker
    settles it later (the same crmMessageId is answered REPEATED_CRM_MESSAGE_ID)."""
    from wazzup_plugin.outbound import outbox

    def fails(*args, **kwargs):
        raise RuntimeError("a bug while recording the answer")

    monkeypatch.setattr(outbox, "_record", fails)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(chat, {"text": "hi"}, headers={"Idempotency-Key": "bug-1"})
    assert result.status_code == 202 and result.json["status"] == "queued"
    assert "the outbox worker will retry it" in caplog.text
    again = send(chat, {"text": "hi"}, headers={"Idempotency-Key": "bug-1"})
    assert (again.status_code, again.json["id"]) == (202, result.json["id"])
    assert len(sent_bodies()) == 1


def test_a_key_whose_request_died_answers_the_messages_fate_once_its_lease_runs_out(
        send, chat, wazzup_api, sent_bodies, wazzup_url, outbox_ctx, clock, monkeypatch):
    """The process serving the request was killed before it answered: the key must not say
    'in progress' for a day. While the request's lease lasts it may still be running; after it,
    the message's own state is the answer."""
    from wazzup_plugin.outbound import outbox, worker

    def killed(*args, **kwargs):
        raise SystemExit("the worker process was killed")

    with monkeypatch.context() as patched:
        patched.setattr(outbox, "attempt", killed)
        with pytest.raises(SystemExit):
            send(chat, {"text": "hi"}, headers={"Idempotency-Key": "died-1"})
    assert send(chat, {"text": "hi"}, headers={"Idempotency-Key": "died-1"}).status_code == 409
    clock.advance(outbox.lease_seconds(outbox_ctx) + 1)
    waiting = send(chat, {"text": "hi"}, headers={"Idempotency-Key": "died-1"})
    assert (waiting.status_code, waiting.json["status"]) == (202, "queued")
    # The dead request may have called Wazzup, and its dedupe window is over: the worker settles
    # the message as unknown rather than send it again, and the key says so.
    worker.run_once(outbox_ctx, worker.worker_id())
    settled = send(chat, {"text": "hi"}, headers={"Idempotency-Key": "died-1"})
    assert (settled.status_code, settled.json["id"], settled.json["status"]) == (202, waiting.json["id"], "unknown")
    assert len(sent_bodies()) == 0


def test_idempotency_key_repeat_returns_the_first_result_and_sends_nothing(
        send, chat, wazzup_api, sent_bodies, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first = send(chat, {"text": "once"}, headers={"Idempotency-Key": "k-1"})
    again = send(chat, {"text": "once"}, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json == first.json
    assert len(sent_bodies()) == 1
    reused = send(chat, {"text": "something else"}, headers={"Idempotency-Key": "k-1"})
    assert (reused.status_code, reused.json["code"]) == (422, "idempotency_key_reused")


def test_idempotency_repeat_of_a_refusal_is_the_same_refusal(send, chat, wazzup_api, sent_bodies, wazzup_url,
                                                              api_payload):
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    first = send(chat, {"text": "x"}, headers={"Idempotency-Key": "k-2"})
    again = send(chat, {"text": "x"}, headers={"Idempotency-Key": "k-2"})
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.json == first.json
    assert len(sent_bodies()) == 1


def test_idempotency_keys_are_scoped_per_agent(send, chat, wazzup_api, sent_bodies, wazzup_url, helpdesk):
    from host_stub.auth import create_agent, create_token

    with helpdesk.db.write() as tx:
        bob = create_agent(tx.conn, "bob", "correct horse battery", "Bob", helpdesk.clock())
        bob_token = create_token(tx.conn, bob, "t", helpdesk.clock())
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "other-id"}, status=201)
    assert send(chat, {"text": "x"}, headers={"Idempotency-Key": "same"}).status_code == 201
    bobs = send(chat, {"text": "x"}, headers={"Authorization": f"Bearer {bob_token}", "Idempotency-Key": "same"})
    assert bobs.status_code == 201
    assert len(sent_bodies()) == 2


def test_a_webhook_status_that_came_first_is_never_downgraded(send, chat, wazzup_api, wazzup_url, helpdesk):
    """The status webhook can beat the 201: the send must not move 'sent' back to 'accepted'."""
    m = helpdesk.tables.messages

    def callback(request):
        with helpdesk.db.write() as tx:
            tx.conn.execute(sa.update(m).values(status="sent", sent_at=helpdesk.clock(), change_seq=tx.change_seq))
        return 201, {}, json.dumps({"messageId": WAZZUP_ID})

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=callback)
    result = send(chat, {"text": "fast"})
    assert result.status_code == 201
    assert (result.json["status"], result.json["wazzup_message_id"]) == ("sent", WAZZUP_ID)


def test_not_configured_is_503_and_nothing_is_stored(send, chat, helpdesk, wazzup_api):
    from wazzup_plugin.outbound.context import outbound

    outbound(helpdesk).client = None  # as if WAZZUP24_API_KEY were unset
    result = send(chat, {"text": "hi"})
    assert (result.status_code, result.json["code"]) == (503, "wazzup_not_configured")
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0


def test_outbound_routes_are_in_the_openapi_document(client):
    from openapi_spec_validator import validate

    document = client.simulate_get("/api/openapi.json").json
    validate(document)
    send_op = document["paths"]["/api/chats/{chat_id}/wazzup24/send"]["post"]
    assert set(send_op["responses"]) >= {"201", "202", "400", "404", "409", "413", "415", "422", "502", "503"}
    assert "requestBody" in send_op
    for path in ("/api/chats/{chat_id}/wazzup24/messages/{message_id}/resend", "/api/chats/{chat_id}/wazzup24/info",
                 "/api/wazzup24/connection"):
        assert path in document["paths"]


def test_idempotency_keys_are_forgotten_after_a_day(send, chat, wazzup_api, wazzup_url, outbox_ctx, clock):
    from wazzup_plugin.outbound.outbox import purge_idempotency_keys

    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-next-day"}, status=201)
    send(chat, {"text": "a"}, headers={"Idempotency-Key": "daily"})
    assert purge_idempotency_keys(outbox_ctx) == 0
    clock.advance(hours=25)
    assert purge_idempotency_keys(outbox_ctx) == 1
    assert send(chat, {"text": "a"}, headers={"Idempotency-Key": "daily"}).json["wazzup_message_id"] == "wz-next-day"


def test_old_idempotency_keys_are_forgotten_oldest_first_in_bounded_batches(send, chat, wazzup_api, wazzup_url,
                                                                            outbox_ctx, clock, helpdesk):
    from wazzup_plugin.outbound.outbox import purge_idempotency_keys
    from wazzup_plugin.state import get_state

    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    for n in range(5):
        assert send(chat, {"text": f"m{n}"}, headers={"Idempotency-Key": f"key-{n}"}).status_code == 201
        clock.advance(60)
    clock.advance(hours=24, seconds=-150)  # the first three are a day old, the last two not yet
    t = get_state(helpdesk).tables["idempotency"]

    def kept():
        with helpdesk.db.read() as conn:
            return sorted(conn.execute(sa.select(t.c.key)).scalars())

    assert purge_idempotency_keys(outbox_ctx, batch=2, max_batches=1) == 2
    assert kept() == ["key-2", "key-3", "key-4"]
    assert purge_idempotency_keys(outbox_ctx, batch=2) == 1
    assert kept() == ["key-3", "key-4"]


@pytest.mark.parametrize("uri", ["http://[unclosed/a.png", "https://example.com/a b.png", "https://example.com/a.png\n"])
def test_send_refuses_a_link_that_is_not_a_clean_http_url_with_422(send, chat, uri):
    result = send(chat, {"content_uri": uri})
    assert result.status_code == 422
    assert "content_uri" in result.json["fields"]


def test_a_wazzup_id_that_already_belongs_to_a_stored_message_is_logged_and_both_messages_are_kept(
        client, auth, send, chat, wazzup_api, wazzup_url, make_message, helpdesk, caplog):
    earlier = make_message(chat, "a customer's message")
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["messages"]).values(
            message_id=earlier, chat_id=chat, wazzup_message_id=WAZZUP_ID, is_echo=False))
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    with caplog.at_level("WARNING", logger="wazzup_plugin"):
        result = send(chat, {"text": "answer"})
    assert result.status_code == 201
    assert (result.json["status"], result.json["wazzup_message_id"]) == ("accepted", None)
    listed = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json["items"]
    assert [(m["id"], m["wazzup_message_id"]) for m in listed] == [(earlier, WAZZUP_ID), (result.json["id"], None)]
    [warning] = [r for r in caplog.records if "already belongs to another stored message" in r.getMessage()]
    assert warning.context == {"message_id": result.json["id"], "wazzup_message_id": WAZZUP_ID,
                               "other_message_id": earlier}


@pytest.mark.parametrize("accepted_by", ["the send", "the worker"])
@pytest.mark.parametrize("change, preview", [
    ({"isEdited": True, "text": "my card number is ****"}, "my card number is ****"),
    ({"isDeleted": True}, "[Deleted message]")])
def test_a_sent_message_edited_or_deleted_from_the_phone_leaves_the_chats_preview(
        client, auth, send, chat, wazzup_api, wazzup_url, deliver, channel_id, outbox_ctx, clock, accepted_by,
        change, preview):
    """The chat's last message is the agent's send; its text must not stay in every agent's chat list
    once it is changed or deleted from the phone (Wazzup delivers an isEcho copy flagged so)."""
    from wazzup_plugin.outbound import worker

    if accepted_by == "the worker":
        wazzup_api.post(f"{wazzup_url}/v3/message", status=503)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    sent = send(chat, {"text": "my card number is 4111 1111"})
    if accepted_by == "the worker":
        assert sent.status_code == 202
        clock.advance(5)
        worker.run_once(outbox_ctx, worker.worker_id())
    shown = client.simulate_get(f"/api/chats/{chat}", headers=auth).json
    assert shown["last_message_preview"] == "my card number is 4111 1111"
    message = [m for m in client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json["items"]
               if m["id"] == sent.json["id"]][0]
    assert (message["status"], message["wazzup_message_id"]) == ("accepted", WAZZUP_ID)
    copy = {"messageId": WAZZUP_ID, "channelId": channel_id, "chatType": "whatsapp", "chatId": "79011112233",
            "dateTime": "2026-11-26T12:01:00.000Z", "type": "text", "isEcho": True, "status": "sent",
            "text": "my card number is 4111 1111", "oldInfo": {"oldText": "my card number is 4111 1111"}, **change}
    assert deliver({"messages": [copy]}).status_code == 200
    listed = client.simulate_get("/api/chats", params={"changed_since": shown["change_seq"]}, headers=auth)
    assert [c["last_message_preview"] for c in listed.json["items"]] == [preview]


# ---------------------------------------------------------------- text limits per messenger


def _channel(helpdesk, clock, channel_id, transport, state="active"):
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id=channel_id, transport=transport, plain_id="79865784457", state=state, updated_at=clock()))


@pytest.mark.parametrize("chat_type, limit, messenger", [
    ("telegram", 4096, "Telegram"), ("telegroup", 4096, "Telegram"), ("max", 4096, "MAX"),
    ("maxgroup", 4096, "MAX"), ("viber", 6999, "Viber"), ("instagram", 1000, "Instagram"), ("vk", 1000, "VK"),
    ("avito", 1000, "Avito"), ("whatsgroup", 10_000, "WhatsApp"), ("somethingnew", 10_000, "WhatsApp"),
])
def test_a_text_over_the_chats_messenger_limit_is_422_naming_it_and_nothing_is_stored_or_sent(
        send, make_wazzup_chat, wazzup_api, wazzup_url, helpdesk, chat_type, limit, messenger):
    chat = make_wazzup_chat(wazzup_chat_id="123456789", chat_type=chat_type)
    result = send(chat, {"text": "😀" * (limit + 1)})
    assert result.status_code == 422 and result.json["code"] == "invalid_body"
    if limit < 10_000:  # over 10,000 the body's own limit answers first
        assert result.json["fields"]["text"] == [
            f"at most {limit:,} characters in a {messenger} chat; this text has {limit + 1:,}"]
    assert len(wazzup_api.calls) == 0
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(chat, {"text": "ж" * limit}).status_code == 201


def test_a_whatsapp_chat_on_a_waba_channel_takes_1024_characters(send, make_wazzup_chat, wazzup_api, wazzup_url,
                                                                 helpdesk, clock):
    _channel(helpdesk, clock, "waba-1", "wapi")
    chat = make_wazzup_chat(channel_id="waba-1")
    result = send(chat, {"text": "x" * 1025})
    assert result.status_code == 422
    assert result.json["fields"]["text"] == ["at most 1,024 characters in a WhatsApp Business (WABA) chat; "
                                             "this text has 1,025"]
    assert len(wazzup_api.calls) == 0
    # A WhatsApp chat whose channel's transport is not known keeps WhatsApp's 10,000.
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(make_wazzup_chat(wazzup_chat_id="79015556677"), {"text": "x" * 1025}).status_code == 201


def test_a_resend_of_a_text_too_long_for_the_chats_messenger_is_422_and_sends_nothing(
        client, auth, make_wazzup_chat, make_message, wazzup_api):
    chat = make_wazzup_chat(wazzup_chat_id="123456789", chat_type="telegram")
    message_id = make_message(chat, "x" * 5000, direction="out", status="failed")
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{message_id}/resend", headers=auth)
    assert result.status_code == 422 and "4,096" in result.json["fields"]["text"][0]
    assert len(wazzup_api.calls) == 0


@pytest.mark.parametrize("code, words", [("MESSAGES_TOO_LONG_TELEGRAM", "Telegram allows (4,096 characters)"),
                                         ("MESSAGES_TOO_LONG_WABA", "(1,024 characters)"),
                                         ("MESSAGES_TOO_LONG_INSTAGRAM", "Instagram allows (1,000 characters)"),
                                         ("MESSAGES_TOO_LONG_VIBER", "Viber allows (6,999 characters)")])
def test_wazzups_too_long_codes_are_explained_in_plain_words(send, make_wazzup_chat, wazzup_api, wazzup_url, code,
                                                             words):
    chat = make_wazzup_chat(wazzup_chat_id="123456789", chat_type="telegram")
    wazzup_api.post(f"{wazzup_url}/v3/message", status=400, json={
        "status": 400, "requestId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "error": code, "description": "too long"})
    result = send(chat, {"text": "hi"})
    assert (result.status_code, result.json["wazzup_code"]) == (422, code)
    assert words in result.json["data"]["message"]["error_text"]
    assert words in result.json["message"]


def test_the_send_answer_is_the_message_exactly_as_the_host_lists_it(client, auth, send, chat, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    answered = send(chat, {"text": "same JSON"}).json
    [listed] = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json["items"]
    assert answered == listed
    assert {"wazzup_message_id", "wazzup_crm_message_id", "wazzup_media_state", "wazzup_resent_as"} <= set(answered)


def test_a_repeat_after_the_worker_sent_a_late_attempts_message_reads_its_fate(
        send, make_wazzup_chat, wazzup_api, wazzup_url, api_payload, sent_bodies, outbox_ctx, clock, monkeypatch):
    """The request reached its attempt only after its lease ran out, and the worker had sent the
    message meanwhile (the chat's channel comes from Wazzup's list, so the storing commit recorded no
    attempt): the request's attempt does nothing, and a repeat answers the message as it is now
    (201, accepted), not the request's own 202."""
    from wazzup_plugin.outbound import outbox, worker

    chat = make_wazzup_chat(channel_id=None)
    real_attempt = outbox.attempt

    def late(ctx, message_id, owner, as_written=None):
        monkeypatch.setattr(outbox, "attempt", real_attempt)  # the worker's own attempt is on time
        clock.advance(outbox.lease_seconds(outbox_ctx) + 1)
        worker.run_once(outbox_ctx, worker.worker_id())
        return real_attempt(ctx, message_id, owner, as_written=as_written)

    monkeypatch.setattr(outbox, "attempt", late)
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"), status=200)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    first = send(chat, {"text": "late"}, headers={"Idempotency-Key": "late-1"})
    assert (first.status_code, first.json["status"]) == (202, "accepted")
    again = send(chat, {"text": "late"}, headers={"Idempotency-Key": "late-1"})
    assert (again.status_code, again.json["id"], again.json["status"]) == (201, first.json["id"], "accepted")
    assert len(sent_bodies()) == 1
