"""The API key, the webhook secret and agents' tokens never reach logs, responses or error pages."""

from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests

from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

from fire_support import (CHANNEL_ID, FIRE_API_KEY, FIRE_WEBHOOK_SECRET, ScriptedWazzup, create_agent_token,
                          wait_until)

pytestmark = [pytest.mark.e2e]


def _failing_wazzup(method, path, headers, body):
    """Wazzup refusing our key, failing sends with a 5xx, and so on: every error path gets logged."""
    if path.startswith("/v3/channels"):
        return 401, {}, {"status": 401, "error": "UNAUTHORIZED", "description": "Unauthorized"}
    if path.startswith("/v3/webhooks"):
        return 500, {}, b"<html>upstream exploded</html>"
    if path.startswith("/v3/message"):
        return 400, {}, {"status": 400, "error": "BAD_CONTACT", "description": "Account does not exist"}
    return 404, {}, {"error": "NOT_FOUND"}


def test_secrets_stay_out_of_logs_responses_and_error_pages(gunicorn, tmp_path):
    url = f"sqlite:///{tmp_path / 'fire.sqlite3'}"
    with ScriptedWazzup(_failing_wazzup) as wazzup:
        server = gunicorn(url, workers=2, WAZZUP24_WEBHOOK_SECRET=FIRE_WEBHOOK_SECRET,
                          WAZZUP24_API_URL=wazzup.url, HELPDESK_LOG_LEVEL="DEBUG",
                          WAZZUP24_WEBHOOK_URL=f"https://helpdesk.example/api/webhook?token={FIRE_WEBHOOK_SECRET}")
        token = create_agent_token(url)
        auth = {"Authorization": f"Bearer {token}"}
        base = server.url
        body = delivery(messages=[incoming_message(channel_id=CHANNEL_ID, chat_id="79160000201", text="hi",
                                                   message_id=str(uuid.uuid4()))])
        responses_seen = []

        def call(method, path, **kwargs):
            r = requests.request(method, base + path, timeout=60, **kwargs)
            responses_seen.append(r)
            return r

        assert call("POST", "/api/webhook", params={"token": FIRE_WEBHOOK_SECRET}, json=body).status_code == 200
        assert call("POST", "/api/webhook", params={"token": "wrong-" + FIRE_WEBHOOK_SECRET}, json=body).status_code == 401
        assert call("POST", "/api/wazzup24/webhook", headers={"Authorization": f"Bearer {FIRE_WEBHOOK_SECRET}"},
                    json={"test": True}).status_code == 200
        assert call("POST", "/api/webhook", params={"token": FIRE_WEBHOOK_SECRET}, data=b"{not json",
                    headers={"Content-Type": "application/json"}).status_code == 400
        call("GET", "/api/webhook", params={"token": FIRE_WEBHOOK_SECRET})  # wrong method: an error page
        call("GET", "/api/nowhere", params={"token": FIRE_WEBHOOK_SECRET, "api_key": FIRE_API_KEY})
        call("GET", "/api/chats", headers={"Authorization": f"Bearer {FIRE_API_KEY}"})
        connection = call("GET", "/api/wazzup24/connection", headers=auth)
        assert connection.status_code == 200, connection.text
        assert connection.json()["status"] in ("error", "degraded"), connection.json()

        chats = call("GET", "/api/chats", params={"type": "wazzup"}, headers=auth).json()["items"]
        assert chats, "the delivery made no chat"
        send = call("POST", f"/api/chats/{chats[0]['id']}/wazzup24/send", headers=auth, json={"text": "hello"})
        assert 400 <= send.status_code < 600 and send.status_code != 401, send.text
        info = call("GET", f"/api/chats/{chats[0]['id']}/wazzup24/info", headers=auth, params={"iframe": "1"})
        assert info.status_code in (200, 502), info.text
        call("GET", "/api/openapi.json")
        _raw_http(server.port, b"POST /api/webhook?token=" + FIRE_WEBHOOK_SECRET.encode() +
                  b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"a\"")  # a truncated body

        assert wazzup.requests, "the scripted Wazzup was never called: the failing paths did not run"
        sent_keys = {h.get("Authorization") for _, _, h, _ in wazzup.requests}
        assert sent_keys == {f"Bearer {FIRE_API_KEY}"}, "the client must send the key to Wazzup (and only there)"
        wait_until(lambda: server.access_log.exists() and "/api/openapi.json" in server.access_log.read_text(),
                   10, what="the access log to be written")

    for secret in (FIRE_API_KEY, FIRE_WEBHOOK_SECRET, token):
        for r in responses_seen:
            exposed = r.text + json.dumps(dict(r.headers))
            assert secret not in exposed, f"a secret is in the response to {r.request.method} {r.url[:60]}"
    logs = server.logs()
    assert "/api/webhook" in logs, "the access log is empty: nothing was checked"
    for name, secret in (("API key", FIRE_API_KEY), ("webhook secret", FIRE_WEBHOOK_SECRET), ("agent token", token)):
        lines = [line for line in logs.splitlines() if secret in line]
        assert not lines, f"the {name} is in the logs: {lines[:3]}"


def _raw_http(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def test_a_chunked_body_over_the_limit_is_refused(gunicorn, tmp_path):
    # Without Content-Length the limit cannot be checked up front; reading must still stop at the limit.
    url = f"sqlite:///{tmp_path / 'fire.sqlite3'}"
    server = gunicorn(url, workers=1, HELPDESK_MAX_BODY_BYTES=64 * 1024)

    def chunks():
        yield b'{"messages": [{"text": "'
        for _ in range(64):
            yield b"x" * 4096
        yield b'"}]}'

    result = requests.post(server.url + "/api/webhook", data=chunks(), timeout=60,
                           headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert result.status_code == 413, f"{result.status_code}: {result.text[:200]}"
    with_length = requests.post(server.url + "/api/webhook", data=b"".join(chunks()), timeout=60,
                                headers={"Content-Type": "application/json"})
    assert with_length.status_code == 413
