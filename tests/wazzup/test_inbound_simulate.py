"""``helpdesk-stub wazzup24 simulate-incoming``: a Wazzup-shaped delivery posted to a running helpdesk."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import responses
import sqlalchemy as sa
from click.testing import CliRunner

from host_stub.cli import build_cli

SECRET = "simulate-secret-0123456789abcdef"
URL = "http://127.0.0.1:8000/api/webhook"


@pytest.fixture
def cli(pm, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("WAZZUP24_WEBHOOK_SECRET", "WAZZUP24_CHANNEL_ID"):
        monkeypatch.delenv(name, raising=False)

    def run(*args):
        return CliRunner().invoke(build_cli(pm), ["wazzup24", "simulate-incoming", *args])

    return run


@pytest.fixture
def webhook_mock():
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, URL, json={"ok": True, "new_messages": 1})
        yield mock


def test_simulated_text_message_becomes_a_chat_through_the_real_route(cli, webhook_mock, deliver, wazzup_rows):
    result = cli("--phone", "+7 916 123-45-67", "--name", "Ivan", "--text", "Hello")
    assert result.exit_code == 0, result.output
    [call] = webhook_mock.calls
    body = json.loads(call.request.body)
    assert "Authorization" not in call.request.headers  # no secret configured: none sent

    assert deliver(body).status_code == 200  # what the command posts is what the webhook stores
    [chat] = wazzup_rows.chats()
    assert (chat["title"], chat["phone"], chat["wazzup_chat_id"]) == ("Ivan", "79161234567", "79161234567")
    [message] = wazzup_rows.messages()
    assert (message["text"], message["direction"], message["type"]) == ("Hello", "in", "text")
    assert message["wazzup_message_id"] in result.output


def test_simulate_posts_to_the_configured_webhook_url_with_the_secret_in_a_header(cli, monkeypatch):
    monkeypatch.setenv("WAZZUP24_WEBHOOK_URL", f"http://127.0.0.1:18123/api/webhook?token={SECRET}")
    monkeypatch.setenv("WAZZUP24_WEBHOOK_SECRET", SECRET)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, "http://127.0.0.1:18123/api/webhook", json={"ok": True, "new_messages": 1})
        result = cli("--phone", "79161234567", "--text", "Hello")
        assert result.exit_code == 0, result.output
        [call] = mock.calls
    assert call.request.url == "http://127.0.0.1:18123/api/webhook"          # no token in the URL
    assert call.request.headers["Authorization"] == f"Bearer {SECRET}"


def test_simulated_media_message_carries_its_link_and_type(cli, webhook_mock, deliver, wazzup_rows):
    uri = "https://example.com/files/invoice.pdf"
    result = cli("--phone", "79161234567", "--content-uri", uri, "--type", "document")
    assert result.exit_code == 0, result.output
    deliver(json.loads(webhook_mock.calls[0].request.body))
    [message] = wazzup_rows.messages()
    assert (message["type"], message["content_uri"], message["content_name"]) == ("document", uri, "invoice.pdf")


def test_simulate_sends_the_webhook_secret_as_a_bearer_header(cli, webhook_mock, monkeypatch):
    monkeypatch.setenv("WAZZUP24_WEBHOOK_SECRET", SECRET)
    result = cli("--phone", "79161234567", "--text", "Hi")
    assert result.exit_code == 0, result.output
    request = webhook_mock.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in request.url and SECRET not in result.output


def test_simulate_uses_the_configured_channel(cli, webhook_mock, monkeypatch):
    monkeypatch.setenv("WAZZUP24_CHANNEL_ID", "11111111-2222-4333-8444-555555555555")
    cli("--phone", "79161234567", "--text", "Hi")
    body = json.loads(webhook_mock.calls[0].request.body)
    assert body["messages"][0]["channelId"] == "11111111-2222-4333-8444-555555555555"


def test_simulate_explains_a_refused_delivery(cli):
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, URL, status=401, json={"status": 401, "code": "unauthorized", "message": "secret"})
        result = cli("--phone", "79161234567", "--text", "Hi")
    assert result.exit_code != 0
    assert "401" in result.output and "WAZZUP24_WEBHOOK_SECRET" in result.output


def test_simulate_explains_an_unreachable_helpdesk(cli):
    with responses.RequestsMock():  # nothing registered: the connection is refused
        result = cli("--phone", "79161234567", "--text", "Hi")
    assert result.exit_code != 0
    assert "could not reach" in result.output and "helpdesk-stub serve" in result.output


def test_an_unreachable_webhook_url_given_with_its_secret_is_shown_masked(cli):
    with responses.RequestsMock():  # nothing registered: the connection is refused
        result = cli("--phone", "79161234567", "--text", "Hi", "--url", f"{URL}?token={SECRET}")
    assert result.exit_code != 0
    assert "could not reach http://127.0.0.1:8000/api/webhook?token=***" in result.output
    assert SECRET not in result.output


def test_simulate_needs_something_to_send(cli):
    result = cli("--phone", "79161234567")
    assert result.exit_code != 0
    assert "--text or --content-uri" in result.output


@pytest.mark.e2e
@pytest.mark.slow
def test_simulate_incoming_against_a_running_helpdesk(gunicorn_host, pm, tmp_path):
    from host_stub.db import make_engine
    from host_stub.schema import create_all

    url = f"sqlite:///{tmp_path / 'simulate.sqlite3'}"
    engine = make_engine(url)
    create_all(engine, pm)
    env = {"HELPDESK_DATABASE_URL": url, "WAZZUP24_WEBHOOK_SECRET": SECRET}
    host = gunicorn_host(env, workers=2)
    command = [sys.executable, "-m", "host_stub", "wazzup24", "simulate-incoming", "--url", host.url + "/api/webhook",
               "--phone", "79161234567", "--name", "Ivan", "--text", "Hello"]
    import os

    run_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))},
               **env, "HELPDESK_LOG_FILE": str(tmp_path / "cli.log")}
    done = subprocess.run(command, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    media = subprocess.run(command[:-6] + ["--phone", "79161234567", "--content-uri",
                                           "https://example.com/p.jpg?filename=photo.jpg"],
                           cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=60)
    assert media.returncode == 0, media.stderr
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT m.type, m.text, m.content_name, c.title FROM messages m "
                                    "JOIN chats c ON c.id = m.chat_id ORDER BY m.id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("text", "Hello", None, "Ivan"), ("image", None, "photo.jpg", "Ivan")]
