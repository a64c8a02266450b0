"""Resending failed/unknown messages, and choosing the channel a message goes out through."""

import dataclasses
import json

import pytest
import requests
import sqlalchemy as sa

from wazzup_plugin.outbound.channels import ChannelSelectionError, select_channel


def resend(client, auth, chat_id, message_id, headers=None):
    return client.simulate_post(f"/api/chats/{chat_id}/wazzup24/messages/{message_id}/resend",
                                headers={**auth, **(headers or {})})


def test_resend_of_a_failed_message_is_a_new_attempt_with_a_new_crm_id(
        client, auth, send, make_wazzup_chat, wazzup_api, sent_bodies, wazzup_url, api_payload):
    chat = make_wazzup_chat()
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    failed = send(chat, {"text": "try me"}).json["data"]["message"]
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": "wz-2"}, status=201)
    result = resend(client, auth, chat, failed["id"])
    assert result.status_code == 201
    assert (result.json["status"], result.json["text"], result.json["wazzup_message_id"]) == ("accepted", "try me", "wz-2")
    assert result.json["id"] != failed["id"]
    first, second = sent_bodies()
    assert first["crmMessageId"] != second["crmMessageId"]
    # The original keeps its history; it can be resent only once.
    again = resend(client, auth, chat, failed["id"])
    assert (again.status_code, again.json["code"]) == (409, "already_resent")
    assert len(sent_bodies()) == 2


def test_resend_of_an_unknown_message(client, auth, make_wazzup_chat, make_message, wazzup_api, wazzup_url):
    chat = make_wazzup_chat()
    lost = make_message(chat, "lost?", direction="out", status="unknown")
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-3"}, status=201)
    result = resend(client, auth, chat, lost)
    assert (result.status_code, result.json["text"]) == (201, "lost?")


def test_a_resent_message_names_its_replacement_and_pollers_see_it_change(
        client, auth, make_wazzup_chat, make_message, wazzup_api, wazzup_url):
    chat = make_wazzup_chat()
    lost = make_message(chat, "lost?", direction="out", status="unknown")
    page = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json
    assert [m["wazzup_resent_as"] for m in page["items"]] == [None]
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-4"}, status=201)
    new_id = resend(client, auth, chat, lost).json["id"]
    changed = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth,
                                  params={"changed_since": page["change_seq"]}).json["items"]
    assert {m["id"]: m["wazzup_resent_as"] for m in changed} == {lost: new_id, new_id: None}


@pytest.mark.parametrize("status, direction", [("accepted", "out"), ("queued", "out"), ("inbound", "in")])
def test_only_failed_or_unknown_outgoing_messages_can_be_resent(client, auth, make_wazzup_chat, make_message,
                                                                 wazzup_api, status, direction):
    chat = make_wazzup_chat()
    message_id = make_message(chat, "x", direction=direction, status=status)
    result = resend(client, auth, chat, message_id)
    assert (result.status_code, result.json["code"]) == (409, "not_resendable")
    assert len(wazzup_api.calls) == 0


@pytest.mark.parametrize("kind", ["geo", "vcard", "unsupported", "something_new"])
def test_a_failed_phone_message_known_only_by_its_placeholder_is_not_resent_as_that_text(
        client, auth, deliver, wazzup_rows, wazzup_api, sent_bodies, kind):
    from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

    echo = incoming_message(channel_id="b96a353b-06f5-4cac-8413-ba1d8e93f981", chat_id="79161234567", text=None,
                            message_id="WZ-phone", is_echo=True)
    echo.pop("text", None)
    # A code a second attempt could get past: only the label stands in the way.
    echo.update(type=kind, status="error", error={"error": "CHANNEL_BLOCKED", "description": "try later"})
    typed = incoming_message(channel_id="b96a353b-06f5-4cac-8413-ba1d8e93f981", chat_id="79161234567",
                             text="typed on the phone", message_id="WZ-typed", is_echo=True)
    typed.update(status="error", error={"error": "CHANNEL_BLOCKED", "description": "try later"})
    deliver(delivery(messages=[echo, typed]))
    failed = wazzup_rows.message("WZ-phone")
    assert (failed["direction"], failed["status"], failed["text"].startswith("[")) == ("out", "failed", True)
    listed = client.simulate_get(f"/api/chats/{failed['chat_id']}/messages", headers=auth).json["items"]
    # The UI offers Resend by this: never for the label, still for a text typed on the phone.
    assert {m["wazzup_message_id"]: m["wazzup_resendable"] for m in listed} == {"WZ-phone": False, "WZ-typed": True}

    result = resend(client, auth, failed["chat_id"], failed["id"])

    assert (result.status_code, result.json["code"]) == (409, "not_resendable")
    assert sent_bodies() == []
    assert len(wazzup_rows.messages()) == 2


def test_resend_of_a_message_in_another_chat_is_404(client, auth, make_wazzup_chat, make_message):
    one, two = make_wazzup_chat(), make_wazzup_chat(wazzup_chat_id="79022223344")
    message_id = make_message(one, "x", direction="out", status="failed")
    assert resend(client, auth, two, message_id).status_code == 404


# ---------------------------------------------------------------- channel selection


def test_the_chats_own_channel_wins(send, make_wazzup_chat, wazzup_api, sent_bodies, wazzup_url, helpdesk):
    chat = make_wazzup_chat(channel_id="chat-channel")
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz"}, status=201)
    assert send(chat).status_code == 201
    assert sent_bodies()[0]["channelId"] == "chat-channel"


def test_a_chat_without_identity_uses_the_setting_then_the_only_active_whatsapp_channel(
        send, make_wazzup_chat, wazzup_api, sent_bodies, wazzup_url, api_payload, helpdesk, channel_id):
    from wazzup_plugin.outbound.context import outbound

    chat = make_wazzup_chat(channel_id=None, phone="+7 (901) 111-22-33")
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz"}, status=201)
    assert send(chat).status_code == 201
    sent = sent_bodies()[0]
    assert (sent["channelId"], sent["chatType"], sent["chatId"]) == (channel_id, "whatsapp", "79011112233")
    ctx = outbound(helpdesk)
    ctx.state.settings = dataclasses.replace(ctx.settings, channel_id="from-setting")
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": "wz-2"}, status=201)
    assert send(chat).status_code == 201
    assert sent_bodies()[-1]["channelId"] == "from-setting"


@pytest.mark.parametrize("fixture, words", [("channels_two_active", "Several active WhatsApp channels"),
                                            ("channels_none_active", "No active WhatsApp channel")])
def test_no_single_channel_is_a_clear_error_naming_the_channels(
        send, make_wazzup_chat, wazzup_api, sent_bodies, wazzup_url, api_payload, fixture, words):
    chat = make_wazzup_chat(channel_id=None)
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload(fixture))
    result = send(chat)
    assert result.status_code == 409
    assert result.json["wazzup_code"] == "CHANNEL_NOT_SELECTED"
    assert words in result.json["message"] and "0b9f6a55-77c2-4f61-8c0e-5d8b2a9e3c10" in result.json["message"]
    assert "WAZZUP24_CHANNEL_ID" in result.json["message"]
    assert result.json["data"]["message"]["status"] == "failed"
    assert sent_bodies() == []


def test_wazzups_channel_list_is_asked_with_no_database_connection_held(
        send, make_wazzup_chat, wazzup_api, wazzup_url, api_payload, helpdesk):
    """A read kept open over a network call pins a pool connection (and on SQLite a WAL snapshot)
    for as long as Wazzup takes to answer."""
    chat = make_wazzup_chat(channel_id=None, phone="+7 (901) 111-22-33")
    held = []

    def channels(request):
        held.append(helpdesk.db.engine.pool.checkedout())
        return 200, {}, json.dumps(api_payload("channels_one_active"))

    wazzup_api.add_callback("GET", f"{wazzup_url}/v3/channels", callback=channels)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz"}, status=201)
    assert send(chat).status_code == 201
    assert held == [0]


def test_an_account_with_many_channels_still_records_the_no_single_channel_failure(
        send, make_wazzup_chat, wazzup_api, wazzup_url, helpdesk):
    """The reason names every channel; with dozens of them it is longer than the columns it is
    recorded in (messages.error_text, the outbox's last_error), which PostgreSQL enforces."""
    chat = make_wazzup_chat(channel_id=None)
    channels = [{"channelId": f"{k:08d}-77c2-4f61-8c0e-5d8b2a9e3c10", "transport": "whatsapp", "state": "active",
                 "plainId": f"7900000{k:04d}"} for k in range(40)]
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=channels)
    result = send(chat)
    assert result.status_code == 409, result.text
    stored = result.json["data"]["message"]
    assert stored["status"] == "failed" and 0 < len(stored["error_text"]) <= 1000


def test_channel_list_unreachable_queues_the_message(send, make_wazzup_chat, wazzup_api, wazzup_url):
    chat = make_wazzup_chat(channel_id=None)
    wazzup_api.get(f"{wazzup_url}/v3/channels", body=requests.ConnectionError("down"))
    result = send(chat)
    assert (result.status_code, result.json["status"]) == (202, "queued")


def test_select_channel_order_and_case_insensitive_states(api_payload):
    never = lambda: pytest.fail("the channel list must not be fetched")  # noqa: E731
    assert select_channel("own", "setting", never).source == "chat"
    assert select_channel(None, "setting", never).channel_id == "setting"
    chosen = select_channel(None, None, lambda: api_payload("channels_one_active"))
    assert (chosen.channel_id, chosen.source) == ("e0629e11-0f67-4567-92a9-2237e91ec1b9", "account")
    with pytest.raises(ChannelSelectionError, match="Several"):  # "ACTIVE" counts as active
        select_channel(None, None, lambda: api_payload("channels_two_active"))
    with pytest.raises(ChannelSelectionError, match="no channels"):
        select_channel(None, None, lambda: [])


def test_the_channel_list_is_cached_between_sends(send, make_wazzup_chat, wazzup_api, wazzup_url,
                                                  api_payload):
    chat = make_wazzup_chat(channel_id=None)
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz"}, status=201)
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-2"}, status=201)
    assert send(chat).status_code == send(chat).status_code == 201
    assert sum(c.request.url.endswith("/v3/channels") for c in wazzup_api.calls) == 1


def test_sent_messages_keep_their_channel_on_retries(send, make_wazzup_chat, wazzup_api, sent_bodies,
                                                     wazzup_url, api_payload, outbox_ctx, clock, helpdesk):
    from wazzup_plugin.outbound import worker

    chat = make_wazzup_chat(channel_id=None)
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.post(f"{wazzup_url}/v3/message", body=requests.ReadTimeout("slow"))
    assert send(chat).status_code == 202
    wazzup_api.replace("GET", f"{wazzup_url}/v3/channels", json=api_payload("channels_two_active"))
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": "wz"}, status=201)
    clock.advance(30)  # the channel cache expired too
    worker.run_once(outbox_ctx, "w")
    first, second = sent_bodies()
    assert first["channelId"] == second["channelId"] and first["crmMessageId"] == second["crmMessageId"]
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(helpdesk.tables.messages.c.status)).scalar() == "accepted"


def _stored_channel(helpdesk, clock, channel_id, state, transport="tgapi", plain_id="shop_bot"):
    from wazzup_plugin.state import get_state

    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id=channel_id, transport=transport, plain_id=plain_id, state=state, updated_at=clock()))


@pytest.mark.parametrize("state, words", [
    ("unauthorized", "sign it in again"), ("UNAUTHORIZED", "sign it in again"), ("disabled", "switch it on"),
    ("notEnoughMoney", "not paid"), ("blocked", "blocked it"), ("rejected", "rejected"),
    ("foreignphone", "another phone number"), ("openElsewhere", "another Wazzup account"),
    ("openelsewhere", "another Wazzup account"),
])
def test_a_send_to_a_chat_whose_channel_needs_a_person_fails_at_once_with_409_and_what_to_do(
        send, make_wazzup_chat, wazzup_api, helpdesk, clock, outbox_row, state, words):
    _stored_channel(helpdesk, clock, "tg-channel", state)
    chat = make_wazzup_chat(wazzup_chat_id="123456789", channel_id="tg-channel", chat_type="telegram")
    result = send(chat, {"text": "hello"})
    assert result.status_code == 409, result.json
    assert (result.json["code"], result.json["wazzup_code"]) == ("wazzup_channel_needs_attention",
                                                                  "CHANNEL_NEEDS_ATTENTION")
    assert result.json["message"].startswith(f"The Telegram channel shop_bot is {state!r} at Wazzup")
    assert words in result.json["message"]
    stored = result.json["data"]["message"]
    assert (stored["status"], stored["error_code"]) == ("failed", "CHANNEL_NEEDS_ATTENTION")
    assert words in stored["error_text"]
    assert outbox_row(stored["id"]).state == "done"  # not retried
    assert len(wazzup_api.calls) == 0


@pytest.mark.parametrize("state", ["init", "qr", "qridle", "phoneUnavailable", "waitForPhone"])
def test_a_send_to_a_chat_whose_channel_waits_for_a_moment_is_tried_as_before(
        send, make_wazzup_chat, wazzup_api, wazzup_url, helpdesk, clock, sent_bodies, state):
    _stored_channel(helpdesk, clock, "tg-channel", state)
    chat = make_wazzup_chat(wazzup_chat_id="123456789", channel_id="tg-channel", chat_type="telegram")
    wazzup_api.post(f"{wazzup_url}/v3/message", status=400, json={
        "status": 400, "requestId": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "error": "MESSAGE_CHANNEL_UNAVAILABLE",
        "description": "Wait a minute"})
    result = send(chat, {"text": "hello"})
    assert (result.status_code, result.json["status"]) == (202, "queued")
    assert [b["channelId"] for b in sent_bodies()] == ["tg-channel"]


def test_a_chat_whose_channel_is_back_to_active_sends_again(send, make_wazzup_chat, wazzup_api, wazzup_url,
                                                            helpdesk, clock):
    from wazzup_plugin.state import get_state

    _stored_channel(helpdesk, clock, "tg-channel", "unauthorized")
    chat = make_wazzup_chat(wazzup_chat_id="123456789", channel_id="tg-channel", chat_type="telegram")
    assert send(chat, {"text": "hello"}).status_code == 409
    t = get_state(helpdesk).tables["channels"]
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.channel_id == "tg-channel").values(state="active"))
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-9"}, status=201)
    assert send(chat, {"text": "hello again"}).status_code == 201


def _resendable(client, auth, chat_id):
    # As JSON says it: true or false, never 1 or 0 (SQLite has no boolean type).
    return {m["id"]: json.dumps(m["wazzup_resendable"])
            for m in client.simulate_get(f"/api/chats/{chat_id}/messages", headers=auth).json["items"]}


@pytest.mark.parametrize("code", ["BAD_CONTACT", "badContact", "HTTP_400", "MESSAGES_TOO_LONG_WABA", "TOO_LONG_TEXT"])
def test_a_message_refused_for_what_it_is_is_not_resendable(client, auth, make_wazzup_chat, make_message, helpdesk,
                                                             code):
    chat = make_wazzup_chat()
    failed = make_message(chat, "x", direction="out", status="failed")
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(helpdesk.tables.messages).where(helpdesk.tables.messages.c.id == failed)
                        .values(error_code=code))
    assert _resendable(client, auth, chat) == {failed: "false"}


@pytest.mark.parametrize("status, code", [("unknown", None), ("failed", "NOT_SENT"), ("failed", "CHANNEL_BLOCKED"),
                                          ("failed", "HTTP_500"), ("failed", "WAZZUP_AUTH"), ("failed", None)])
def test_a_message_that_may_go_through_a_second_time_is_resendable(client, auth, make_wazzup_chat, make_message,
                                                                    helpdesk, status, code):
    chat = make_wazzup_chat()
    message_id = make_message(chat, "x", direction="out", status=status)
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(helpdesk.tables.messages).where(helpdesk.tables.messages.c.id == message_id)
                        .values(error_code=code))
    assert _resendable(client, auth, chat) == {message_id: "true"}


@pytest.mark.parametrize("status, direction", [("accepted", "out"), ("queued", "out"), ("read", "out"),
                                               ("inbound", "in")])
def test_a_message_that_has_not_failed_is_not_resendable(client, auth, make_wazzup_chat, make_message, status,
                                                          direction):
    chat = make_wazzup_chat()
    message_id = make_message(chat, "x", direction=direction, status=status)
    assert _resendable(client, auth, chat) == {message_id: "false"}


def test_a_resent_message_is_no_longer_resendable_and_its_resend_answer_says_so(
        client, auth, make_wazzup_chat, make_message, wazzup_api, wazzup_url):
    chat = make_wazzup_chat()
    lost = make_message(chat, "lost?", direction="out", status="unknown")
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-5"}, status=201)
    answered = resend(client, auth, chat, lost).json
    assert answered["wazzup_resendable"] is False     # accepted
    assert _resendable(client, auth, chat) == {lost: "false", answered["id"]: "false"}


def test_a_send_refused_for_good_answers_with_a_stored_message_that_is_not_resendable(
        send, make_wazzup_chat, wazzup_api, wazzup_url, api_payload):
    chat = make_wazzup_chat()
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("error_bad_contact"), status=400)
    stored = send(chat, {"text": "anyone?"}).json["data"]["message"]
    assert stored["status"] == "failed" and stored["wazzup_resendable"] is False


def test_the_openapi_document_describes_wazzup_resendable_as_a_boolean(client):
    message = client.simulate_get("/api/openapi.json").json["components"]["schemas"]["Message"]
    assert message["properties"]["wazzup_resendable"]["type"] == "boolean"
    assert "Resend" in message["properties"]["wazzup_resendable"]["description"]


def test_wazzup_resendable_is_the_same_when_the_host_loads_it_instead_of_joining_it(helpdesk, make_wazzup_chat,
                                                                                     make_message):
    from wazzup_plugin.fields import message_fields
    from wazzup_plugin.state import get_state

    chat = make_wazzup_chat()
    lost = make_message(chat, "lost?", direction="out", status="unknown")
    read = make_message(chat, "seen", direction="out", status="read")
    field_set = message_fields(get_state(helpdesk).tables, helpdesk.tables.messages)
    with helpdesk.db.read() as conn:
        loaded = field_set.load(conn, [lost, read])
    assert {i: values["wazzup_resendable"] for i, values in loaded.items()} == {lost: True, read: False}
    assert all(type(values["wazzup_resendable"]) is bool for values in loaded.values())
