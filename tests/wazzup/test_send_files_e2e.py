"""End to end over real HTTP: an agent uploads a file to the helpdesk (gunicorn), sends it, and the
sandbox, downloading contentUri at once as Wazzup does, fetches it from the helpdesk's public URL."""

import dataclasses

import pytest
import requests

from tests.wazzup.test_send_e2e_sandbox import wait_for
from wazzup_plugin.sandbox.media import pdf

SECRET = "e2e-files-webhook-secret-0123456789"


@pytest.fixture
def sandbox_config(sandbox_config):
    return dataclasses.replace(sandbox_config, fetch_content=True)


@pytest.fixture
def live(gunicorn_host, sandbox_server, database_url, engine, agent, make_wazzup_chat, api_key, free_port,
         outbox_worker_process):
    """The helpdesk under gunicorn with ONE web worker, its public address taken from its webhook URL
    (no WAZZUP24_PUBLIC_URL), and the outbox worker as a real process (``live.start_worker()``)."""
    from types import SimpleNamespace

    webhook = f"http://127.0.0.1:{free_port}/api/webhook"
    env = {"HELPDESK_DATABASE_URL": database_url, "WAZZUP24_API_KEY": api_key, "WAZZUP24_API_URL": sandbox_server.url,
           "WAZZUP24_WEBHOOK_URL": webhook, "WAZZUP24_WEBHOOK_SECRET": SECRET}
    # One web worker: a send that waited for Wazzup in it would leave none to serve Wazzup's download.
    host = gunicorn_host(env, workers=1, port=free_port)
    sandbox_server.app.sandbox.register_webhook(f"{webhook}?token={SECRET}")
    chat = make_wazzup_chat(channel_id=None)  # the channel comes from the sandbox's GET /v3/channels
    def api(method, path, headers=None, **kwargs):  # ``headers`` go on top of the agent's
        return requests.request(method, host.url + path, headers={**agent["headers"], **(headers or {})},
                                timeout=30, **kwargs)

    return SimpleNamespace(host=host, chat=chat, api=api, sandbox=sandbox_server.app.sandbox,
                           start_worker=lambda: outbox_worker_process(env))


def test_an_uploaded_file_goes_out_through_the_worker_while_the_web_worker_serves_its_download(live):
    document = pdf("Invoice 1042")
    uploaded = live.api("POST", f"/api/chats/{live.chat}/wazzup24/files",
                        files={"file": ("Счёт 1042.pdf", document, "application/pdf")})
    assert uploaded.status_code == 201, uploaded.text
    url = uploaded.json()["url"]
    assert url.startswith(live.host.url + "/wazzup24/files/")

    sent = live.api("POST", f"/api/chats/{live.chat}/wazzup24/send", json={"file_id": uploaded.json()["id"]})
    assert sent.status_code == 202, sent.text  # stored; the outbox worker sends it
    message = sent.json()
    assert (message["type"], message["content_name"], message["content_uri"]) == ("document", "Счёт 1042.pdf", url)
    assert message["status"] == "queued"

    live.start_worker()

    def ticked():
        items = live.api("GET", f"/api/chats/{live.chat}/messages").json()["items"]
        return next(m for m in items if m["id"] == message["id"])["status"] == "read"

    wait_for(ticked, what="the read tick")
    received = live.sandbox.received(message["wazzup_crm_message_id"])
    assert received["accepted"] == 1 and received["messages"][0]["contentUri"] == url
    assert live.sandbox.received()["outcomes"]["content_fetched"] == 1
    # What Wazzup downloads is the file itself, with no redirect.
    fetched = requests.get(url, timeout=10, allow_redirects=False)
    assert (fetched.status_code, fetched.content) == (200, document)


def test_an_agents_file_goes_out_before_an_integrators_async_backlog_queued_earlier(live, make_wazzup_chat):
    """The outbox's lanes with the worker as a real process: eight respond-async sends wait, then an
    agent sends a file; the worker sends the file first, then the backlog in the order it came."""
    backlog = []
    for n in range(8):
        chat = make_wazzup_chat(f"790155{n:05d}", channel_id=None, title=f"Customer {n}")
        sent = live.api("POST", f"/api/chats/{chat}/wazzup24/send", json={"text": f"offer {n}"},
                        headers={"Prefer": "respond-async"})
        assert sent.status_code == 202, sent.text
        backlog.append(sent.json()["wazzup_crm_message_id"])
    uploaded = live.api("POST", f"/api/chats/{live.chat}/wazzup24/files",
                        files={"file": ("invoice.pdf", pdf("Invoice 7"), "application/pdf")}).json()
    sent = live.api("POST", f"/api/chats/{live.chat}/wazzup24/send", json={"file_id": uploaded["id"]})
    assert sent.status_code == 202, sent.text
    file_crm = sent.json()["wazzup_crm_message_id"]

    live.start_worker()
    wait_for(lambda: live.sandbox.received()["total"] == 9, what="the worker to send all nine")
    assert [m["crmMessageId"] for m in live.sandbox.received()["messages"]] == [file_crm] + backlog
