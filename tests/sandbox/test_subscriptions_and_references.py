"""The sandbox honours webhook subscriptions (reference §4.1) and refuses what Wazzup refuses:
a reply quoting an unknown message (§3.5 REFERENCE_MESSAGE_NOT_FOUND), a file it cannot download
(§3.5 MESSAGE_DOWNLOAD_CONTENT_ERROR)."""

import json

import responses

from tests.sandbox.conftest import HOOK


def customer_writes(sandbox_client, **spec):
    result = sandbox_client.simulate_post("/_sandbox/customer-messages", json={"text": "Hi", **spec})
    assert result.status_code == 201, result.text
    return result.json


def test_without_messages_and_statuses_no_message_or_status_is_delivered(v3, sandbox_client, sandbox, hook):
    sandbox.register_webhook(HOOK, {"channelsUpdates": True})
    sandbox.update_config({"status_delays": [0, 0, 0], "echo": "after"})
    v3.send()
    sandbox.sender.pump()
    delivery = customer_writes(sandbox_client)["delivery"]
    assert hook.posted() == []
    assert delivery["state"] == "skipped" and "messagesAndStatuses is off" in delivery["lastError"]


def test_without_channels_updates_a_channel_change_is_not_delivered(sandbox_client, sandbox, hook):
    sandbox.register_webhook(HOOK, {"messagesAndStatuses": True})
    channel_id = sandbox.config.channels[0].channelId
    result = sandbox_client.simulate_patch(f"/_sandbox/channels/{channel_id}", json={"state": "qr"})
    assert result.json["delivery"]["state"] == "skipped"
    assert "channelsUpdates is off" in result.json["delivery"]["lastError"]
    customer_writes(sandbox_client)
    assert [list(body) for body in hook.posted()] == [["messages"]]


def test_a_patch_switching_messages_off_stops_them_for_the_registered_webhook(v3, sandbox_client, sandbox,
                                                                              wazzup_api):
    wazzup_api.add(responses.POST, HOOK, json={})
    assert v3.patch("/v3/webhooks", json={"webhooksUri": HOOK, "subscriptions": {
        "messagesAndStatuses": False, "channelsUpdates": True}}).status_code == 200
    assert v3.get("/v3/webhooks").json["subscriptions"]["messagesAndStatuses"] == "false"
    customer_writes(sandbox_client)
    bodies = [json.loads(c.request.body) for c in wazzup_api.calls]
    assert bodies == [{"test": True}]


def test_a_patch_naming_an_unknown_subscription_is_refused_with_validation_error(v3, sandbox, wazzup_api):
    wazzup_api.add(responses.POST, HOOK, json={})
    result = v3.patch("/v3/webhooks", json={"webhooksUri": HOOK, "subscriptions": {"messageAndStatuses": True}})
    assert result.status_code == 400
    body = result.json
    assert (body["status"], body["error"]) == (400, "VALIDATION_ERROR")
    assert body["data"] == {"fields": ["subscriptions.messageAndStatuses"]} and body["requestId"]
    assert "messageAndStatuses" in body["description"]
    assert sandbox.webhook_uri is None and len(wazzup_api.calls) == 0


def test_a_reply_to_a_message_the_sandbox_never_saw_is_refused_with_reference_message_not_found(v3, sandbox):
    result = v3.send(refMessageId="no-such-message")
    assert result.status_code == 400
    body = result.json
    assert set(body) == {"status", "requestId", "error", "description", "data"}
    assert (body["status"], body["error"], body["data"]) == (400, "REFERENCE_MESSAGE_NOT_FOUND",
                                                             {"refMessageId": "no-such-message"})
    assert sandbox.received()["total"] == 0


def test_a_reply_to_a_customers_message_is_accepted_and_received_records_its_ref(v3, sandbox_client, hook):
    asked = customer_writes(sandbox_client, chatId="79161234567")["messageId"]
    result = v3.send(refMessageId=asked, crmMessageId="reply-1")
    assert result.status_code == 201
    [received] = sandbox_client.simulate_get("/_sandbox/received", params={"crmMessageId": "reply-1"}).json["messages"]
    assert received["refMessageId"] == asked
    # A message sent through the API can be quoted as well; a message without a quote records none.
    again = v3.send(refMessageId=result.json["messageId"])
    assert again.status_code == 201
    assert v3.send(crmMessageId="plain").status_code == 201
    [plain] = sandbox_client.simulate_get("/_sandbox/received", params={"crmMessageId": "plain"}).json["messages"]
    assert plain["refMessageId"] is None


def test_content_configured_as_unreachable_is_refused_with_download_content_error(v3, sandbox_client, sandbox):
    changed = sandbox_client.simulate_patch("/_sandbox/config",
                                            json={"unreachable_content": ["http://127.0.0.1:1/"]})
    assert changed.status_code == 200 and changed.json["unreachable_content"] == ["http://127.0.0.1:1/"]
    result = v3.send(text=None, contentUri="http://127.0.0.1:1/nothing-here.jpg")
    assert (result.status_code, result.json["error"]) == (400, "MESSAGE_DOWNLOAD_CONTENT_ERROR")
    assert v3.send(text=None, contentUri="https://files.example.test/photo.jpg").status_code == 201
