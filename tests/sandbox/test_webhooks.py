"""After a send, the sandbox posts statuses (and, if asked, echoes) to the registered webhook like Wazzup."""

from __future__ import annotations

import responses

from tests.sandbox.conftest import HOOK


def statuses(bodies):
    return [(s["messageId"], s["status"]) for b in bodies for s in b.get("statuses", [])]


def test_a_send_is_followed_by_sent_delivered_read_when_each_falls_due(v3, sandbox, hook, clock):
    sandbox.update_config({"status_delays": [1, 2, 3]})
    mid = v3.send().json["messageId"]
    sandbox.sender.pump()
    assert hook.posted() == []            # nothing before its time
    clock.advance(1)
    sandbox.sender.pump()
    assert statuses(hook.posted()) == [(mid, "sent")]
    clock.advance(2)
    sandbox.sender.pump()
    assert statuses(hook.posted()) == [(mid, "sent"), (mid, "delivered"), (mid, "read")]
    item = hook.posted()[0]["statuses"][0]
    assert set(item) == {"messageId", "timestamp", "status"}
    assert item["timestamp"].endswith("Z")


def test_deliveries_carry_the_documented_content_type_and_no_authorization(v3, sandbox, hook):
    v3.send()
    sandbox.sender.pump()
    request = hook.mock.calls[0].request
    assert request.headers["Content-Type"] == "application/json; charset-utf-8"
    assert "Authorization" not in request.headers


def test_deliveries_carry_the_crm_key_as_bearer_when_set(v3, sandbox, hook):
    sandbox.update_config({"crm_key": "crm-key-123"})
    v3.send()
    sandbox.sender.pump()
    assert hook.mock.calls[0].request.headers["Authorization"] == "Bearer crm-key-123"


def test_statuses_can_arrive_reordered(v3, sandbox, hook):
    sandbox.update_config({"reorder_statuses": True})
    mid = v3.send().json["messageId"]
    sandbox.sender.pump()
    assert statuses(hook.posted()) == [(mid, "read"), (mid, "delivered"), (mid, "sent")]


def test_statuses_can_arrive_twice(v3, sandbox, hook):
    sandbox.update_config({"duplicate_statuses": True})
    mid = v3.send().json["messageId"]
    sandbox.sender.pump()
    assert statuses(hook.posted()) == [(mid, "sent"), (mid, "sent"), (mid, "delivered"), (mid, "delivered"),
                                       (mid, "read"), (mid, "read")]


def test_statuses_can_arrive_before_the_201(v3, sandbox, hook):
    sandbox.update_config({"statuses_before_201": True})
    result = v3.send()
    # Posted while the send was still being answered: no pump, no thread.
    assert statuses(hook.posted()) == [(result.json["messageId"], s) for s in ("sent", "delivered", "read")]
    assert sandbox.sender.pending() == 0


def test_a_bad_contact_ends_in_an_error_status(v3, sandbox, hook):
    sandbox.update_config({"bad_contacts": ["79000000000"]})
    mid = v3.send(chatId="79000000000").json["messageId"]
    sandbox.sender.pump()
    [body] = hook.posted()
    assert body == {"statuses": [{"messageId": mid, "timestamp": body["statuses"][0]["timestamp"], "status": "error",
                                  "error": {"error": "BAD_CONTACT",
                                            "description": "Account with this chatId does not exist"}}]}


def test_echoes_of_api_sends_are_off_by_default(v3, sandbox, hook):
    v3.send()
    sandbox.sender.pump()
    assert all("messages" not in b for b in hook.posted())


def test_an_echo_can_come_before_the_201(v3, sandbox, hook):
    sandbox.update_config({"echo": "before", "status_delays": [5, 5, 5]})
    result = v3.send(text="Your order is ready", crmUserId="agent-1")
    [body] = hook.posted()
    [echo] = body["messages"]
    assert echo["messageId"] == result.json["messageId"]
    assert echo["isEcho"] is True
    assert echo["text"] == "Your order is ready"
    assert echo["chatId"] == "79161234567"
    assert echo["authorId"] == "agent-1"
    assert echo["status"] == "sent"


def test_an_echo_can_come_after_the_201(v3, sandbox, hook):
    sandbox.update_config({"echo": "after"})
    result = v3.send(text=None, contentUri="https://files.example.test/invoice.pdf")
    assert hook.posted() == []
    sandbox.sender.pump()
    echo = hook.posted()[0]["messages"][0]
    assert echo["messageId"] == result.json["messageId"]
    assert echo["contentUri"] == "https://files.example.test/invoice.pdf"
    assert "text" not in echo


def test_deliveries_due_together_can_come_as_one(v3, sandbox, hook):
    sandbox.update_config({"combine_deliveries": True, "echo": "after"})
    mid = v3.send().json["messageId"]
    sandbox.sender.pump()
    [body] = hook.posted()
    assert [m["messageId"] for m in body["messages"]] == [mid]
    assert [s["status"] for s in body["statuses"]] == ["sent", "delivered", "read"]


def test_a_failed_delivery_is_retried_a_bounded_number_of_times(v3, sandbox, wazzup_api):
    wazzup_api.add(responses.POST, HOOK, status=500)
    sandbox.register_webhook(HOOK)
    sandbox.update_config({"webhook_attempts": 3, "status_delays": [0, 100, 100]})
    v3.send()
    for _ in range(10):
        sandbox.sender.pump()
    assert len(wazzup_api.calls) == 3
    [job] = [j for j in sandbox.sender.log if j.state != "pending"]
    assert (job.state, job.attempts, job.last_status) == ("failed", 3, 500)


def test_a_delivery_that_fails_once_is_delivered_on_retry(v3, sandbox, wazzup_api, clock):
    wazzup_api.add(responses.POST, HOOK, status=503)
    wazzup_api.add(responses.POST, HOOK, json={})
    sandbox.register_webhook(HOOK)
    sandbox.update_config({"status_delays": [0, 100, 100], "webhook_backoff": 2.0})
    v3.send()
    sandbox.sender.pump()
    sandbox.sender.pump()
    assert len(wazzup_api.calls) == 1     # the retry waits for its backoff
    clock.advance(2)
    sandbox.sender.pump()
    assert len(wazzup_api.calls) == 2
    assert sandbox.sender.log[0].state == "delivered"


def test_the_queue_is_bounded(sandbox):
    sandbox.update_config({"queue_size": 2})
    assert sandbox.sender.enqueue({"statuses": []}) is not None
    assert sandbox.sender.enqueue({"statuses": []}) is not None
    assert sandbox.sender.enqueue({"statuses": []}) is None
    assert sandbox.sender.dropped == 1


def test_without_a_webhook_deliveries_are_skipped(v3, sandbox, wazzup_api):
    v3.send()
    sandbox.sender.pump()
    assert len(wazzup_api.calls) == 0
    assert {j.state for j in sandbox.sender.log} == {"skipped"}


def test_the_status_sequence_arrives_at_a_receiver_over_http(sandbox_server, webhook_receiver):
    """The real thing: HTTP both ways, the sender thread, real (short) delays."""
    import requests

    sb = sandbox_server.app.sandbox
    sb.update_config({"status_delays": [0.05, 0.1, 0.15], "echo": "after"})
    auth = {"Authorization": f"Bearer {sb.config.api_key}"}
    patch = requests.patch(sandbox_server.url + "/v3/webhooks", headers=auth, timeout=10,
                           json={"webhooksUri": webhook_receiver.url, "subscriptions": {"messagesAndStatuses": True}})
    assert patch.status_code == 200
    sent = requests.post(sandbox_server.url + "/v3/message", headers=auth, timeout=10, json={
        "channelId": sb.config.channels[0].channelId, "chatType": "whatsapp", "chatId": "79161234567",
        "text": "Привет"})
    assert sent.status_code == 201
    bodies = webhook_receiver.wait_for(5)
    assert bodies[0] == {"test": True}
    mid = sent.json()["messageId"]
    assert bodies[1]["messages"][0]["messageId"] == mid
    assert bodies[1]["messages"][0]["text"] == "Привет"
    assert statuses(bodies[2:]) == [(mid, "sent"), (mid, "delivered"), (mid, "read")]
    assert webhook_receiver.headers[1]["Content-Type"] == "application/json; charset-utf-8"
