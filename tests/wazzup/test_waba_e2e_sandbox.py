"""End to end over real HTTP (gunicorn serving the helpdesk, the sandbox playing Wazzup24) on a
WhatsApp Business channel: a free text Wazzup takes but cannot deliver because the 24-hour window
closed comes back as 24_HOURS_EXCEEDED in words; a template from the chat's list goes out and ticks."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests

from tests.conftest import WABA_CHANNEL_ID, with_waba_channel
from tests.wazzup.test_send_e2e_sandbox import wait_for
from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID
from wazzup_plugin.sandbox.templates import APPROVED_TEMPLATE_ID, REJECTED_TEMPLATE_ID

SECRET = "e2e-waba-webhook-secret-0123456789"
PHONE = "79171234570"


@pytest.fixture
def sandbox_config(sandbox_config):
    return with_waba_channel(sandbox_config)


@pytest.fixture
def live(gunicorn_host, sandbox_server, database_url, engine, agent, api_key, tmp_path):
    env = {"HELPDESK_DATABASE_URL": database_url, "WAZZUP24_API_KEY": api_key, "WAZZUP24_API_URL": sandbox_server.url,
           "WAZZUP24_WEBHOOK_SECRET": SECRET, "WAZZUP24_CHANNEL_ID": DEFAULT_CHANNEL_ID}
    host = gunicorn_host(env, workers=2)
    env["WAZZUP24_WEBHOOK_URL"] = f"{host.url}/api/webhook"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
    registered = subprocess.run([sys.executable, "-m", "host_stub", "wazzup24", "set-webhook", "--yes"], cwd=tmp_path,
                                env={**full, **env}, capture_output=True, text=True, timeout=60)
    assert registered.returncode == 0, registered.stdout + registered.stderr

    def api(method, path, **kwargs):
        return requests.request(method, host.url + path, headers=agent["headers"], timeout=30, **kwargs)

    def sandbox(method, path, **kwargs):
        result = requests.request(method, sandbox_server.url + path, timeout=10, **kwargs)
        result.raise_for_status()
        return result.json()

    return SimpleNamespace(api=api, sandbox=sandbox)


def test_a_closed_window_and_a_template_through_real_servers(live):
    # The connection report reads Wazzup's channel list: the helpdesk learns the channel is WhatsApp Business.
    assert live.api("GET", "/api/wazzup24/connection").status_code == 200
    live.sandbox("POST", "/_sandbox/customer-messages", json={"chatId": PHONE, "channelId": WABA_CHANNEL_ID,
                                                              "name": "Pavel Orlov", "text": "Is it in stock?"})
    chat = wait_for(lambda: next((c for c in live.api("GET", "/api/chats").json()["items"] if c["phone"] == PHONE),
                                 None), what="the customer's chat")["id"]
    assert live.api("GET", f"/api/chats/{chat}/wazzup24/info").json()["window"]["open"] is True

    # Wazzup's clock and ours disagree (here: the sandbox's window is closed already): Wazzup takes the
    # text, then reports 24_HOURS_EXCEEDED, which the agent reads in plain words.
    live.sandbox("PATCH", "/_sandbox/config", json={"waba_window_hours": 0})
    sent = live.api("POST", f"/api/chats/{chat}/wazzup24/send", json={"text": "Yes, it is!"})
    assert sent.status_code == 201, sent.text

    def message(message_id):
        items = live.api("GET", f"/api/chats/{chat}/messages").json()["items"]
        return next(m for m in items if m["id"] == message_id)

    failed = wait_for(lambda: (m := message(sent.json()["id"]))["status"] == "failed" and m, what="the error status")
    assert failed["error_code"] == "24_HOURS_EXCEEDED"
    assert "Send a template to reopen the conversation" in failed["error_text"]

    templates = live.api("GET", f"/api/chats/{chat}/wazzup24/templates").json()["items"]
    assert [t["id"] for t in templates] == [APPROVED_TEMPLATE_ID]   # the rejected one is not offered
    assert templates[0]["variables"] == 2
    rejected = live.api("POST", f"/api/chats/{chat}/wazzup24/send", json={"template_id": REJECTED_TEMPLATE_ID,
                                                                          "template_values": ["Pavel"]})
    assert rejected.status_code == 422

    by_template = live.api("POST", f"/api/chats/{chat}/wazzup24/send",
                           json={"template_id": APPROVED_TEMPLATE_ID, "template_values": ["Pavel", "#1042"]})
    assert by_template.status_code == 201, by_template.text
    assert by_template.json()["text"].startswith("Hello Pavel! Your order #1042 is on its way.")
    wait_for(lambda: message(by_template.json()["id"])["status"] == "read", what="the template's ticks")
    received = live.sandbox("GET", "/_sandbox/received",
                            params={"crmMessageId": by_template.json()["wazzup_crm_message_id"]})
    [at_wazzup] = received["messages"]
    assert (at_wazzup["templateId"], at_wazzup["templateValues"]) == (APPROVED_TEMPLATE_ID, ["Pavel", "#1042"])
