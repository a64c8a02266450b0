"""Agents attach files from their computer: upload, the public URL Wazzup downloads, send by file_id."""

import hashlib
import tracemalloc
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from urllib3 import encode_multipart_formdata

from wazzup_plugin.outbound.file_rules import MAX_FILE_BYTES, MAX_PHOTO_BYTES
from wazzup_plugin.settings import SettingsError, WazzupSettings
from wazzup_plugin.state import get_state

PUBLIC = "https://helpdesk.example.com"
WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
CLIP = bytes(range(256)) * 40   # 10240 bytes, each slice of them its own


@pytest.fixture
def settings(settings):
    settings["WAZZUP24_PUBLIC_URL"] = PUBLIC
    return settings


@pytest.fixture
def chat(make_wazzup_chat):
    return make_wazzup_chat()


@pytest.fixture
def uploaded(upload, chat):
    """A PNG uploaded to ``chat``: its 201 answer."""
    result = upload(chat, ("photo.png", PNG, "image/png"))
    assert result.status_code == 201, result.text
    return result.json


@pytest.fixture
def clip(upload, chat):
    """An uploaded video (:data:`CLIP`): its path on the public route."""
    result = upload(chat, ("clip.mp4", CLIP, "video/mp4"))
    assert result.status_code == 201, result.text
    return path_of(result.json["url"])


@pytest.fixture
def send_file(send, client, auth, outbox_ctx):
    """Send an uploaded file: the route answers 202 (the outbox worker sends a file this helpdesk
    serves), then one round of the worker; returns the message as the API shows it after that."""
    from wazzup_plugin.outbound import worker

    def post(chat_id, file_id):
        result = send(chat_id, {"file_id": file_id})
        assert result.status_code == 202, result.text
        assert result.json["status"] == "queued"
        worker.run_once(outbox_ctx, worker.worker_id())
        items = client.simulate_get(f"/api/chats/{chat_id}/messages", headers=auth).json["items"]
        return next(m for m in items if m["id"] == result.json["id"])

    return post


def stored_files(helpdesk):
    f = get_state(helpdesk).tables["files"]
    with helpdesk.db.read() as conn:
        return [dict(r) for r in conn.execute(sa.select(f)).mappings()]


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC + "/")
    return url[len(PUBLIC):]


# ---------------------------------------------------------------- upload


def test_an_upload_is_stored_for_its_chat_and_answered_with_its_public_url(uploaded, helpdesk, chat, agent):
    assert uploaded["name"] == "photo.png" and uploaded["size"] == len(PNG)
    assert uploaded["content_type"] == "image/png"
    assert uploaded["url"].startswith(f"{PUBLIC}/wazzup24/files/") and uploaded["url"].endswith("/photo.png")
    [row] = stored_files(helpdesk)
    assert (row["id"], row["chat_id"], row["uploaded_by"], bytes(row["data"])) == (uploaded["id"], chat, agent["id"], PNG)
    assert row["sha256"] == hashlib.sha256(PNG).hexdigest() and len(row["token"]) >= 40
    assert row["token"] in uploaded["url"]


def test_an_upload_sends_nothing(upload, chat, wazzup_api, helpdesk):
    assert upload(chat, ("a.pdf", b"%PDF-1.4", "application/pdf")).status_code == 201
    assert len(wazzup_api.calls) == 0
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0


def test_the_type_comes_from_the_extension_not_from_what_the_browser_says(upload, chat):
    result = upload(chat, ("scan.PDF", b"%PDF-1.4", "application/octet-stream"))
    assert (result.status_code, result.json["content_type"], result.json["name"]) == (201, "application/pdf", "scan.PDF")


@pytest.mark.parametrize("raw, stored", [
    ("C:\\Users\\ivan\\Desktop\\invoice.pdf", "invoice.pdf"),
    ("../../etc/report.pdf", "report.pdf"),
    ("in\x07voice\u202egpj.pdf", "invoicegpj.pdf"),   # a bell and a right-to-left override
    ("  счёт май.pdf ", "счёт май.pdf"),
])
def test_the_file_name_loses_path_parts_and_control_characters(upload, chat, raw, stored):
    result = upload(chat, (raw, b"%PDF-1.4", "application/pdf"))
    assert result.status_code == 201, result.text
    assert result.json["name"] == stored


def test_a_long_name_is_kept_and_the_url_names_the_file_by_its_extension(upload, chat, client):
    name = "Договор поставки " * 20 + ".pdf"
    result = upload(chat, (name, b"%PDF-1.4", "application/pdf"))
    assert result.status_code == 201
    assert result.json["name"] == name.strip()
    assert result.json["url"].endswith("/file.pdf") and len(result.json["url"]) < 2000
    assert client.simulate_get(path_of(result.json["url"])).status_code == 200


def test_an_upload_without_a_file_part_is_refused(upload, chat, helpdesk):
    result = upload(chat, parts={"other": ("a.png", PNG, "image/png")})
    assert (result.status_code, result.json["fields"]) == (422, {"file": ["missing"]})
    assert stored_files(helpdesk) == []


def test_an_empty_file_is_refused(upload, chat, helpdesk):
    result = upload(chat, ("empty.pdf", b"", "application/pdf"))
    assert (result.status_code, result.json["code"]) == (422, "empty_file")
    assert stored_files(helpdesk) == []


def test_a_file_over_10_mb_is_refused(upload, chat, helpdesk):
    result = upload(chat, ("big.zip", b"0" * (MAX_FILE_BYTES + 1), "application/zip"))
    assert (result.status_code, result.json["code"]) == (413, "file_too_large")
    assert "10.0 MB" in result.json["message"]
    assert stored_files(helpdesk) == []


def test_a_file_of_exactly_10_mb_is_taken(upload, chat):
    assert upload(chat, ("big.zip", b"0" * MAX_FILE_BYTES, "application/zip")).status_code == 201


def test_a_body_far_over_the_limit_is_refused_before_it_is_read(upload, chat):
    result = upload(chat, body=b"x", content_type="multipart/form-data; boundary=x",
                    headers={"Content-Length": str(MAX_FILE_BYTES * 2)})
    assert (result.status_code, result.json["code"]) == (413, "payload_too_large")


@pytest.mark.parametrize("chat_type, transport", [("telegram", "tgapi"), ("whatsapp", "wapi")])
def test_a_photo_over_5_mb_is_refused_where_the_messenger_takes_no_more(upload, make_wazzup_chat, helpdesk,
                                                                        channel_id, chat_type, transport):
    chat = make_wazzup_chat(wazzup_chat_id="12345", chat_type=chat_type)
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id=channel_id, transport=transport, state="active", updated_at=helpdesk.clock()))
    result = upload(chat, ("photo.jpg", b"0" * (MAX_PHOTO_BYTES + 1), "image/jpeg"))
    assert (result.status_code, result.json["code"]) == (413, "file_too_large")
    assert "5.0 MB" in result.json["message"]
    # Not a photo: the general limit.
    assert upload(chat, ("clip.mp4", b"0" * (MAX_PHOTO_BYTES + 1), "video/mp4")).status_code == 201


@pytest.mark.parametrize("name, declared", [
    ("page.html", "text/html"),
    ("logo.svg", "image/svg+xml"),
    ("setup.exe", "application/octet-stream"),
    ("README", "text/plain"),
    ("notes.txt", "text/html"),          # a harmless name, a type a browser would run
    ("logo.png", "image/svg+xml"),
])
def test_a_file_type_wazzup_cannot_send_or_a_browser_would_run_is_refused(upload, chat, helpdesk, name, declared):
    result = upload(chat, (name, b"<script>alert(1)</script>", declared))
    assert (result.status_code, result.json["code"]) == (415, "unsupported_file_type")
    assert "pdf" in result.json["message"] and "jpg" in result.json["message"]
    assert stored_files(helpdesk) == []


def test_a_body_that_is_not_a_multipart_form_is_refused(client, auth, chat):
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/files", json={"file": "aGVsbG8="}, headers=auth)
    assert (result.status_code, result.json["code"]) == (415, "unsupported_media_type")


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n'
                                        b"cut off before the closing boundary"),
    ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="file"; filename="\xff.pdf"\r\n\r\n'
                                        b"abc\r\n--x--\r\n"),
    ("multipart/form-data", b"no boundary"),
])
def test_a_malformed_multipart_body_is_refused(upload, chat, helpdesk, content_type, body):
    result = upload(chat, body=body, content_type=content_type)
    assert (result.status_code, result.json["code"]) == (400, "invalid_body")
    assert stored_files(helpdesk) == []


def test_an_empty_form_has_no_file(upload, chat):
    result = upload(chat, body=b"", content_type="multipart/form-data; boundary=x")
    assert (result.status_code, result.json["fields"]) == (422, {"file": ["missing"]})


def test_an_upload_without_a_public_address_is_refused_naming_the_setting(build_app, pm, chat, agent, helpdesk):
    import falcon.testing

    app = build_app(pm, WAZZUP24_PUBLIC_URL="")
    body, content_type = encode_multipart_formdata({"file": ("a.pdf", b"%PDF", "application/pdf")})
    result = falcon.testing.TestClient(app).simulate_post(
        f"/api/chats/{chat}/wazzup24/files", body=body, headers={**agent["headers"], "Content-Type": content_type})
    assert (result.status_code, result.json["code"]) == (503, "files_not_configured")
    assert "WAZZUP24_PUBLIC_URL" in result.json["message"]
    assert stored_files(helpdesk) == []


def test_an_upload_to_a_missing_or_another_kind_of_chat_is_refused(upload, make_chat):
    assert upload(999, ("a.pdf", b"%PDF", "application/pdf")).json["code"] == "chat_not_found"
    other = make_chat(type="internal")
    assert upload(other, ("a.pdf", b"%PDF", "application/pdf")).status_code == 409


def test_an_upload_needs_an_agent(client, chat):
    body, content_type = encode_multipart_formdata({"file": ("a.pdf", b"%PDF", "application/pdf")})
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/files", body=body,
                                  headers={"Content-Type": content_type})
    assert result.status_code == 401


# ---------------------------------------------------------------- the public URL


def test_the_public_url_serves_the_file_with_headers_that_keep_it_inert(client, uploaded):
    result = client.simulate_get(path_of(uploaded["url"]))
    assert result.status_code == 200 and result.content == PNG
    h = result.headers
    assert h["Content-Type"] == "image/png" and h["Content-Length"] == str(len(PNG))
    assert h["ETag"] == f'"{hashlib.sha256(PNG).hexdigest()}"'
    assert h["Cache-Control"].startswith("private, max-age=")
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert h["Content-Disposition"] == "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png"
    assert h["Accept-Ranges"] == "bytes"
    assert "Location" not in h


@pytest.mark.parametrize("name, disposition", [
    ("report.docx", "attachment"), ("notes.txt", "attachment"), ("archive.zip", "attachment"),
    ("scan.pdf", "inline"), ("voice.ogg", "inline"), ("clip.mp4", "inline"),
])
def test_only_media_and_pdf_are_shown_inline(upload, chat, client, name, disposition):
    result = upload(chat, (name, b"data", "application/octet-stream"))
    served = client.simulate_get(path_of(result.json["url"]))
    assert served.headers["Content-Disposition"].startswith(disposition + ";")


def test_a_non_ascii_name_is_given_in_both_header_forms(upload, chat, client):
    result = upload(chat, ('счёт "май".pdf', b"%PDF", "application/pdf"))
    served = client.simulate_get(path_of(result.json["url"]))
    assert served.status_code == 200
    assert served.headers["Content-Disposition"] == (
        "inline; filename=\"???? _???_.pdf\"; filename*=UTF-8''" + quote('счёт "май".pdf', safe=""))


def test_head_answers_the_headers_without_the_body(client, uploaded):
    result = client.simulate_head(path_of(uploaded["url"]))
    assert result.status_code == 200 and result.content == b""
    assert result.headers["Content-Length"] == str(len(PNG)) and result.headers["Content-Type"] == "image/png"
    assert result.headers["ETag"] == f'"{hashlib.sha256(PNG).hexdigest()}"'
    assert result.headers["Accept-Ranges"] == "bytes"


def test_a_repeat_with_its_etag_answers_not_modified(client, uploaded):
    path = path_of(uploaded["url"])
    etag = client.simulate_get(path).headers["ETag"]
    assert client.simulate_get(path, headers={"If-None-Match": etag}).status_code == 304


def test_an_unknown_token_and_a_wrong_name_answer_the_same_404(client, uploaded):
    _, token, name = path_of(uploaded["url"]).rsplit("/", 2)
    unknown = client.simulate_get(f"/wazzup24/files/{'A' * len(token)}/{name}")
    wrong_name = client.simulate_get(f"/wazzup24/files/{token}/other.png")
    odd_token = client.simulate_get(f"/wazzup24/files/x'/{name}")
    assert unknown.status_code == wrong_name.status_code == odd_token.status_code == 404
    assert unknown.json == wrong_name.json == odd_token.json


# ---------------------------------------------------------------- byte ranges (players seek with them)


@pytest.mark.parametrize("asked, first, last", [
    ("bytes=100-199", 100, 199),
    ("bytes=10000-", 10000, 10239),
    ("bytes=-100", 10140, 10239),
    ("bytes=10200-99999", 10200, 10239),        # past the end: clipped
    ("bytes=-99999", 0, 10239),                 # more than the file: all of it, still a 206
    ("BYTES = 0-0", 0, 0),
    ("bytes=,5-6,", 5, 6),                      # empty list elements do not make it several ranges
    ("bytes=0-" + "9" * 5000, 0, 10239),        # a last position of any length is clipped
])
def test_one_range_is_answered_206_with_only_those_bytes(client, clip, asked, first, last):
    result = client.simulate_get(clip, headers={"Range": asked})
    assert result.status_code == 206 and result.content == CLIP[first:last + 1]
    h = result.headers
    assert h["Content-Range"] == f"bytes {first}-{last}/{len(CLIP)}"
    assert h["Content-Length"] == str(last - first + 1) and h["Content-Type"] == "video/mp4"
    assert h["Accept-Ranges"] == "bytes" and h["ETag"] == f'"{hashlib.sha256(CLIP).hexdigest()}"'
    assert h["X-Content-Type-Options"] == "nosniff" and h["Content-Security-Policy"].startswith("sandbox")


def test_head_with_a_range_answers_as_get_would_without_the_body(client, clip):
    result = client.simulate_head(clip, headers={"Range": "bytes=1000-1999"})
    assert (result.status_code, result.content) == (206, b"")
    assert result.headers["Content-Range"] == f"bytes 1000-1999/{len(CLIP)}"
    assert result.headers["Content-Length"] == "1000"


@pytest.mark.parametrize("asked", ["bytes=10240-", "bytes=10240-10300", "bytes=-0",
                                   "bytes=" + "9" * 5000 + "-"])
def test_a_range_the_file_cannot_answer_is_refused_416_saying_its_size(client, clip, asked):
    got = client.simulate_get(clip, headers={"Range": asked})
    for result in (got, client.simulate_head(clip, headers={"Range": asked})):
        assert result.status_code == 416
        assert result.headers["Content-Range"] == f"bytes */{len(CLIP)}"
        assert result.headers["X-Content-Type-Options"] == "nosniff"
        assert result.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
        assert "Content-Disposition" not in result.headers
    assert got.json == {"status": 416, "code": "range_not_satisfiable",
                        "message": "The range asked for starts past the file's end (10240 bytes)."}


@pytest.mark.parametrize("asked", [
    "bytes=0-1,5-9", "bytes=0-1, 20000-", "bytes=5-2", "bytes=-", "bytes=abc", "bytes=1-2-3", "bytes 0-1",
    "items=0-1", "bytes=\u0663-", "=0-1", "bytes=",
])
def test_several_ranges_or_a_malformed_one_get_the_whole_file(client, clip, asked):
    """Guards against doing too much (these were whole answers before ranges were served): RFC 9110
    lets a server ignore such a Range, and the whole file is what every client takes."""
    result = client.simulate_get(clip, headers={"Range": asked})
    assert (result.status_code, result.content) == (200, CLIP)
    assert "Content-Range" not in result.headers


def test_if_range_with_the_files_etag_honours_the_range(client, clip):
    etag = f'"{hashlib.sha256(CLIP).hexdigest()}"'
    result = client.simulate_get(clip, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert (result.status_code, result.content) == (206, CLIP[:10])


@pytest.mark.parametrize("if_range", ['"another-version"', "W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_if_range_with_another_etag_or_a_date_gets_the_whole_file(client, clip, if_range):
    """Guards against doing too much: a client whose copy may be stale gets the file anew."""
    if_range = if_range.format(etag=f'"{hashlib.sha256(CLIP).hexdigest()}"')
    result = client.simulate_get(clip, headers={"Range": "bytes=0-9", "If-Range": if_range})
    assert (result.status_code, result.content) == (200, CLIP)


def test_a_client_that_has_the_file_is_answered_not_modified_even_with_a_range(client, clip):
    """Guards against doing too much: If-None-Match comes before Range (RFC 9110 §13.2.2)."""
    etag = f'"{hashlib.sha256(CLIP).hexdigest()}"'
    result = client.simulate_get(clip, headers={"Range": "bytes=0-9", "If-None-Match": etag})
    assert (result.status_code, result.content) == (304, b"")
    assert result.headers["ETag"] == etag and result.headers["Accept-Ranges"] == "bytes"


def test_a_range_of_a_large_file_is_read_from_the_database_without_the_rest(upload, chat, client):
    result = upload(chat, ("big.zip", b"0" * MAX_FILE_BYTES, "application/zip"))
    path = path_of(result.json["url"])
    tracemalloc.start()
    try:
        served = client.simulate_get(path, headers={"Range": "bytes=5000000-5000099"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (served.status_code, served.content) == (206, b"0" * 100)
    assert peak < MAX_FILE_BYTES // 10, f"{peak} bytes held to answer 100"


# ---------------------------------------------------------------- sending it


def test_send_with_file_id_sends_the_public_url_and_stores_the_file_message(send_file, chat, uploaded, wazzup_api,
                                                                            wazzup_url, sent_bodies):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    message = send_file(chat, uploaded["id"])
    [body] = sent_bodies()
    assert body["contentUri"] == uploaded["url"] and "text" not in body
    assert (message["status"], message["type"], message["content_name"], message["content_type"],
            message["content_uri"]) == ("accepted", "image", "photo.png", "image/png", uploaded["url"])


def test_a_sent_file_reads_in_the_chat_list_as_a_received_one_does(send_file, chat, uploaded, wazzup_api,
                                                                    wazzup_url, client, auth):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    send_file(chat, uploaded["id"])
    shown = client.simulate_get(f"/api/chats/{chat}", headers=auth).json
    assert shown["last_message_preview"] == "[Image] photo.png"


def test_a_file_send_waits_for_the_worker_and_calls_wazzup_only_from_it(send, chat, uploaded, wazzup_api):
    # Wazzup downloads the file from us before it answers: the web request must not be the one waiting.
    result = send(chat, {"file_id": uploaded["id"]})
    assert (result.status_code, result.json["status"]) == (202, "queued")
    assert len(wazzup_api.calls) == 0


def test_a_file_is_sent_with_its_kind_from_its_type(send, chat, upload, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    kinds = {}
    for name in ("a.pdf", "b.mp4", "c.ogg", "d.xlsx"):
        file_id = upload(chat, (name, b"data", "application/octet-stream")).json["id"]
        kinds[name] = send(chat, {"file_id": file_id}).json["type"]
    assert kinds == {"a.pdf": "document", "b.mp4": "video", "c.ogg": "audio", "d.xlsx": "document"}


def test_another_chats_file_is_never_sent_and_nothing_is_stored(send, chat, make_wazzup_chat, upload, wazzup_api,
                                                                helpdesk, outbox_row):
    other = make_wazzup_chat(wazzup_chat_id="79990001122")
    theirs = upload(other, ("private.pdf", b"%PDF", "application/pdf")).json["id"]
    result = send(chat, {"file_id": theirs})
    assert (result.status_code, result.json["fields"]) == (422, {"file_id": ["no such file uploaded to this chat"]})
    assert send(chat, {"file_id": 424242}).json["fields"] == {"file_id": ["no such file uploaded to this chat"]}
    assert len(wazzup_api.calls) == 0
    with helpdesk.db.read() as conn:
        for table in (helpdesk.tables.messages, get_state(helpdesk).tables["outbox"],
                      get_state(helpdesk).tables["messages"]):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0


@pytest.mark.parametrize("extra", [{"text": "and a caption"}, {"content_uri": "https://x.example/a.png"}])
def test_a_file_goes_alone(send, chat, uploaded, extra):
    result = send(chat, {"file_id": uploaded["id"], **extra})
    assert result.status_code == 422 and "_schema" in result.json["fields"]


def test_a_refused_file_send_keeps_the_message_failed_with_its_file(send_file, chat, uploaded, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"status": 400, "error": "MESSAGE_DOWNLOAD_CONTENT_ERROR",
                                                      "description": "Failed to download content"}, status=400)
    message = send_file(chat, uploaded["id"])
    assert (message["status"], message["content_uri"], message["content_type"], message["error_code"]) == (
        "failed", uploaded["url"], "image/png", "MESSAGE_DOWNLOAD_CONTENT_ERROR")


def test_a_resent_file_keeps_its_type_and_goes_through_the_worker(send_file, client, auth, chat, uploaded,
                                                                  wazzup_api, wazzup_url, outbox_ctx):
    from wazzup_plugin.outbound import worker

    wazzup_api.post(f"{wazzup_url}/v3/message", json={"status": 400, "error": "BAD_CONTACT",
                                                      "description": "bad"}, status=400)
    failed = send_file(chat, uploaded["id"])
    assert failed["status"] == "failed"
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    again = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed['id']}/resend", json={}, headers=auth)
    assert (again.status_code, again.json["status"]) == (202, "queued")
    assert (again.json["content_uri"], again.json["content_type"]) == (uploaded["url"], "image/png")
    worker.run_once(outbox_ctx, worker.worker_id())
    items = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json["items"]
    assert next(m for m in items if m["id"] == again.json["id"])["status"] == "accepted"


# ---------------------------------------------------------------- the setting


def test_the_public_address_defaults_to_the_webhook_urls_origin():
    settings = WazzupSettings.from_env({"WAZZUP24_WEBHOOK_URL": "https://user:pw@desk.example.com:8443/api/webhook?t=1"})
    assert settings.public_url == "https://desk.example.com:8443"
    assert WazzupSettings.from_env({}).public_url is None
    explicit = WazzupSettings.from_env({"WAZZUP24_PUBLIC_URL": "https://files.example.com/helpdesk/",
                                        "WAZZUP24_WEBHOOK_URL": "https://desk.example.com/api/webhook"})
    assert explicit.public_url == "https://files.example.com/helpdesk"


@pytest.mark.parametrize("value", ["ftp://desk.example.com", "desk.example.com", "https://desk.example.com/?a=1",
                                   "https://u:p@desk.example.com", "https://desk.example.com/" + "x" * 1000])
def test_a_wrong_public_address_stops_startup_naming_the_setting(value):
    with pytest.raises(SettingsError, match="WAZZUP24_PUBLIC_URL"):
        WazzupSettings.from_env({"WAZZUP24_PUBLIC_URL": value})


def test_a_text_sent_while_a_file_waits_in_the_outbox_goes_out_after_it(send, chat, uploaded, wazzup_api, wazzup_url,
                                                                       sent_bodies, outbox_ctx):
    from wazzup_plugin.outbound import worker

    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(chat, {"file_id": uploaded["id"]}).status_code == 202
    text = send(chat, text="Here is the photo of your parcel")
    assert (text.status_code, text.json["status"]) == (202, "queued")   # behind the file, not before it
    assert sent_bodies() == []
    worker.run_once(outbox_ctx, worker.worker_id())
    assert [("contentUri" in b, b.get("text")) for b in sent_bodies()] == [
        (True, None), (False, "Here is the photo of your parcel")]
    # With the outbox empty again, a text is sent at once.
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": "f66c53a6-0000-46b2-b41b-5a2ef4844bcb"},
                       status=201)
    assert send(chat, text="Anything else?").status_code == 201


def test_a_wrong_public_address_is_refused_without_showing_its_password():
    with pytest.raises(SettingsError) as refused:
        WazzupSettings.from_env({"WAZZUP24_PUBLIC_URL": "https://admin:S3cretPass@desk.example.com"})
    assert "S3cretPass" not in str(refused.value) and "https://***@desk.example.com" in str(refused.value)
