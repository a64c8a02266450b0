"""A customer's photo, voice note or document is kept by the helpdesk: queued with the message, downloaded
by the outbox worker from Wazzup's store (allowed hosts only, capped, checksummed, retried) and served
from the helpdesk's own origin."""

from __future__ import annotations

import hashlib
import re

from contextlib import contextmanager

import pytest
import requests
import responses
import sqlalchemy as sa

from host_stub.errors import StartupError

STORE_URI = "https://store.wazzup24.com/e5115a1e0046d628b3924161d411e5812d2546/?filename=photo.jpg"
PHOTO = b"\xff\xd8\xff\xe0" + b"a customer's photo" * 100


def _image_delivery(payload, uri=STORE_URI):
    body = payload("incoming_image")
    body["messages"][0]["contentUri"] = uri
    return body


def _messages_page(client, auth, wazzup_rows):
    [chat] = wazzup_rows.chats()
    return client.simulate_get(f"/api/chats/{chat['id']}/messages", headers=auth).json["items"]


def test_an_incoming_media_message_is_queued_for_download_with_the_message(deliver, payload, media_row,
                                                                          wazzup_rows, wazzup_api):
    assert deliver(payload("incoming_image")).status_code == 200

    row = media_row()
    [message] = wazzup_rows.messages()
    assert (row.message_id, row.chat_id, row.source_uri) == (message["id"], message["chat_id"], STORE_URI)
    assert (row.state, row.attempts, row.name, row.data) == ("pending", 0, "photo.jpg", None)
    assert len(row.token) >= 40
    assert len(wazzup_api.calls) == 0  # never downloaded inside the webhook's request


def test_media_in_a_known_chat_is_queued_too(deliver, payload, media_row, wazzup_rows):
    """PostgreSQL writes such a delivery in one statement: the queueing is part of it."""
    deliver(payload("incoming_text"))  # the chat exists from now on

    deliver(payload("incoming_image"))

    image = wazzup_rows.message(payload("incoming_image")["messages"][0]["messageId"])
    row = media_row()
    assert (row.message_id, row.chat_id, row.state, row.name) == (image["id"], image["chat_id"], "pending", "photo.jpg")
    assert row.next_attempt_at == row.created_at and row.attempts == 0 and len(row.token) >= 40


def test_a_redelivered_webhook_leaves_one_media_row(deliver, payload, media_row):
    deliver(payload("incoming_image"))
    first = media_row()
    deliver(payload("incoming_image"))
    assert media_row() == first


def test_a_text_message_queues_no_download(deliver, payload, media_row):
    deliver(payload("incoming_text"))
    assert media_row() is None


def test_a_stored_copy_is_served_with_its_checksum_and_shown_on_the_message(deliver, payload, media_row, download,
                                                                             wazzup_api, client, auth, wazzup_rows):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO, content_type="image/jpeg")

    assert download() == 1

    row = media_row()
    assert (row.state, row.size, row.content_type, row.attempts) == ("stored", len(PHOTO), "image/jpeg", 1)
    assert row.sha256 == hashlib.sha256(PHOTO).hexdigest() and row.data == PHOTO
    [message] = _messages_page(client, auth, wazzup_rows)
    assert message["wazzup_media_state"] == "stored"
    url = message["wazzup_media_url"]
    assert url == f"/wazzup24/media/{row.token}/photo.jpg"
    served = client.simulate_get(url)
    assert served.status_code == 200 and served.content == PHOTO
    assert served.headers["ETag"] == f'"{row.sha256}"'
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"].startswith("sandbox")
    assert served.headers["Content-Disposition"].startswith("inline;")
    assert served.headers["Content-Type"] == "image/jpeg"
    assert client.simulate_head(url).headers["Content-Length"] == str(len(PHOTO))
    assert client.simulate_get(url, headers={"If-None-Match": f'"{row.sha256}"'}).status_code == 304
    assert client.simulate_get(f"/wazzup24/media/{row.token}/other.jpg").status_code == 404


def test_a_player_seeking_in_a_stored_copy_gets_only_the_bytes_it_asks_for(
        deliver, payload, media_row, download, wazzup_api, client):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO, content_type="image/jpeg")
    download()
    url = f"/wazzup24/media/{media_row().token}/photo.jpg"

    seek = client.simulate_get(url, headers={"Range": "bytes=500-599"})
    assert (seek.status_code, seek.content) == (206, PHOTO[500:600])
    assert seek.headers["Content-Range"] == f"bytes 500-599/{len(PHOTO)}"
    assert seek.headers["Accept-Ranges"] == "bytes"
    head = client.simulate_head(url, headers={"Range": "bytes=-4"})
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (206, b"", "4")
    past = client.simulate_get(url, headers={"Range": f"bytes={len(PHOTO)}-"})
    assert (past.status_code, past.json["code"]) == (416, "range_not_satisfiable")
    assert past.headers["Content-Range"] == f"bytes */{len(PHOTO)}"
    assert past.headers["Content-Security-Policy"].startswith("sandbox")


@pytest.mark.parametrize("asked", [{}, {"Range": "bytes=0-9"}])
def test_a_copy_replaced_while_it_is_answered_is_not_served_under_the_old_ones_etag(
        deliver, payload, media_row, download, wazzup_api, client, helpdesk, monkeypatch, asked):
    """An edit bringing new media keeps the copy's token: bytes of the new file under the old one's
    ETag and Content-Range would splice two files in a player's cache. It is gone, as a deleted one."""
    from wazzup_plugin.media import resources
    from wazzup_plugin.state import get_state

    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO, content_type="image/jpeg")
    download()
    url = f"/wazzup24/media/{media_row().token}/photo.jpg"
    other = b"\xff\xd8\xff\xe0 another photo"
    serve_stored = resources.serve_stored

    def replaced_meanwhile(req, resp, **found):  # between the row's headers and its bytes
        t = get_state(helpdesk).tables["media"]
        with helpdesk.db.write() as tx:
            tx.conn.execute(sa.update(t).values(data=other, size=len(other),
                                                sha256=hashlib.sha256(other).hexdigest()))
        serve_stored(req, resp, **found)

    monkeypatch.setattr(resources, "serve_stored", replaced_meanwhile)
    served = client.simulate_get(url, headers=asked)
    assert (served.status_code, served.json["code"]) == (404, "not_found")
    assert "ETag" not in served.headers


def test_the_download_never_sends_our_api_key(deliver, payload, download, wazzup_api, api_key, http):
    http.headers["Authorization"] = f"Bearer {api_key}"  # even a session that carries it
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO)

    download()

    [call] = wazzup_api.calls
    assert "Authorization" not in call.request.headers
    assert api_key not in str(call.request.headers)


def test_the_download_sends_no_credentials_from_netrc_and_asks_for_no_compression(
        deliver, payload, download, wazzup_api, tmp_path, monkeypatch):
    """requests adds a ~/.netrc login for the host unless the request has an auth of its own; and a
    compressed answer would be inflated past the size cap's count of bytes as they come."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine store.wazzup24.com login someone password a-secret\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO)

    download()

    [call] = wazzup_api.calls
    assert "Authorization" not in call.request.headers
    assert call.request.headers["Accept-Encoding"] == "identity"


def test_a_copy_not_downloaded_yet_is_not_served_and_the_message_says_pending(deliver, payload, media_row, client,
                                                                               auth, wazzup_rows):
    deliver(payload("incoming_image"))
    [message] = _messages_page(client, auth, wazzup_rows)
    assert (message["wazzup_media_state"], message["wazzup_media_url"]) == ("pending", None)
    assert client.simulate_get(f"/wazzup24/media/{media_row().token}/photo.jpg").status_code == 404


def test_a_text_message_has_no_media_fields(deliver, payload, client, auth, wazzup_rows):
    deliver(payload("incoming_text"))
    [message] = _messages_page(client, auth, wazzup_rows)
    assert (message["wazzup_media_state"], message["wazzup_media_url"]) == (None, None)


@pytest.mark.parametrize("uri", [
    "http://127.0.0.1:8080/admin/?filename=photo.jpg",
    "https://store.wazzup24.com.evil.example/?filename=photo.jpg",
    "https://wazzup24.com@169.254.169.254/?filename=photo.jpg",
    "https://localhost/x/?filename=photo.jpg",
    # urlsplit reads one host name, "127.0.0.1\\.wazzup24.com"; urllib3 would connect to 127.0.0.1
    "http://127.0.0.1\\.wazzup24.com/admin?filename=leak.txt",
    "https://store.wazzup24.com%2F.evil.example/?filename=photo.jpg",
])
def test_a_link_outside_the_allowed_hosts_is_refused_without_a_request(deliver, payload, media_row, download,
                                                                       wazzup_api, uri):
    deliver(_image_delivery(payload, uri))

    download()

    assert len(wazzup_api.calls) == 0
    row = media_row()
    assert (row.state, row.data) == ("refused_host", None)
    assert "WAZZUP24_MEDIA_HOSTS" in row.last_error


def test_a_redirect_to_an_allowed_host_is_followed_once(deliver, payload, media_row, download, wazzup_api):
    cdn = "https://cdn.wazzup24.ru/files/photo.jpg"
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, status=302, headers={"Location": cdn})
    wazzup_api.get(cdn, body=PHOTO)

    download()

    assert [c.request.url for c in wazzup_api.calls] == [STORE_URI, cdn]
    assert (media_row().state, media_row().data) == ("stored", PHOTO)


def test_a_redirect_elsewhere_is_refused_and_not_followed(deliver, payload, media_row, download, wazzup_api):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, status=302, headers={"Location": "http://10.0.0.5/internal"})

    download()

    assert [c.request.url for c in wazzup_api.calls] == [STORE_URI]
    assert media_row().state == "refused_host"


@pytest.mark.parametrize("uri, allowed", [
    ("https://store.wazzup24.com/a/?filename=photo.jpg", True),
    ("https://STORE.wazzup24.com./a", True),
    ("https://cdn.wazzup24.ru:8443/a", True),
    ("http://127.0.0.1\\.wazzup24.com/admin", False),
    ("https://store.wazzup24.com\t/a", False),
    ("https://store.wazzup24.com/a\nb", False),
    ("https://store.wazzup24.com%2F.evil.example/a", False),
    ("https://[::1]/a", False),
    ("ftp://store.wazzup24.com/a", False),
])
def test_the_host_check_reads_a_link_as_the_connection_would(uri, allowed):
    from wazzup_plugin.media.fetch import host_allowed
    from wazzup_plugin.settings import DEFAULT_MEDIA_HOSTS

    assert host_allowed(uri, tuple(DEFAULT_MEDIA_HOSTS.split(","))) is allowed


def test_a_redirect_from_https_to_plain_http_is_refused(deliver, payload, media_row, download, wazzup_api):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, status=302, headers={"Location": "http://cdn.wazzup24.com/photo.jpg"})

    download()

    assert len(wazzup_api.calls) == 1
    assert media_row().state == "refused_host"


def test_a_second_redirect_is_not_followed(deliver, payload, media_row, download, wazzup_api):
    cdn = "https://cdn.wazzup24.com/a"
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, status=302, headers={"Location": cdn})
    wazzup_api.get(cdn, status=302, headers={"Location": "https://cdn.wazzup24.com/b"})

    download()

    assert len(wazzup_api.calls) == 2
    assert media_row().state == "failed"


@pytest.fixture
def settings(settings):
    return {**settings, "WAZZUP24_MEDIA_MAX_MB": "1"}


def test_a_file_over_the_size_cap_is_too_big_and_not_kept(deliver, payload, media_row, download, wazzup_api):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=b"x" * (1024 * 1024 + 1))

    download()

    row = media_row()
    assert (row.state, row.data, row.size) == ("too_big", None, None)
    assert "WAZZUP24_MEDIA_MAX_MB" in row.last_error


def test_a_file_of_exactly_the_cap_is_kept(deliver, payload, media_row, download, wazzup_api):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=b"x" * (1024 * 1024))

    download()

    assert (media_row().state, media_row().size) == ("stored", 1024 * 1024)


@pytest.mark.parametrize("body, declared, says", [
    (b"", "image/jpeg", "empty"),
    # A proxy's maintenance page answered with 200, where the message names a photo.
    (b"<html><body>Service temporarily unavailable</body></html>", "text/html; charset=utf-8", "web page"),
    (b"<html xmlns='http://www.w3.org/1999/xhtml'><body>Maintenance</body></html>", "application/xhtml+xml",
     "web page"),
])
def test_an_answer_that_is_not_the_file_is_retried_not_kept_as_the_file(deliver, payload, media_row, download,
                                                                        wazzup_api, clock, body, declared, says):
    deliver(payload("incoming_image"))  # photo.jpg
    wazzup_api.get(STORE_URI, body=body, content_type=declared)
    wazzup_api.get(STORE_URI, body=PHOTO, content_type="image/jpeg")

    download()

    row = media_row()
    assert (row.state, row.data, row.attempts) == ("pending", None, 1)
    assert says in row.last_error
    clock.advance((row.next_attempt_at - clock()).total_seconds())
    download()
    assert (media_row().state, media_row().data) == ("stored", PHOTO)


@pytest.mark.parametrize("data, served_as", [
    (b"RIFF\x1a\x00\x00\x00WEBPVP8L" + b"\x00" * 20, "image/webp"),   # a sticker WhatsApp made a WebP
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png"),
    (b"PK\x03\x04 an animated sticker's archive", "application/octet-stream"),   # not a picture: a download
])
def test_a_sticker_the_store_sends_as_bytes_is_kept_as_the_picture_it_is(deliver, payload, media_row, download,
                                                                         wazzup_api, client, data, served_as):
    uri = "https://store.wazzup24.com/5f6e/?filename=sticker.was"   # how WhatsApp's stickers arrive
    deliver(_image_delivery(payload, uri))
    wazzup_api.get(uri, body=data, content_type="application/octet-stream")

    download()

    row = media_row()
    assert (row.state, row.content_type) == ("stored", served_as)
    served = client.simulate_get(f"/wazzup24/media/{row.token}/sticker.was")
    assert served.headers["Content-Type"] == served_as and served.content == data


@pytest.mark.parametrize("status", [404, 410])
def test_a_file_the_store_no_longer_has_fails_at_once(deliver, payload, media_row, download, wazzup_api, status):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, status=status)

    download()

    row = media_row()
    assert (row.state, row.attempts) == ("failed", 1)
    assert str(status) in row.last_error


def test_network_errors_and_5xx_are_retried_on_a_schedule_then_fail(deliver, payload, media_row, download,
                                                                     wazzup_api, clock):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=requests.ConnectionError("refused"))
    wazzup_api.get(STORE_URI, status=503)
    delays = []
    for attempt in range(1, 6):
        download()
        row = media_row()
        assert (row.state, row.attempts) == ("pending", attempt)
        delays.append((row.next_attempt_at - clock()).total_seconds())
        clock.advance(delays[-1] - 1)
        assert download() == 0  # not due a second early
        clock.advance(1)
    assert delays == [60, 300, 1800, 7200, 43200]

    download()

    row = media_row()
    assert (row.state, row.attempts) == ("failed", 6)
    assert len(wazzup_api.calls) == 6


def test_an_agent_retries_a_failed_download(deliver, payload, media_row, download, wazzup_api, client, auth,
                                            wazzup_rows):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, status=404)
    download()
    [message] = wazzup_rows.messages()
    retry = f"/api/chats/{message['chat_id']}/wazzup24/messages/{message['id']}/media/retry"

    answer = client.simulate_post(retry, headers=auth)

    assert answer.status_code == 202 and answer.json == {"message_id": message["id"], "state": "pending"}
    assert (media_row().state, media_row().attempts) == ("pending", 0)
    assert client.simulate_post(retry, headers=auth).status_code == 409  # already pending
    wazzup_api.replace(responses.GET, STORE_URI, body=PHOTO)
    download()
    assert media_row().state == "stored"
    assert client.simulate_post(retry, headers=auth).json["code"] == "not_retryable"


def test_a_retry_needs_an_agent_and_a_known_message(deliver, payload, client, auth, wazzup_rows):
    deliver(payload("incoming_image"))
    deliver(payload("incoming_text"))
    image, text = wazzup_rows.messages()
    base = f"/api/chats/{image['chat_id']}/wazzup24/messages"

    assert client.simulate_post(f"{base}/{image['id']}/media/retry").status_code == 401
    assert client.simulate_post(f"{base}/{text['id']}/media/retry", headers=auth).status_code == 404
    assert client.simulate_post(f"{base}/999999/media/retry", headers=auth).status_code == 404
    other_chat = f"/api/chats/{image['chat_id'] + 1000}/wazzup24/messages/{image['id']}/media/retry"
    assert client.simulate_post(other_chat, headers=auth).status_code == 404


def test_two_workers_never_download_the_same_file(deliver, payload, media_row, helpdesk, download, wazzup_api):
    from wazzup_plugin.media.download import claim_due, download_one
    from wazzup_plugin.state import get_state

    state = get_state(helpdesk)
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO)
    from datetime import timedelta

    [claimed] = claim_due(helpdesk.db, state.tables["media"], "worker-a", helpdesk.clock(), 5, timedelta(minutes=2))

    assert download("worker-b") == 0  # leased to worker-a
    download_one(helpdesk.db, state, helpdesk.http, "worker-a", claimed, helpdesk.clock)
    assert download("worker-b") == 0  # stored

    assert len(wazzup_api.calls) == 1
    assert media_row().state == "stored"


def test_an_edit_that_brings_new_media_downloads_it_again(deliver, payload, media_row, download, wazzup_api):
    new_uri = "https://store.wazzup24.com/b2c3/?filename=invoice.pdf"
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO)
    download()
    token = media_row().token
    edited = _image_delivery(payload, new_uri)
    edited["messages"][0].update(isEdited=True, dateTime="2025-05-06T14:17:00Z")

    deliver(edited)

    row = media_row()
    assert (row.state, row.source_uri, row.name, row.data, row.token) == ("pending", new_uri, "invoice.pdf", None, token)
    wazzup_api.get(new_uri, body=b"%PDF-1.4")
    download()
    assert (media_row().state, media_row().content_type) == ("stored", "application/pdf")


@pytest.mark.parametrize("name, declared", [
    ("page.html", "text/html"), ("drawing.svg", "image/svg+xml"), ("evil.js", "text/javascript"),
    ("evil.mjs", "text/javascript"), ("look.css", "text/css"), ("code.wasm", "application/wasm"),
    ("noextension", "application/javascript"),
])
def test_a_stored_file_a_browser_would_run_is_served_as_bytes_to_download(deliver, payload, media_row, download,
                                                                          wazzup_api, client, name, declared):
    uri = f"https://store.wazzup24.com/abc/?filename={name}"
    deliver(_image_delivery(payload, uri))
    wazzup_api.get(uri, body=b"<script>alert(1)</script>", content_type=declared)

    download()

    row = media_row()
    served = client.simulate_get(f"/wazzup24/media/{row.token}/{name}")
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert served.headers["Content-Disposition"].startswith("attachment;")


@pytest.mark.parametrize("name, value, says", [
    ("WAZZUP24_MEDIA_HOSTS", "http://store.wazzup24.com", "WAZZUP24_MEDIA_HOSTS"),
    ("WAZZUP24_MEDIA_HOSTS", "*", "WAZZUP24_MEDIA_HOSTS"),
    ("WAZZUP24_MEDIA_MAX_MB", "0", "WAZZUP24_MEDIA_MAX_MB"),
    ("WAZZUP24_MEDIA_MAX_MB", "lots", "WAZZUP24_MEDIA_MAX_MB"),
])
def test_media_settings_are_checked_at_startup(build_app, pm, name, value, says):
    with pytest.raises(StartupError, match=says):
        build_app(pm, **{name: value})


def test_the_media_hosts_setting_decides_what_is_fetched(build_app, pm_with, deliver, payload, wazzup_api):
    from falcon.testing import TestClient

    from wazzup_plugin.media.download import download_due
    from wazzup_plugin.state import get_state

    app = build_app(pm_with(), WAZZUP24_MEDIA_HOSTS="files.example.org")
    uri = "https://files.example.org/a/?filename=photo.jpg"
    TestClient(app).simulate_post("/api/webhook", json=_image_delivery(payload, uri))
    wazzup_api.get(uri, body=PHOTO)

    download_due(app.helpdesk, get_state(app.helpdesk), "worker-a")

    assert [c.request.url for c in wazzup_api.calls] == [uri]


def test_status_shows_the_media_backlog(run, deliver, payload):
    import json

    deliver(payload("incoming_image"))
    deliver(payload("incoming_document"))

    report = json.loads(run("status", "--json").output)

    assert report["media"]["pending"] == 2 and report["media"]["oldest_queued_at"]
    assert re.search(r"Media backlog +2, oldest queued ", run("status").output)


def test_new_media_an_edit_brings_counts_in_the_backlog_from_the_edit(run, deliver, payload, media_row, download,
                                                                      wazzup_api, clock):
    import json

    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO)
    download()
    clock.advance(days=3)
    edited = _image_delivery(payload, "https://store.wazzup24.com/b2c3/?filename=invoice.pdf")
    edited["messages"][0].update(isEdited=True, dateTime="2025-05-06T14:17:00Z")
    deliver(edited)

    assert media_row().state == "pending"
    report = json.loads(run("status", "--json").output)
    assert report["media"]["oldest_queued_at"] == clock.now.isoformat()


def test_worker_once_from_cron_downloads_customers_media_too(run, deliver, payload, media_row, wazzup_api):
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO)

    assert run("worker", "--once").exit_code == 0

    row = media_row()
    assert (row.state, row.sha256) == ("stored", hashlib.sha256(PHOTO).hexdigest())


def test_a_copys_token_is_masked_in_logs():
    import wazzup_plugin.hooks

    line = "GET /wazzup24/media/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcd/photo.jpg 200"
    masked = line
    for pattern in wazzup_plugin.hooks.register_log_masks():
        masked = pattern.sub(lambda m: m.group(1) + "***", masked)
    assert masked == "GET /wazzup24/media/***/photo.jpg 200"


def test_a_slow_media_download_does_not_hold_back_a_queued_message(deliver, payload, wazzup_api, wazzup_url,
                                                                   outbox_ctx, make_wazzup_chat, queue):
    """The worker downloads in a thread of its own: while the store trickles a file (up to the
    download's whole budget), an agent's queued message still goes out at once."""
    import json
    import threading

    from wazzup_plugin.outbound import worker

    downloading, sent = threading.Event(), threading.Event()

    def slow_store(request):
        downloading.set()
        sent.wait(15)  # the store answers only once the message went out (or gives up)
        return 200, {}, PHOTO

    def wazzup(request):
        sent.set()
        return 201, {}, json.dumps({"messageId": "wz-1", "chatId": "79011112233"})

    wazzup_api.add_callback("GET", STORE_URI, callback=slow_store)
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=wazzup)
    deliver(payload("incoming_image"))
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(outbox_ctx, stop), kwargs={"poll_seconds": 0.01})
    running.start()
    try:
        assert downloading.wait(10), "the worker never started the download"
        queue(make_wazzup_chat(), texts=["on its way"])  # as the send route queues a file for the worker
        assert sent.wait(5), "the queued message waited for the media download"
    finally:
        sent.set()
        stop.set()
        running.join(20)
    assert not running.is_alive()


# ---------------------------------------------------------------- what a hostile or broken store can do


@contextmanager
def _trickling_store(pieces: int, every: float, piece: int = 100):
    """A store on 127.0.0.1 sending a file of ``pieces`` × ``piece`` bytes, a piece every ``every``
    seconds (each read beats any read timeout); yields (its URL, the pieces it managed to write)."""
    import http.server
    import socketserver
    import threading

    written = []

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(pieces * piece))
            self.end_headers()
            try:
                for _ in range(pieces):
                    self.wfile.write(b"x" * piece)
                    self.wfile.flush()
                    written.append(piece)
                    threading.Event().wait(every)
            except OSError:
                pass  # the client hung up: what the budget should make it do

        def log_message(self, *args):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/f.jpg", written
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("min_rate", [None, 1000], ids=["budget alone", "slower than the least rate"])
def test_a_trickling_store_is_given_up_at_the_downloads_budget_not_when_it_finishes(min_rate):
    """Each read beats the read timeout, yet the whole download stops at its budget (else one store
    sending a byte every few seconds keeps a download, and its claim, going for days): 400 bytes a
    second earn little beyond the budget at a least rate of 1,000."""
    from wazzup_plugin.media.fetch import fetch

    with _trickling_store(40, 0.25) as (url, written), requests.Session() as session:  # 10 s in all
        got = fetch(session, url, hosts=("127.0.0.1",), max_bytes=10**6, timeout=(2, 2), budget=1.0,
                    min_rate=min_rate)
        assert len(written) < 30, "the download waited for (nearly) the whole trickle"
    assert (got.outcome, got.error) == ("retry", "the download was too slow and was given up")


def test_a_large_file_that_keeps_coming_is_stored_past_the_downloads_budget():
    """A big video from a slow store takes longer than the budget: while it keeps coming at the least
    rate (here 2,000 bytes a second against 1,000) the download goes on, and the whole file is kept."""
    from wazzup_plugin.media.fetch import fetch

    with _trickling_store(40, 0.05) as (url, _), requests.Session() as session:  # 2 s in all
        got = fetch(session, url, hosts=("127.0.0.1",), max_bytes=10**6, timeout=(2, 2), budget=0.5,
                    min_rate=1000)
    assert (got.outcome, len(got.data)) == ("stored", 4000)


def test_a_stopping_worker_ends_a_download_within_its_budget_however_it_is_going():
    import threading

    from wazzup_plugin.media.fetch import fetch

    stop = threading.Event()
    stop.set()
    with _trickling_store(40, 0.05) as (url, written), requests.Session() as session:
        got = fetch(session, url, hosts=("127.0.0.1",), max_bytes=10**6, timeout=(2, 2), budget=0.5,
                    min_rate=1000, stop=stop)
        assert len(written) < 30
    assert (got.outcome, got.error) == ("stopped", "the worker stopped during the download")


def test_a_download_cut_short_by_a_stopping_worker_is_given_back_without_counting_an_attempt(
        deliver, payload, helpdesk, wazzup_api, monkeypatch, download):
    """A restart during a long download is no fault of the file's: the row is free again at once,
    its attempts and retry schedule untouched (five restarts must not fail a file)."""
    from wazzup_plugin.media import download as job
    from wazzup_plugin.media.fetch import Fetched
    from wazzup_plugin.state import get_state

    assert deliver(_image_delivery(payload)).status_code == 200
    monkeypatch.setattr(job, "fetch", lambda *args, **kwargs: Fetched("stopped", "the worker stopped during the download"))
    assert download("worker-a") == 1
    t = get_state(helpdesk).tables["media"]
    with helpdesk.db.read() as conn:
        row = conn.execute(sa.select(t.c.state, t.c.attempts, t.c.lease_owner, t.c.last_error)).one()
    assert tuple(row) == ("pending", 0, None, None)
    monkeypatch.undo()
    wazzup_api.add(responses.GET, STORE_URI, body=PHOTO, status=200)
    assert download("worker-b") == 1  # taken up again at once, and stored
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(t.c.state, t.c.attempts)).one() == ("stored", 1)


def test_a_long_steady_download_keeps_its_row_from_a_second_worker(
        deliver, payload, helpdesk, wazzup_api, clock, download):
    """A large file arriving at the least rate takes well past the download's budget: its row's claim
    lasts as long as such a download may, so no second worker downloads it meanwhile."""
    from wazzup_plugin.media import download as job
    from wazzup_plugin.media.fetch import MIN_RATE
    from wazzup_plugin.state import get_state

    assert deliver(_image_delivery(payload)).status_code == 200
    settings = get_state(helpdesk).settings
    # Past what the budget alone (and its margin) would claim, within the largest file at the least rate.
    took = job.budget_seconds(settings) + job.LEASE_MARGIN + settings.media_max_bytes / MIN_RATE / 2
    taken_by_b = []

    def long_and_steady(request):
        if not taken_by_b:  # worker-a's download; worker-b must find nothing to take
            clock.advance(seconds=took)
            taken_by_b.append(download("worker-b"))
        return 200, {}, PHOTO

    wazzup_api.add_callback("GET", STORE_URI, callback=long_and_steady)
    assert download("worker-a") == 1
    assert taken_by_b == [0] and len(wazzup_api.calls) == 1


def test_a_batchs_later_rows_are_never_downloaded_twice_when_its_downloads_outlast_the_claim(
        deliver, payload, helpdesk, wazzup_api, clock, download):
    """A claim's lease covers one download: when worker-a's first two downloads each take their whole
    budget, the batch's third row is free again and worker-b takes it up; worker-a, coming to it,
    leaves it to worker-b."""
    from wazzup_plugin.media import download as job
    from wazzup_plugin.state import get_state

    uris = [f"https://store.wazzup24.com/f{i}/?filename=p{i}.jpg" for i in range(3)]
    for i, uri in enumerate(uris):
        body = _image_delivery(payload, uri)
        body["messages"][0]["messageId"] = f"6a2087e8-e0f4-4b11-b968-9d3c1a93300{i}"
        assert deliver(body).status_code == 200
    longest = job.lease_seconds(get_state(helpdesk).settings) - job.LEASE_MARGIN
    taken_by_b = []

    def slow(request):
        clock.advance(seconds=longest)  # this download took as long as one may (the largest file, slowly)
        if request.url == uris[1] and not taken_by_b:
            taken_by_b.append(download("worker-b"))
        return 200, {}, PHOTO

    for uri in uris:
        wazzup_api.add_callback("GET", uri, callback=slow)

    assert download("worker-a") == 3

    assert taken_by_b == [1]  # the third row: the second's lease was renewed when its turn came
    assert sorted(c.request.url for c in wazzup_api.calls) == sorted(uris)  # each file once
    t = get_state(helpdesk).tables["media"]
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(t.c.state)).scalars().all() == ["stored"] * 3


@pytest.mark.parametrize("filename, stored", [
    ("a%0D%0ASet-Cookie:%20x=1.jpg", "aSet-Cookie: x=1.jpg"),
    ("dir/photo.jpg", "photo.jpg"),
    ("..%5C..%5Cphoto.jpg", "photo.jpg"),
    ("%E2%80%AEgpj.exe", "gpj.exe"),
])
def test_a_links_file_name_is_cleaned_so_the_copy_is_served_under_it(deliver, payload, media_row, download,
                                                                     wazzup_api, client, filename, stored):
    uri = f"https://store.wazzup24.com/abc/?filename={filename}"
    deliver(_image_delivery(payload, uri))
    wazzup_api.get(uri, body=PHOTO)

    download()

    row = media_row()
    assert (row.state, row.name) == ("stored", stored)
    served = client.simulate_get(row.url)
    assert served.status_code == 200
    assert not re.search(r"[\x00-\x1f\x7f]", served.headers["Content-Disposition"])


def test_a_names_control_characters_never_reach_the_content_disposition_header():
    from wazzup_plugin.serving import content_disposition

    header = content_disposition("a\r\nSet-Cookie: x=1\x7f.jpg", "image/jpeg")

    assert not re.search(r"[\x00-\x1f\x7f]", header)
    assert header.startswith('inline; filename="a__Set-Cookie: x=1_.jpg"')


def test_a_stores_overlong_content_type_is_not_kept_and_the_copy_is_stored(deliver, payload, media_row, download,
                                                                           wazzup_api):
    uri = "https://store.wazzup24.com/abc123/noextension"  # no name: the type would come from the store
    deliver(_image_delivery(payload, uri))
    wazzup_api.get(uri, body=PHOTO, headers={"Content-Type": "image/" + "x" * 250})

    download()

    # Not the store's overlong type: the photo's own first bytes say what it is.
    assert (media_row().state, media_row().content_type) == ("stored", "image/jpeg")


def test_a_download_that_crashes_counts_as_an_attempt_and_ends_failed(deliver, payload, media_row, download,
                                                                      clock, monkeypatch):
    """Whatever the cause, a row whose download raises follows the retry schedule, not a loop of
    downloading it again whenever its lease runs out."""
    from wazzup_plugin.media import download as job

    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(job, "fetch", crash)
    deliver(payload("incoming_image"))

    download()

    row = media_row()
    assert (row.state, row.attempts, row.lease_owner) == ("pending", 1, None)
    assert row.last_error == "the download failed unexpectedly (RuntimeError)"
    for delay in job.RETRY_DELAYS:
        clock.advance(seconds=delay.total_seconds())
        assert download() == 1
    assert (media_row().state, media_row().attempts) == ("failed", 6)
