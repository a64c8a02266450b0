"""End to end over real HTTP: a customer sends a photo through the sandbox, the helpdesk (gunicorn) stores
the message, the outbox worker (a real process) downloads the photo from the sandbox's store, and the
helpdesk serves its own copy, whole or a byte range of it."""

import hashlib

import requests

from tests.wazzup.test_send_e2e_sandbox import wait_for
from wazzup_plugin.sandbox.media import png, store_url

SECRET = "e2e-media-webhook-secret-0123456789"


def test_a_customers_photo_is_downloaded_by_the_worker_and_served_by_the_helpdesk(
        gunicorn_host, sandbox_server, database_url, engine, agent, api_key, free_port, outbox_worker_process):
    webhook = f"http://127.0.0.1:{free_port}/api/webhook"
    env = {"HELPDESK_DATABASE_URL": database_url, "WAZZUP24_API_KEY": api_key, "WAZZUP24_API_URL": sandbox_server.url,
           "WAZZUP24_WEBHOOK_URL": webhook, "WAZZUP24_WEBHOOK_SECRET": SECRET,
           "WAZZUP24_MEDIA_HOSTS": "store.wazzup24.com,127.0.0.1"}
    host = gunicorn_host(env, workers=1, port=free_port)
    sandbox_server.app.sandbox.register_webhook(f"{webhook}?token={SECRET}")
    photo_uri = store_url(sandbox_server.url, "parcel.png")

    written = requests.post(f"{sandbox_server.url}/_sandbox/customer-messages",
                            json={"contentUri": photo_uri, "type": "image", "name": "Maria"}, timeout=30)
    assert written.json()["delivery"]["state"] == "delivered", written.text
    outbox_worker_process(env)

    def the_photo():
        chats = requests.get(f"{host.url}/api/chats", headers=agent["headers"], timeout=10).json()["items"]
        items = requests.get(f"{host.url}/api/chats/{chats[0]['id']}/messages", headers=agent["headers"],
                             timeout=10).json()["items"]
        return next((m for m in items if m["wazzup_media_state"] == "stored"), None)

    message = wait_for(the_photo, what="the stored copy")
    assert message["content_uri"] == photo_uri  # Wazzup's link stays as it was
    copy = requests.get(host.url + message["wazzup_media_url"], timeout=10)
    assert (copy.status_code, copy.headers["Content-Type"], copy.content) == (200, "image/png", png())
    assert copy.headers["ETag"] == f'"{hashlib.sha256(png()).hexdigest()}"'
    # A player seeking: gunicorn carries the slice read from the database, and only it.
    seek = requests.get(host.url + message["wazzup_media_url"], headers={"Range": "bytes=1000-1999"},
                        timeout=10)
    assert (seek.status_code, seek.content) == (206, png()[1000:2000])
    assert seek.headers["Content-Range"] == f"bytes 1000-1999/{len(png())}"
