"""Fixtures only the sandbox's own tests need."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import responses

from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

HOOK = "https://crm.example.test/api/webhook"


def helpdesk_stub() -> list[str]:
    """The console script, run as a user runs it."""
    script = Path(sys.executable).parent / "helpdesk-stub"
    return [str(script)] if script.exists() else [sys.executable, "-m", "host_stub"]


class V3:
    """The sandbox's /v3 API in process, with the right key: ``v3.send(text=...)``, ``v3.get(path)``."""

    def __init__(self, client, api_key: str):
        self.client = client
        self.auth = {"Authorization": f"Bearer {api_key}"}

    def get(self, path, **kw):
        return self.client.simulate_get(path, headers=self.auth, **kw)

    def post(self, path, **kw):
        return self.client.simulate_post(path, headers=self.auth, **kw)

    def patch(self, path, **kw):
        return self.client.simulate_patch(path, headers=self.auth, **kw)

    def delete(self, path, **kw):
        return self.client.simulate_delete(path, headers=self.auth, **kw)

    def send(self, **fields):
        body = {"channelId": DEFAULT_CHANNEL_ID, "chatType": "whatsapp", "chatId": "79161234567", "text": "Hello"}
        body.update(fields)
        return self.post("/v3/message", json={k: v for k, v in body.items() if v is not None})


@pytest.fixture
def v3(sandbox_client, sandbox_config):
    return V3(sandbox_client, sandbox_config.api_key)


class Hook:
    """Our webhook as the sandbox sees it (a ``responses`` mock answering 200)."""

    url = HOOK

    def __init__(self, mock):
        self.mock = mock

    def posted(self) -> list:
        """The bodies posted to the webhook, in order."""
        return [json.loads(c.request.body) for c in self.mock.calls if c.request.url.startswith(HOOK)]


@pytest.fixture
def hook(wazzup_api, sandbox):
    """A registered webhook answering 200."""
    wazzup_api.add(responses.POST, HOOK, json={})
    sandbox.register_webhook(HOOK)
    return Hook(wazzup_api)
