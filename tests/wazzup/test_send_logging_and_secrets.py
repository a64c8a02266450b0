"""Every Wazzup operation is logged with context; the API key never reaches a log, error or response."""

import json
import logging

import pytest
import requests


@pytest.fixture
def settings(settings):
    return {**settings, "WAZZUP24_WEBHOOK_URL": "https://helpdesk.example.com/api/webhook",
            "WAZZUP24_WEBHOOK_SECRET": "webhook-secret-0123456789abcdef"}


def test_a_successful_send_is_logged_with_its_context(client, auth, make_wazzup_chat, wazzup_api, wazzup_url, caplog):
    chat = make_wazzup_chat()
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-1"}, status=201)
    with caplog.at_level(logging.INFO, logger="wazzup_plugin"):
        message = client.simulate_post(f"/api/chats/{chat}/wazzup24/send", json={"text": "hi"}, headers=auth).json
    [record] = [r for r in caplog.records if r.getMessage().startswith("Wazzup24 message sent successfully")]
    assert record.context["chat_id"] == chat and record.context["message_id"] == message["id"]
    assert record.context["wazzup_message_id"] == "wz-1" and record.context["status"] == "accepted"
    assert "latency_ms" in record.context


@pytest.mark.parametrize("answer", [
    {"status": 401},
    {"status": 403},
    {"status": 500, "body": "internal error"},
    {"status": 429},
    {"body": requests.ConnectionError("refused")},
    {"body": requests.ReadTimeout("hung")},
    {"status": 400, "json": {"error": "BAD_CONTACT", "description": "key=" + "{key}", "data": {"echo": "{key}"}}},
])
def test_failing_calls_never_leak_the_key(client, auth, make_wazzup_chat, wazzup_api, wazzup_url, api_key, caplog,
                                          capsys, answer):
    answer = {k: (json.loads(json.dumps(v).replace("{key}", api_key)) if k == "json" else v)
              for k, v in answer.items()}
    for method, path in [("POST", "/v3/message"), ("GET", "/v3/channels"), ("GET", "/v3/webhooks"),
                         ("POST", "/v3/iframe")]:
        wazzup_api.add(method, f"{wazzup_url}{path}", **answer)
    chat = make_wazzup_chat()
    texts = []
    with caplog.at_level(logging.DEBUG):
        texts.append(client.simulate_post(f"/api/chats/{chat}/wazzup24/send", json={"text": "hi"}, headers=auth).text)
        texts.append(client.simulate_get("/api/wazzup24/connection", headers=auth).text)
        texts.append(client.simulate_get(f"/api/chats/{chat}/wazzup24/info", params={"iframe": 1}, headers=auth).text)
        texts.append(client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).text)
    texts += [r.getMessage() + json.dumps(getattr(r, "context", {}), default=str) + (r.exc_text or "")
              for r in caplog.records]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    assert len(wazzup_api.calls) >= 1  # after a 429 the limiter holds every later call back
    for text in texts:
        assert api_key not in text
        assert "webhook-secret-0123456789abcdef" not in text
