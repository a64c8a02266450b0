"""The sandbox speaks the documented shapes and codes of the Wazzup API v3 (reference §1-4, §7, §8.2, §8.4)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import responses

from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID, Channel, SandboxConfigError, parse_channels

HOOK = "https://crm.example.test/api/webhook"


def assert_error(result, code, status=400):
    assert result.status_code == status
    body = result.json
    assert body["error"] == code
    assert body["status"] == status
    assert isinstance(body["requestId"], str) and len(body["requestId"]) == 32
    assert isinstance(body["description"], str) and body["description"]
    return body


# ---------------------------------------------------------------- key


def test_missing_or_wrong_key_gets_401_with_json_body(sandbox_client, sandbox_config):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": sandbox_config.api_key}):
        result = sandbox_client.simulate_get("/v3/channels", headers=headers)
        assert result.status_code == 401
        assert result.json["error"] == "UNAUTHORIZED"


def test_401_body_can_be_empty(sandbox_client, sandbox):
    sandbox.update_config({"unauthorized_body": "empty"})
    result = sandbox_client.simulate_post("/v3/message", json={})
    assert result.status_code == 401
    assert result.content == b""


# ---------------------------------------------------------------- channels


def test_channels_is_a_list_of_documented_objects(v3):
    result = v3.get("/v3/channels")
    assert result.status_code == 200
    assert result.json == [{"channelId": DEFAULT_CHANNEL_ID, "transport": "whatsapp",
                            "plainId": "79865784457", "state": "active"}]


def test_channels_and_states_are_configurable(v3, sandbox):
    sandbox.update_config({"channels": "whatsapp:active,wapi:qr:11111111-2222-3333-4444-555555555555:7900,"
                                      "tgapi:openElsewhere"})
    channels = v3.get("/v3/channels").json
    assert [(c["transport"], c["state"]) for c in channels] == [("whatsapp", "active"), ("wapi", "qr"),
                                                                 ("tgapi", "openElsewhere")]
    assert channels[1]["channelId"] == "11111111-2222-3333-4444-555555555555"
    assert channels[1]["plainId"] == "7900"


def test_channels_accept_json_and_refuse_unknown_transports():
    assert parse_channels('[{"channelId": "c1", "transport": "wapi", "state": "active"}]') == (
        Channel("c1", "wapi", "79865784457", "active"),)
    with pytest.raises(SandboxConfigError):
        from wazzup_plugin.sandbox.config import SandboxConfig

        SandboxConfig(channels=(Channel("c1", "fax"),))


# ---------------------------------------------------------------- POST /v3/message


def test_send_answers_201_with_message_id_and_chat_id(v3, sandbox):
    result = v3.send(crmMessageId="crm-1")
    assert result.status_code == 201
    assert set(result.json) == {"messageId", "chatId"}
    assert result.json["chatId"] == "79161234567"
    assert sandbox.received("crm-1")["accepted"] == 1


@pytest.mark.parametrize("fields, bad", [
    ({"channelId": None}, ["channelId"]),
    ({"chatType": "fax"}, ["chatType"]),
    ({"chatId": None}, ["chatId"]),
    ({"chatId": "+7 916 123-45-67"}, ["chatId"]),
    ({"text": 5}, ["text"]),
    ({"text": None, "contentUri": "ftp://x/y.png"}, ["contentUri"]),
    ({"crmMessageId": 17}, ["crmMessageId"]),
    ({"channelId": None, "chatType": None}, ["channelId", "chatType"]),
])
def test_invalid_message_data_names_the_fields(v3, fields, bad):
    body = assert_error(v3.send(**fields), "INVALID_MESSAGE_DATA")
    assert body["data"] == {"fields": bad}


def test_a_body_that_is_not_a_json_object_is_invalid_message_data(v3):
    for raw in (b"not json", b"[1, 2]"):
        result = v3.post("/v3/message", body=raw)
        assert_error(result, "INVALID_MESSAGE_DATA")


def test_text_and_content_together_are_refused(v3):
    assert_error(v3.send(contentUri="https://files.example.test/a.png"), "MESSAGE_ONLY_TEXT_OR_CONTENT")


def test_nothing_to_send_and_blank_text_are_refused(v3):
    assert_error(v3.send(text=None), "MESSAGE_NOTHING_TO_SEND")
    assert_error(v3.send(text="  \n"), "MESSAGES_TEXT_CAN_NOT_BE_BLANK")


def test_text_limit_is_10000_code_points(v3):
    assert v3.send(text="ж" * 10_000).status_code == 201
    assert v3.send(text="😀" * 10_000).status_code == 201
    assert_error(v3.send(text="ж" * 10_001), "MESSAGE_TEXT_TOO_LONG")


@pytest.mark.parametrize("transport, chat_type, chat_id, limit, code", [
    ("tgapi", "telegram", "123456789", 4096, "MESSAGES_TOO_LONG_TELEGRAM"),
    ("tgapi", "telegroup", "-100123", 4096, "MESSAGES_TOO_LONG_TELEGRAM"),
    ("viber", "viber", "79161234567", 6999, "MESSAGES_TOO_LONG_VIBER"),
    ("instagram", "instagram", "shop.account", 1000, "MESSAGES_TOO_LONG_INSTAGRAM"),
    ("vk", "vk", "12345", 1000, "MESSAGES_TOO_LONG_VK"),
    ("avito", "avito", "12345", 1000, "MESSAGES_TOO_LONG_AVITO"),
    ("max", "max", "12345", 4096, "MESSAGE_TEXT_TOO_LONG"),
    ("wapi", "whatsapp", "79161234567", 1024, "MESSAGES_TOO_LONG_WABA"),
    ("whatsapp", "whatsgroup", "120363040000000000", 10_000, "MESSAGE_TEXT_TOO_LONG"),
])
def test_each_messenger_refuses_a_text_over_its_own_limit_with_its_code(v3, sandbox, transport, chat_type, chat_id,
                                                                          limit, code):
    sandbox.update_config({"channels": [{"channelId": "ch-1", "transport": transport}]})
    assert v3.send(channelId="ch-1", chatType=chat_type, chatId=chat_id, text="ж" * limit).status_code == 201
    body = assert_error(v3.send(channelId="ch-1", chatType=chat_type, chatId=chat_id, text="😀" * (limit + 1)), code)
    assert body["data"] == {"maxLength": limit}


def test_unknown_channel_is_channel_not_found(v3):
    body = assert_error(v3.send(channelId="00000000-0000-0000-0000-000000000000"), "CHANNEL_NOT_FOUND")
    assert body["data"] == {"channelId": "00000000-0000-0000-0000-000000000000"}


def test_chat_type_of_another_transport_is_wrong_transport(v3, sandbox):
    sandbox.update_config({"channels": [{"channelId": "tg-1", "transport": "telegram"},
                                        {"channelId": DEFAULT_CHANNEL_ID, "transport": "whatsapp"}]})
    body = assert_error(v3.send(channelId="tg-1"), "WRONG_TRANSPORT")
    assert body["data"] == {"channelId": "tg-1", "transport": "telegram", "chatType": "whatsapp"}


@pytest.mark.parametrize("state, code", [("qr", "MESSAGE_CHANNEL_UNAVAILABLE"), ("disabled", "CHANNEL_BLOCKED"),
                                         ("notEnoughMoney", "CHANNEL_NO_MONEY"),
                                         ("phoneUnavailable", "MESSAGE_CHANNEL_UNAVAILABLE")])
def test_a_channel_that_is_not_active_refuses_sends(v3, sandbox, state, code):
    sandbox.update_config({"channels": f"whatsapp:{state}"})
    assert_error(v3.send(), code)


def test_repeated_crm_message_id_within_60_seconds_is_refused_then_accepted_again(v3, sandbox, clock):
    assert v3.send(crmMessageId="crm-7").status_code == 201
    clock.advance(59)
    body = assert_error(v3.send(crmMessageId="crm-7"), "REPEATED_CRM_MESSAGE_ID")
    assert body["data"] == {"crmMessageId": "crm-7"}
    assert sandbox.received("crm-7")["accepted"] == 1
    clock.advance(1)
    assert v3.send(crmMessageId="crm-7").status_code == 201
    assert sandbox.received("crm-7")["accepted"] == 2
    assert sandbox.received()["outcomes"] == {"201": 2, "REPEATED_CRM_MESSAGE_ID": 1}


def test_bad_contact_can_be_refused_at_once(v3, sandbox):
    sandbox.update_config({"bad_contacts": ["79000000000"], "bad_contact_mode": "reject"})
    assert_error(v3.send(chatId="79000000000"), "BAD_CONTACT")
    assert v3.send().status_code == 201


# ---------------------------------------------------------------- rate limit


def test_more_than_500_requests_in_5_seconds_get_429_with_retry_after(v3, clock):
    for _ in range(500):
        assert v3.get("/v3/channels").status_code == 200
    clock.advance(2)
    result = v3.get("/v3/channels")
    assert result.status_code == 429
    assert result.headers["Retry-After"] == "3"
    assert result.json["error"] == "TOO_MANY_REQUESTS"
    clock.advance(3)
    assert v3.get("/v3/channels").status_code == 200


def test_429_can_come_without_retry_after(v3, sandbox):
    sandbox.update_config({"rate_limit": 2, "retry_after": False})
    for _ in range(2):
        v3.send()
    result = v3.send(crmMessageId="late")
    assert result.status_code == 429
    assert "Retry-After" not in result.headers
    assert sandbox.received("late")["accepted"] == 0


# ---------------------------------------------------------------- webhooks


def test_webhooks_get_shows_the_documented_shape(v3, sandbox):
    body = v3.get("/v3/webhooks").json
    assert body == {"webhooksUri": None, "subscriptions": {"messagesAndStatuses": "false",
                                                           "contactsAndDealsCreation": "false",
                                                           "channelsUpdates": "false", "templateStatus": "false"}}
    sandbox.update_config({"webhook_bools_as_strings": False})
    body = v3.get("/v3/webhooks").json
    assert body["subscriptions"]["messagesAndStatuses"] is False


def test_patch_webhooks_probes_the_url_with_a_test_post_and_keeps_it(v3, wazzup_api):
    wazzup_api.add(responses.POST, HOOK, json={})
    uri = HOOK + "?token=0123456789abcdef0123"
    result = v3.patch("/v3/webhooks", json={
        "webhooksUri": uri, "subscriptions": {"messagesAndStatuses": True, "channelsUpdates": True}})
    assert result.status_code == 200
    assert result.json == {"ok": True}
    assert len(wazzup_api.calls) == 1
    assert json.loads(wazzup_api.calls[0].request.body) == {"test": True}
    assert wazzup_api.calls[0].request.url == uri
    shown = v3.get("/v3/webhooks").json
    assert shown["webhooksUri"] == uri
    assert shown["subscriptions"]["messagesAndStatuses"] == "true"
    assert shown["subscriptions"]["contactsAndDealsCreation"] == "false"


@pytest.mark.parametrize("answer", [404, 500, 201])
def test_patch_webhooks_refuses_a_url_that_does_not_answer_200(v3, sandbox, wazzup_api, answer):
    wazzup_api.add(responses.POST, HOOK, status=answer)
    body = assert_error(v3.patch("/v3/webhooks", json={"webhooksUri": HOOK}),
                        "testPostNotPassed")
    assert body["data"] == {"statusCode": answer}
    assert sandbox.webhook_uri is None


def test_patch_webhooks_refuses_an_unreachable_url(v3, wazzup_api):
    body = assert_error(v3.patch("/v3/webhooks",
                                                      json={"webhooksUri": "http://127.0.0.1:9/hook"}),
                        "testPostNotPassed")
    assert body["data"]["statusCode"] is None


@pytest.mark.parametrize("uri", ["not a url", "ftp://crm.example.test/x", None, HOOK + "?t=" + "x" * 200])
def test_patch_webhooks_refuses_an_invalid_or_too_long_uri(v3, uri):
    assert_error(v3.patch("/v3/webhooks", json={"webhooksUri": uri}),
                 "uriNotValid")


def test_a_200_character_webhook_uri_is_accepted(v3, wazzup_api):
    uri = HOOK + "?t=" + "x" * (200 - len(HOOK) - 3)
    assert len(uri) == 200
    wazzup_api.add(responses.POST, HOOK, json={})
    assert v3.patch("/v3/webhooks", json={"webhooksUri": uri}).status_code == 200


# ---------------------------------------------------------------- users (§8.2): upserted by id, listed by name, deleted


def test_posted_users_are_listed_sorted_by_name(v3):
    result = v3.post("/v3/users", json=[{"id": "2", "name": "Olga"}, {"id": "1", "name": "Boris"}])
    assert result.status_code == 200
    assert v3.get("/v3/users").json == [{"id": "1", "name": "Boris"}, {"id": "2", "name": "Olga"}]


def test_a_user_posted_again_with_its_id_is_renamed_not_added(v3):
    v3.post("/v3/users", json=[{"id": "7", "name": "Alice"}])
    assert v3.post("/v3/users", json=[{"id": "7", "name": "Alice Smith", "phone": "79261234567"}]).status_code == 200
    assert v3.get("/v3/users").json == [{"id": "7", "name": "Alice Smith"}]


def test_more_than_100_users_in_a_call_are_refused_and_none_is_kept(v3):
    users = [{"id": str(i), "name": f"Agent {i}"} for i in range(101)]
    body = assert_error(v3.post("/v3/users", json=users), "TOO_MANY_ENTITIES")
    assert body["data"]["maxCount"] == 100
    assert v3.post("/v3/users", json=users[:100]).status_code == 200
    assert len(v3.get("/v3/users").json) == 100


@pytest.mark.parametrize("users, refused", [
    ([{"id": "1", "name": "Ann"}, {"id": "2"}], [{"index": 1, "fields": ["name"]}]),
    ([{"id": "x" * 201, "name": "Ann"}, {"id": "2", "name": ""}],
     [{"index": 0, "fields": ["id"]}, {"index": 1, "fields": ["name"]}]),
    ([{"id": 3, "name": "n" * 201}, "Ann"],
     [{"index": 0, "fields": ["id", "name"]}, {"index": 1, "fields": ["id", "name"]}]),
], ids=["no name", "too long, empty", "wrong types"])
def test_users_wazzup_would_refuse_are_named_by_index_and_none_is_kept(v3, users, refused):
    body = assert_error(v3.post("/v3/users", json=users), "INVALID_USERS_DATA")
    assert body["data"] == refused
    assert v3.get("/v3/users").json == []


def test_a_body_that_is_not_a_list_of_users_is_invalid_users_data(v3):
    assert_error(v3.post("/v3/users", json={"id": "1", "name": "Ann"}), "INVALID_USERS_DATA")
    assert_error(v3.client.simulate_post("/v3/users", body=b"not json",
                                         headers={**v3.auth, "Content-Type": "application/json"}), "INVALID_USERS_DATA")


def test_an_echo_of_a_send_names_its_user_when_crm_user_id_is_one(v3, sandbox, hook):
    sandbox.update_config({"echo": "after"})
    v3.post("/v3/users", json=[{"id": "7", "name": "Alice Smith"}])
    v3.send(text="From Alice", crmUserId="7")
    v3.send(text="From someone Wazzup does not know", crmUserId="8")
    sandbox.sender.pump()
    echoes = {m["text"]: m for body in hook.posted() for m in body.get("messages", [])}
    assert (echoes["From Alice"]["authorId"], echoes["From Alice"]["authorName"]) == ("7", "Alice Smith")
    assert echoes["From someone Wazzup does not know"]["authorId"] == "8"
    assert "authorName" not in echoes["From someone Wazzup does not know"]


def test_a_deleted_user_is_no_longer_listed_and_deleting_it_again_is_404(v3, sandbox):
    v3.post("/v3/users", json=[{"id": "7", "name": "Alice"}, {"id": "8", "name": "Bob"}])
    deleted = v3.delete("/v3/users/7")
    assert (deleted.status_code, deleted.text) == (200, "")
    assert v3.get("/v3/users").json == [{"id": "8", "name": "Bob"}]
    body = assert_error(v3.delete("/v3/users/7"), "USER_NOT_FOUND", status=404)
    assert body["data"] == {"id": "7"}
    assert (sandbox.outcomes["users_deleted"], sandbox.outcomes["USER_NOT_FOUND"]) == (1, 1)


def test_reset_forgets_the_users(v3, sandbox):
    v3.post("/v3/users", json=[{"id": "7", "name": "Alice"}])
    sandbox.reset()
    assert v3.get("/v3/users").json == []


# ---------------------------------------------------------------- iframe


def test_iframe_answers_a_url(v3, sandbox_client):
    result = v3.post("/v3/iframe", json={
        "user": {"id": "u-7", "name": "Alex"}, "scope": "card",
        "filter": [{"chatType": "whatsapp", "chatId": "79161234567"}]})
    assert result.status_code == 200
    assert set(result.json) == {"url"}
    assert result.json["url"].startswith("http")
    page = sandbox_client.simulate_get(urlsplit(result.json["url"]).path)
    assert page.status_code == 200


def test_iframe_validates_user_scope_and_filter(v3):
    result = v3.post("/v3/iframe", json={"user": {"id": "u"}, "scope": "card"})
    assert result.status_code == 400
    assert result.json["data"]["fields"] == ["user", "filter"]


def test_iframe_errors_can_come_nested(v3, sandbox):
    sandbox.update_config({"iframe_error_nested": True})
    result = v3.post("/v3/iframe", json={"user": {"id": "u", "name": "U"}, "scope": "card"})
    assert result.status_code == 400
    assert result.json["error"]["code"] == "INVALID_IFRAME_DATA"
