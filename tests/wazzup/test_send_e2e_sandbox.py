"""End to end over real HTTP: gunicorn serving the helpdesk, the sandbox playing Wazzup24.

A message sent by an agent reaches the sandbox once, its statuses come back through the real
webhook; when the sandbox hangs, drops the connection, fails or refuses connections, the send
answers 202, the outbox worker (a real process) finishes the job, and the sandbox saw it once.
"""

import os
import subprocess
import sys
import time

import pytest
import requests

SECRET = "e2e-webhook-secret-0123456789"


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def live(gunicorn_host, sandbox_server, database_url, engine, agent, make_wazzup_chat, api_key, tmp_path,
         outbox_worker_process):
    """The helpdesk under gunicorn talking to the sandbox; ``live.send(text)``, ``live.start_worker()``."""
    from types import SimpleNamespace

    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

    env = {"HELPDESK_DATABASE_URL": database_url, "WAZZUP24_API_KEY": api_key, "WAZZUP24_API_URL": sandbox_server.url,
           "WAZZUP24_WEBHOOK_SECRET": SECRET, "WAZZUP24_CONNECT_TIMEOUT": "1", "WAZZUP24_READ_TIMEOUT": "1.5"}
    host = gunicorn_host(env, workers=2)
    env["WAZZUP24_WEBHOOK_URL"] = f"{host.url}/api/webhook"
    chat = make_wazzup_chat(channel_id=None)  # the channel comes from the sandbox's GET /v3/channels
    def cli(*args):
        full = {k: v for k, v in os.environ.items() if not k.startswith(("HELPDESK_", "WAZZUP24_"))}
        return subprocess.run([sys.executable, "-m", "host_stub", "wazzup24", *args], cwd=tmp_path,
                              env={**full, **env}, capture_output=True, text=True, timeout=60)

    def start_worker():
        outbox_worker_process(env)

    def send(text, headers=None):
        return requests.post(f"{host.url}/api/chats/{chat}/wazzup24/send", json={"text": text},
                             headers={**agent["headers"], **(headers or {})}, timeout=30)

    def message(message_id):
        items = requests.get(f"{host.url}/api/chats/{chat}/messages", headers=agent["headers"], timeout=10).json()
        return next(m for m in items["items"] if m["id"] == message_id)

    def sandbox(method, path, **kwargs):
        result = requests.request(method, sandbox_server.url + path, timeout=10, **kwargs)
        result.raise_for_status()
        return result.json()

    def wazzup(path):  # the sandbox's Wazzup API, with the key
        result = requests.get(sandbox_server.url + path, headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
        result.raise_for_status()
        return result.json()

    return SimpleNamespace(host=host, chat=chat, cli=cli, start_worker=start_worker, send=send, message=message,
                           sandbox=sandbox, wazzup=wazzup, channel_id=DEFAULT_CHANNEL_ID, tmp_path=tmp_path)


def times_accepted(live, message) -> int:
    """How many times the sandbox accepted the message's crmMessageId."""
    return live.sandbox("GET", "/_sandbox/received",
                        params={"crmMessageId": message["wazzup_crm_message_id"]})["accepted"]


def sent_once_by_the_worker(live, queued) -> None:
    """Start the outbox worker process and wait until it settles ``queued``, sent to Wazzup once."""
    live.start_worker()
    settled = wait_for(lambda: (m := live.message(queued["id"]))["status"] != "queued" and m, timeout=30,
                       what="the worker to settle the message")
    assert settled["status"] in ("accepted", "sent", "delivered", "read"), settled
    assert times_accepted(live, queued) == 1


def test_a_message_goes_out_once_and_its_ticks_come_back_through_the_webhook(live):
    registered = live.cli("set-webhook", "--yes")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert SECRET not in registered.stdout
    result = live.send("Hello from the helpdesk")
    assert result.status_code == 201, result.text
    sent = result.json()
    # A status webhook may beat the 201 (the sandbox sends ticks at once): it is applied, never lost.
    assert sent["status"] in ("accepted", "sent", "delivered", "read") and sent["wazzup_message_id"]
    received = live.sandbox("GET", "/_sandbox/received", params={"crmMessageId": sent["wazzup_crm_message_id"]})
    assert received["accepted"] == 1
    assert received["messages"][0]["channelId"] == live.channel_id
    wait_for(lambda: live.message(sent["id"])["status"] == "read", what="the read tick")
    connection = live.cli("test-connection")
    assert connection.returncode == 0, connection.stdout
    assert "Wazzup24 connection: OK" in connection.stdout and SECRET not in connection.stdout


@pytest.mark.parametrize("fault", [
    {"kind": "slow", "seconds": 4, "path": "/v3/message"},              # accepted, then our read timeout
    {"kind": "drop", "path": "/v3/message"},                            # accepted, then the connection drops
    {"kind": "fail", "status": 502, "path": "/v3/message", "afterAccept": True},   # accepted, then a 5xx
    {"kind": "fail", "status": 500, "path": "/v3/message"},             # a 5xx before accepting
    {"kind": "downtime", "seconds": 2, "mode": "refuse"},               # connections refused
], ids=["hang", "drop", "accept-then-5xx", "5xx", "refused"])
def test_the_worker_finishes_interrupted_sends_without_sending_twice(live, fault):
    live.sandbox("POST", "/_sandbox/faults", json=fault)
    result = live.send(f"through a {fault['kind']} fault")
    assert result.status_code == 202, result.text
    queued = result.json()
    assert queued["status"] == "queued"
    sent_once_by_the_worker(live, queued)


def test_respond_async_is_answered_at_once_and_the_worker_process_sends_it_once(live):
    """Under gunicorn: the 202 comes back with the message stored, the request having called nobody;
    the outbox worker (a real process) sends it, and the sandbox sees it once."""
    result = live.send("no waiting", headers={"Prefer": "respond-async"})
    assert (result.status_code, result.headers["Preference-Applied"]) == (202, "respond-async")
    queued = result.json()
    assert (queued["status"], live.message(queued["id"])["status"]) == ("queued", "queued")
    assert times_accepted(live, queued) == 0  # nothing went out before the worker
    sent_once_by_the_worker(live, queued)


def test_the_worker_process_makes_the_sending_agent_a_wazzup_user(live, agent):
    """Wazzup shows a send's crmUserId as its sender only for a user it has: after an agent's send the
    outbox worker (a real process) makes them one, and Wazzup names them on what they send."""
    assert live.send("Hello from Alice").status_code == 201
    assert live.wazzup("/v3/users") == []
    live.start_worker()
    listed = wait_for(lambda: live.wazzup("/v3/users"), timeout=30, what="the agent as a Wazzup user")
    assert listed == [{"id": str(agent["id"]), "name": "Alice Agent"}]


def test_the_helpdesk_writes_first_on_telegram_by_username_and_the_answer_lands_in_that_chat(live, agent):
    """Over real HTTP: a Telegram chat started by username goes out by username; the sandbox, as Wazzup,
    answers with the chat's id, and the customer's answer to that id lands in the started chat."""
    telegram = "3f9d2c10-6b1e-4f0a-a7c4-51e2d8b0c7a1"
    channels = live.sandbox("GET", "/_sandbox/config")["channels"]
    live.sandbox("PATCH", "/_sandbox/config", json={"channels": channels + [
        {"channelId": telegram, "transport": "tgapi", "plainId": "helpdesk_support", "state": "active"}]})
    assert live.cli("set-webhook", "--yes").returncode == 0
    started = requests.post(f"{live.host.url}/api/wazzup24/chats", json={"username": "@Olga_K", "channel_id": telegram},
                            headers=agent["headers"], timeout=30)
    assert started.status_code == 201, started.text
    chat = started.json()["id"]
    sent = requests.post(f"{live.host.url}/api/chats/{chat}/wazzup24/send", json={"text": "Your order is ready"},
                         headers=agent["headers"], timeout=30)
    assert sent.status_code == 201, sent.text
    [received] = live.sandbox("GET", "/_sandbox/received",
                              params={"crmMessageId": sent.json()["wazzup_crm_message_id"]})["messages"]
    assert (received["channelId"], received["chatType"]) == (telegram, "telegram")
    named = received["chatId"]  # the id the sandbox gave the customer it was asked to write to by username
    answer = live.sandbox("POST", "/_sandbox/customer-messages", json={
        "text": "Thank you!", "chatId": named, "chatType": "telegram", "channelId": telegram, "wait": True})
    assert answer["delivery"]["state"] == "delivered", answer
    items = requests.get(f"{live.host.url}/api/chats/{chat}/messages", headers=agent["headers"], timeout=10).json()
    assert [m["text"] for m in items["items"]] == ["Your order is ready", "Thank you!"]
    info = requests.get(f"{live.host.url}/api/chats/{chat}/wazzup24/info", headers=agent["headers"], timeout=10)
    assert info.json()["wazzup_chat_id"] == named


def test_the_helpdesk_writes_first_and_the_customers_answer_lands_in_the_same_chat(live, agent):
    """Over real HTTP: a chat started with a number as people type it, a message to it, the customer's
    answer through the real webhook: one chat, both messages in it."""
    assert live.cli("set-webhook", "--yes").returncode == 0
    started = requests.post(f"{live.host.url}/api/wazzup24/chats", json={"phone": "8 (916) 555-01-32", "name": "Olga"},
                            headers=agent["headers"], timeout=30)
    assert started.status_code == 201, started.text
    chat = started.json()["id"]
    sent = requests.post(f"{live.host.url}/api/chats/{chat}/wazzup24/send", json={"text": "Your order is ready"},
                         headers=agent["headers"], timeout=30)
    assert sent.status_code == 201, sent.text
    received = live.sandbox("GET", "/_sandbox/received", params={"crmMessageId": sent.json()["wazzup_crm_message_id"]})
    assert (received["messages"][0]["chatId"], received["messages"][0]["channelId"]) == ("79165550132", live.channel_id)
    answer = live.sandbox("POST", "/_sandbox/customer-messages", json={"text": "Thank you!", "chatId": "79165550132",
                                                                         "wait": True})
    assert answer["delivery"]["state"] == "delivered", answer

    def texts():
        items = requests.get(f"{live.host.url}/api/chats/{chat}/messages", headers=agent["headers"], timeout=10)
        return [m["text"] for m in items.json()["items"]]

    assert texts() == ["Your order is ready", "Thank you!"]
    chats = requests.get(f"{live.host.url}/api/chats", params={"q": "79165550132"}, headers=agent["headers"],
                         timeout=10).json()["items"]
    assert [c["id"] for c in chats] == [chat]
