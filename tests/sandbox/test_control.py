"""The control API: customers write, statuses and channel changes on demand, what was received, reset."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from tests.sandbox.conftest import HOOK, helpdesk_stub
from wazzup_plugin.sandbox.cli import sandbox_ctl



def write(sandbox_client, **spec):
    return sandbox_client.simulate_post("/_sandbox/customer-messages", json=spec)


def test_a_new_customer_writes_and_the_delivery_reaches_the_webhook(sandbox_client, hook):
    result = write(sandbox_client, text="Здравствуйте! Где мой заказ?")
    assert result.status_code == 201
    assert result.json["delivery"]["state"] == "delivered"
    [body] = hook.posted()
    [item] = body["messages"]
    assert item["text"] == "Здравствуйте! Где мой заказ?"
    assert item["chatId"] == result.json["chatId"]
    assert item["chatId"].isdigit() and len(item["chatId"]) == 11
    assert (item["isEcho"], item["status"], item["type"], item["chatType"]) == (False, "inbound", "text", "whatsapp")
    assert item["contact"]["name"]


def test_a_known_customer_writes_again_with_the_same_number_and_name(sandbox_client, hook):
    first = write(sandbox_client, text="Hi", name="Ivan Petrov").json
    again = write(sandbox_client, text="Anyone there?", **{"from": "known"}).json
    assert again["chatId"] == first["chatId"]
    bodies = hook.posted()
    assert bodies[1]["messages"][0]["contact"]["name"] == "Ivan Petrov"


def test_a_given_number_and_media_can_be_sent(sandbox_client, hook):
    write(sandbox_client, chatId="79161234567", contentUri="https://store.example.test/photo.jpg")
    write(sandbox_client, chatId="79161234567", contentUri="https://store.example.test/a.pdf", type="document")
    items = [b["messages"][0] for b in hook.posted()]
    assert [(i["type"], i["contentUri"]) for i in items] == [
        ("image", "https://store.example.test/photo.jpg"), ("document", "https://store.example.test/a.pdf")]
    assert all("text" not in i and i["chatId"] == "79161234567" for i in items)


def test_a_message_typed_on_the_phone_comes_as_an_echo(sandbox_client, hook):
    write(sandbox_client, chatId="79161234567", text="Sent from the phone", isEcho=True, authorName="Alex")
    item = hook.posted()[0]["messages"][0]
    assert (item["isEcho"], item["status"], item["authorName"]) == (True, "sent", "Alex")


def test_a_telegram_channels_customers_write_from_telegram_and_known_means_its_own(sandbox_client, sandbox, hook):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID, Channel

    telegram = "3f9d2c10-6b1e-4f0a-a7c4-51e2d8b0c7a1"
    sandbox.update_config({"channels": [Channel(DEFAULT_CHANNEL_ID).to_json(),
                                        Channel(telegram, transport="tgapi").to_json()]})
    on_telegram = write(sandbox_client, text="Привет", channelId=telegram).json
    write(sandbox_client, text="Hello", channelId=DEFAULT_CHANNEL_ID)   # the last customer written: WhatsApp's
    again = write(sandbox_client, text="Ещё вопрос", channelId=telegram, **{"from": "known"}).json
    items = [b["messages"][0] for b in hook.posted()]
    assert [i["chatType"] for i in items] == ["telegram", "whatsapp", "telegram"]
    assert again["chatId"] == on_telegram["chatId"] and not on_telegram["chatId"].startswith("7")


def test_known_without_any_customer_is_refused(sandbox_client, hook):
    assert write(sandbox_client, text="x", **{"from": "known"}).status_code == 400


@pytest.mark.parametrize("spec", [{}, {"text": "a", "contentUri": "https://x.test/a"}, {"text": 5},
                                  {"text": "a", "from": "nobody"}, {"text": "a", "channelId": "nope"}])
def test_an_invalid_customer_message_is_refused(sandbox_client, hook, spec):
    assert write(sandbox_client, **spec).status_code == 400
    assert hook.posted() == []


def test_customers_cannot_write_before_a_webhook_is_registered(sandbox_client):
    assert write(sandbox_client, text="Hello?").status_code == 409


def test_a_customer_message_can_be_queued_instead_of_waited_for(sandbox_client, sandbox, hook):
    result = write(sandbox_client, text="later", wait=False)
    assert result.json["delivery"]["state"] == "pending"
    assert hook.posted() == []
    sandbox.sender.pump()
    assert hook.posted()[0]["messages"][0]["text"] == "later"


def test_a_status_can_be_posted_on_demand(sandbox_client, hook):
    result = sandbox_client.simulate_post("/_sandbox/statuses", json={
        "messageId": "m-1", "status": "error", "error": {"error": "SPAM", "description": "Marked as spam"}})
    assert result.status_code == 201
    [item] = hook.posted()[0]["statuses"]
    assert (item["messageId"], item["status"], item["error"]["error"]) == ("m-1", "error", "SPAM")
    assert sandbox_client.simulate_post("/_sandbox/statuses", json={"messageId": "m", "status": "lost"}).status_code \
        == 400


def test_a_channel_state_change_is_shown_and_posted(v3, sandbox_client, sandbox, hook):
    channel_id = sandbox.config.channels[0].channelId
    result = sandbox_client.simulate_patch(f"/_sandbox/channels/{channel_id}", json={"state": "qr"})
    assert result.status_code == 200
    [item] = hook.posted()[0]["channelsUpdates"]
    assert (item["channelId"], item["state"]) == (channel_id, "qr")
    assert isinstance(item["timestamp"], int)
    assert v3.get("/v3/channels").json[0]["state"] == "qr"
    assert v3.send().json["error"] == "MESSAGE_CHANNEL_UNAVAILABLE"
    assert sandbox_client.simulate_patch("/_sandbox/channels/nope", json={"state": "qr"}).status_code == 404


def test_received_counts_acceptances_per_crm_message_id(v3, sandbox_client, clock):
    v3.send(crmMessageId="a")
    v3.send(crmMessageId="b")
    v3.send(crmMessageId="a")           # refused: within 60 s
    clock.advance(61)
    v3.send(crmMessageId="a")           # accepted again: a duplicate the product must never cause
    everything = sandbox_client.simulate_get("/_sandbox/received").json
    assert everything["byCrmMessageId"] == {"a": 2, "b": 1}
    assert everything["total"] == 3
    assert everything["outcomes"] == {"201": 3, "REPEATED_CRM_MESSAGE_ID": 1}
    one = sandbox_client.simulate_get("/_sandbox/received", params={"crmMessageId": "a"}).json
    assert one["accepted"] == 2
    assert [m["text"] for m in one["messages"]] == ["Hello", "Hello"]


def test_reset_forgets_what_was_received_and_the_faults_but_keeps_the_webhook(v3, sandbox_client, sandbox, hook):
    v3.send(crmMessageId="a")
    sandbox_client.simulate_post("/_sandbox/faults", json={"kind": "fail", "count": 9})
    assert sandbox_client.simulate_post("/_sandbox/reset").status_code == 200
    assert sandbox_client.simulate_get("/_sandbox/received").json["total"] == 0
    assert v3.send(crmMessageId="a").status_code == 201
    assert sandbox.webhook_uri == HOOK
    sandbox_client.simulate_post("/_sandbox/reset", json={"keepWebhook": False})
    assert sandbox.webhook_uri is None


def test_config_can_be_read_and_changed_but_not_broken(sandbox_client, sandbox):
    shown = sandbox_client.simulate_get("/_sandbox/config").json
    assert "api_key" not in shown and shown["echo"] == "off"
    assert sandbox_client.simulate_patch("/_sandbox/config", json={"echo": "after"}).json["echo"] == "after"
    for bad in ({"echo": "sideways"}, {"nope": 1}, {"rate_limit": "many"}, {"reorder_statuses": "yes"},
                {"status_delays": [1]}):
        assert sandbox_client.simulate_patch("/_sandbox/config", json=bad).status_code == 400, bad
    assert sandbox.config.echo == "after"


def test_the_cli_drives_a_running_sandbox(sandbox_server, webhook_receiver):
    """``helpdesk-stub wazzup24 sandbox-ctl`` against a real sandbox."""
    sandbox_server.app.sandbox.register_webhook(webhook_receiver.url)
    runner = CliRunner()
    url = ["--url", sandbox_server.url]
    result = runner.invoke(sandbox_ctl, [*url, "write", "Hello from the CLI", "--chat-id", "79990001122"])
    assert result.exit_code == 0, result.output
    assert webhook_receiver.wait_for(1)[0]["messages"][0]["text"] == "Hello from the CLI"
    assert runner.invoke(sandbox_ctl, [*url, "fault", "fail", "--count", "2"]).exit_code == 0
    assert len(sandbox_server.app.sandbox.faults.to_json(sandbox_server.app.sandbox.now())["queued"]) == 1
    assert runner.invoke(sandbox_ctl, [*url, "config", "echo=after"]).exit_code == 0
    assert sandbox_server.app.sandbox.config.echo == "after"
    result = runner.invoke(sandbox_ctl, [*url, "received"])
    assert json.loads(result.output)["total"] == 0
    assert runner.invoke(sandbox_ctl, [*url, "reset"]).exit_code == 0


@pytest.mark.parametrize("args, description", [
    (["config", "foo=1"], "unknown sandbox option 'foo'"),
    (["fault", "slow"], "a slow fault needs seconds > 0"),
    (["write", "Hello!"], "no webhook is registered (PATCH /v3/webhooks first)"),
    (["status", "m-1", "seen"], "give messageId and a status (sent, delivered, read, error, edited)"),
])
def test_a_call_the_sandbox_refuses_is_an_error_on_stderr(sandbox_server, args, description):
    result = CliRunner().invoke(sandbox_ctl, ["--url", sandbox_server.url, *args])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", f"Error: {description}\n")


def test_the_console_script_exits_1_when_the_sandbox_refuses_a_call(sandbox_server):
    done = subprocess.run([*helpdesk_stub(), "wazzup24", "sandbox-ctl", "--url", sandbox_server.url, "config",
                           "foo=1"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    assert done.stderr.endswith("Error: unknown sandbox option 'foo'\n"), done.stderr


def test_without_a_sandbox_the_cli_says_how_to_start_one_or_name_the_one_running():
    result = CliRunner().invoke(sandbox_ctl, ["--url", "http://127.0.0.1:9", "received"])
    assert result.exit_code == 1
    assert "no sandbox at http://127.0.0.1:9" in result.stderr and "helpdesk-stub wazzup24 sandbox" in result.stderr
    assert "--url" in result.stderr and "WAZZUP24_SANDBOX_URL" in result.stderr


@pytest.mark.parametrize("chat_id", ["abc", "+79161234567", "7916 123", "７９１６"])
def test_a_customers_number_is_digits_only(sandbox_server, chat_id):
    result = CliRunner().invoke(sandbox_ctl, ["--url", sandbox_server.url, "write", "Hello!", "--chat-id", chat_id])
    assert result.exit_code == 2 and "digits only" in result.stderr, result.output
    assert sandbox_server.app.sandbox.known_chats == {}


def test_the_sandbox_serves_media_customers_can_send(sandbox_client):
    photo = sandbox_client.simulate_get("/_sandbox/media/photo.png")
    assert photo.status_code == 200 and photo.headers["Content-Type"] == "image/png"
    assert photo.content.startswith(b"\x89PNG\r\n\x1a\n")
    invoice = sandbox_client.simulate_get("/_sandbox/media/invoice.pdf")
    assert invoice.content.startswith(b"%PDF-") and invoice.content.rstrip().endswith(b"%%EOF")
    assert sandbox_client.simulate_get("/_sandbox/media/secret.txt").status_code == 404


def test_the_control_api_shows_the_webhook_secret_masked(sandbox_client, sandbox):
    sandbox.webhook_uri = "http://127.0.0.1:8000/api/webhook?token=whsec-0123456789abcdef&x=1"
    shown = sandbox_client.simulate_get("/_sandbox/config").json
    assert shown["webhooksUri"] == "http://127.0.0.1:8000/api/webhook?token=***&x=1"


@pytest.mark.parametrize("headers, body, status", [
    ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, '{"text": "from a web page"}', 403),
    ({"Content-Type": "application/x-www-form-urlencoded"}, "text=from+a+form", 415),
    ({"Content-Type": "text/plain"}, '{"text": "not sent as JSON"}', 415),
    ({"Content-Type": "application/json", "Origin": "http://evil.example"}, '{"text": "cross-site"}', 403),
])
def test_the_control_api_refuses_what_a_web_page_could_send(sandbox_client, hook, headers, body, status):
    result = sandbox_client.simulate_post("/_sandbox/customer-messages", body=body, headers=headers)
    assert result.status_code == status, result.text
    assert hook.posted() == []
    assert sandbox_client.simulate_post("/_sandbox/reset", headers={"Origin": "http://evil.example"}).status_code == 403


def test_the_control_api_takes_json_from_scripts_and_its_own_origin(sandbox_client, hook):
    own = sandbox_client.simulate_post("/_sandbox/customer-messages", json={"text": "hi"},
                                       headers={"Origin": "http://falconframework.org"})
    assert own.status_code == 201, own.text
    assert sandbox_client.simulate_post("/_sandbox/reset").status_code in (200, 204)


def test_new_customers_get_names_no_other_customer_has(sandbox_client, hook):
    write(sandbox_client, text="Hi", name="Ivan Petrov", chatId="79990000001")        # as the demo seeds them
    for n in range(10):
        write(sandbox_client, text=f"new {n}")
    posted = [body["messages"][0]["contact"]["name"] for body in hook.posted()]
    assert len(set(posted)) == len(posted) == 11, posted
