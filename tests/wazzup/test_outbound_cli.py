"""``helpdesk-stub wazzup24 test-connection | channels | set-webhook | worker``."""

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.wazzup.conftest import OUR_URL, SECRET


def patched(wazzup_api):
    return [json.loads(c.request.body) for c in wazzup_api.calls if c.request.method == "PATCH"]


def test_test_connection_ok_exits_0_with_a_readable_report(run, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    result = run("test-connection")
    assert result.exit_code == 0, result.output
    assert "Wazzup24 connection: OK" in result.output
    assert "API key:        valid" in result.output
    assert "e0629e11-0f67-4567-92a9-2237e91ec1b9 whatsapp 79865784457 [active]" in result.output
    assert f"{OUR_URL}?token=***" in result.output
    assert SECRET not in result.output


@pytest.mark.parametrize("suffix", ["/v3", "/v3/"])
def test_test_connection_works_with_the_api_url_written_as_wazzups_documentation_writes_it(
        run, wazzup_api, wazzup_url, api_payload, suffix):
    """Wazzup documents its base URL with /v3 (https://api.wazzup24.com/v3): every call went to /v3/v3/...,
    so the report said error and every message failed."""
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    result = run("test-connection", WAZZUP24_API_URL=wazzup_url + suffix)
    assert result.exit_code == 0, result.output
    assert [c.request.url for c in wazzup_api.calls] == [f"{wazzup_url}/v3/channels", f"{wazzup_url}/v3/webhooks"]


def test_test_connection_with_a_refused_key_exits_1(run, wazzup_api, wazzup_url):
    wazzup_api.get(f"{wazzup_url}/v3/channels", status=401)
    result = run("test-connection")
    assert result.exit_code == 1
    assert "REFUSED" in result.output and "ERROR" in result.output


def test_test_connection_not_configured_exits_2(run, wazzup_api):
    result = run("test-connection", WAZZUP24_API_KEY=None)
    assert result.exit_code == 2
    assert "NOT_CONFIGURED" in result.output and "WAZZUP24_API_KEY" in result.output
    assert len(wazzup_api.calls) == 0


def test_channels_lists_them_and_marks_the_sending_one(run, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    result = run("channels")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()  # the log (stderr) has the call's line
    assert lines[0].startswith("* e0629e11-0f67-4567-92a9-2237e91ec1b9")
    assert lines[2].startswith("  0b9f6a55") and lines[2].endswith("qr")


def test_channels_exits_1_saying_why_when_no_channel_can_send(run, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_none_active"))

    result = run("channels")

    assert result.exit_code == 1
    assert "* =" not in result.stdout and result.stderr.strip()


def test_set_webhook_without_a_secret_makes_one_and_prints_the_env_line(run, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_none"))
    wazzup_api.patch(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_patched"))
    result = run("set-webhook", WAZZUP24_WEBHOOK_SECRET=None)
    assert result.exit_code == 0, result.output
    [body] = patched(wazzup_api)
    assert body["subscriptions"] == {"messagesAndStatuses": True, "channelsUpdates": True,
                                     "contactsAndDealsCreation": False, "templateStatus": False}
    token = parse_qs(urlsplit(body["webhooksUri"]).query)["token"][0]
    assert len(token) >= 16
    assert f"WAZZUP24_WEBHOOK_SECRET={token}" in result.output
    assert "test POST got 200" in result.output


def test_only_set_webhook_runs_while_a_live_webhook_has_no_secret(run, wazzup_api, wazzup_url, api_payload):
    """set-webhook makes the missing secret, so the startup refusal of an unprotected live webhook
    spares it; every other command, like the helpdesk itself, is refused."""
    from host_stub.errors import StartupError

    with pytest.raises(StartupError, match="WAZZUP24_WEBHOOK_SECRET is not"):
        run("channels", WAZZUP24_WEBHOOK_SECRET=None)
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    assert run("channels", WAZZUP24_WEBHOOK_SECRET=None, WAZZUP24_WEBHOOK_INSECURE="1").exit_code == 0


def test_set_webhook_asks_before_replacing_another_integrations_url(run, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_other"))
    wazzup_api.patch(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_patched"))
    declined = run("set-webhook", input="n\n")
    assert declined.exit_code == 1 and "not this helpdesk" in declined.output
    assert "ZZZsecret" not in declined.output
    assert patched(wazzup_api) == []
    accepted = run("set-webhook", input="y\n")
    assert accepted.exit_code == 0
    assert run("set-webhook", "--yes").exit_code == 0
    assert [b["webhooksUri"] for b in patched(wazzup_api)] == [f"{OUR_URL}?token={SECRET}"] * 2


def test_set_webhook_reports_a_failed_test_post(run, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    wazzup_api.patch(f"{wazzup_url}/v3/webhooks", json=api_payload("error_test_post_not_passed"), status=400)
    result = run("set-webhook", "--url", "https://other.example.com/api/webhook", "--yes")
    assert result.exit_code == 1
    assert "test POST" in result.output and "did not get 200" in result.output
    assert SECRET not in result.output


def test_set_webhook_refuses_urls_over_200_characters(run, wazzup_api):
    result = run("set-webhook", "--url", "https://helpdesk.example.com/" + "a" * 150)
    assert result.exit_code == 1
    assert "at most 200" in result.output
    assert len(wazzup_api.calls) == 0


def test_worker_once_sends_what_is_queued(run, helpdesk, make_wazzup_chat, outbox_ctx, wazzup_api, wazzup_url):
    from datetime import datetime, timedelta, timezone

    from wazzup_plugin.outbound import outbox

    chat = make_wazzup_chat()
    with helpdesk.db.write() as tx:
        # Queued a moment ago on the real clock (the CLI's), never attempted.
        outbox.enqueue(tx, outbox_ctx, chat_id=chat, now=datetime.now(timezone.utc) - timedelta(seconds=1),
                       lease_owner=None, text="later")
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-cli"}, status=201)
    result = run("worker", "--once")
    assert result.exit_code == 0, result.output
    assert "attempted 1 message" in result.output
    with helpdesk.db.read() as conn:
        assert conn.execute(helpdesk.tables.messages.select()).first().status == "accepted"


def test_worker_once_makes_the_agents_who_sent_wazzup_users(run, helpdesk, outbox_ctx, agent, wazzup_api, wazzup_url):
    """For a worker run from cron: what the running worker does in its background thread."""
    from types import SimpleNamespace

    from wazzup_plugin.outbound import users

    with helpdesk.db.write() as tx:  # what a send by the agent wrote
        users.note_agent(tx.conn, outbox_ctx, SimpleNamespace(id=agent["id"], username="alice", display_name="Alice"))
    wazzup_api.post(f"{wazzup_url}/v3/users", status=200)
    assert run("worker", "--once").exit_code == 0
    [call] = wazzup_api.calls
    assert json.loads(call.request.body) == [{"id": str(agent["id"]), "name": "Alice"}]


def test_serve_runs_the_outbox_worker_beside_gunicorn(helpdesk):
    assert [(w.name, w.argv) for w in helpdesk.registrations.workers] == [("wazzup24-outbox", ("wazzup24", "worker"))]


def test_an_unparseable_api_url_is_a_settings_error_naming_the_variable():
    from wazzup_plugin.settings import SettingsError, WazzupSettings

    with pytest.raises(SettingsError, match="WAZZUP24_API_URL"):
        WazzupSettings.from_env({"WAZZUP24_API_URL": "http://[unclosed"})


def test_every_call_a_command_makes_to_wazzup_is_logged_with_its_outcome(run, wazzup_api, wazzup_url, api_payload,
                                                                          caplog):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", status=401)
    with caplog.at_level(logging.INFO, logger="wazzup_plugin"):
        run("channels")
        run("set-webhook", input="y\n")
    calls = [(r.context["operation"], r.context["outcome"]) for r in caplog.records if r.name == "wazzup_plugin.client"]
    assert calls == [("channels", "ok"), ("get_webhooks", "WazzupAuthError 401")]
