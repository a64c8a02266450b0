"""Uploaded files get a lifetime and a quota: unsent uploads go after a day, sent ones stay unless
WAZZUP24_FILE_RETENTION_DAYS says otherwise (their URL then answers 410), and uploads stop at
WAZZUP24_FILES_QUOTA_MB. Ages are moved with the injected clock."""

import json
import re
import threading

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound import worker
from wazzup_plugin.settings import SettingsError, WazzupSettings
from wazzup_plugin.state import get_state

PUBLIC = "https://helpdesk.example.com"
PDF = b"%PDF-1.4 " + b"x" * 100
KB600 = b"%PDF-1.4 " + b"x" * (600 * 1024)


@pytest.fixture
def configure(plugin_settings):
    """``configure(file_retention_days=30)``: the plugin's settings with these fields changed; the files'
    public address (WAZZUP24_PUBLIC_URL, which uploads need) is set from the start."""
    plugin_settings(public_url=PUBLIC)
    return plugin_settings


@pytest.fixture
def chat(make_wazzup_chat, configure):
    return make_wazzup_chat()


@pytest.fixture
def purge(outbox_ctx):
    """One run of the files' housekeeping, as the outbox worker makes it: ``(deleted, purged)``."""
    from wazzup_plugin.outbound.file_housekeeping import purge_files

    return lambda **limits: purge_files(outbox_ctx, **limits)


@pytest.fixture
def upload_pdf(upload, chat):
    def post(data=PDF, name="a.pdf"):
        result = upload(chat, (name, data, "application/pdf"))
        assert result.status_code == 201, result.text
        return result.json

    return post


@pytest.fixture
def sent(upload_pdf, send, chat, wazzup_api, wazzup_url, outbox_ctx):
    """An uploaded PDF sent to the chat and accepted by Wazzup: ``(file, message)`` as the routes answered."""
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-1"}, status=201)
    file = upload_pdf()
    message = send(chat, {"file_id": file["id"]})
    assert message.status_code == 202, message.text
    worker.run_once(outbox_ctx, worker.worker_id())
    return file, message.json


@pytest.fixture
def expired(sent, configure, clock, purge):
    """:func:`sent`, emptied by retention (one day) two days later."""
    configure(file_retention_days=1)
    clock.advance(days=2)
    purge()
    return sent


def file_row(helpdesk, file_id):
    f = get_state(helpdesk).tables["files"]
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(f).where(f.c.id == file_id)).mappings().first()


def path_of(url: str) -> str:
    return url[len(PUBLIC):]


# ---------------------------------------------------------------- marked sent


def test_a_send_marks_its_file_sent_when_it_stores_the_message(sent, helpdesk, clock):
    file, _ = sent
    row = file_row(helpdesk, file["id"])
    assert (row["sent_at"], row["purged_at"]) == (clock(), None)


def test_an_upload_not_sent_is_not_marked(upload_pdf, helpdesk):
    assert file_row(helpdesk, upload_pdf()["id"])["sent_at"] is None


def test_a_refused_send_leaves_its_file_unmarked(upload_pdf, send, make_wazzup_chat, helpdesk):
    file = upload_pdf()
    other = make_wazzup_chat(wazzup_chat_id="79990001122")
    assert send(other, {"file_id": file["id"]}).status_code == 422
    assert file_row(helpdesk, file["id"])["sent_at"] is None


# ---------------------------------------------------------------- unsent uploads


def test_an_upload_never_sent_is_deleted_a_day_after_it_was_uploaded(upload_pdf, purge, clock, helpdesk, client):
    file = upload_pdf()
    clock.advance(hours=24)
    assert purge() == (0, 0)
    clock.advance(seconds=1)
    assert purge() == (1, 0)
    assert file_row(helpdesk, file["id"]) is None
    assert client.simulate_get(path_of(file["url"])).status_code == 404


def test_the_hours_an_unsent_upload_is_kept_are_a_setting(upload_pdf, purge, clock, helpdesk, configure):
    configure(unsent_file_hours=2)
    file = upload_pdf()
    clock.advance(hours=2, seconds=1)
    assert purge() == (1, 0)
    assert file_row(helpdesk, file["id"]) is None


def test_housekeeping_deletes_in_bounded_batches_and_leaves_the_rest_for_its_next_run(upload_pdf, purge, clock,
                                                                                     helpdesk):
    ids = [upload_pdf(name=f"{i}.pdf")["id"] for i in range(5)]
    clock.advance(days=2)
    assert purge(batch=2, max_batches=2) == (4, 0)
    assert [i for i in ids if file_row(helpdesk, i) is not None] == ids[4:]  # the oldest went first
    assert purge(batch=2, max_batches=2) == (1, 0)


def test_the_outbox_worker_runs_the_files_housekeeping(upload_pdf, outbox_ctx, clock, helpdesk, monkeypatch):
    file = upload_pdf()
    clock.advance(days=2)
    stop = threading.Event()

    purge_files = worker.purge_files

    def once(ctx):  # the worker's first loop runs the housekeeping; stop it there
        stop.set()
        return purge_files(ctx)

    monkeypatch.setattr(worker, "purge_files", once)
    worker.run(outbox_ctx, stop, poll_seconds=0.01)
    assert file_row(helpdesk, file["id"]) is None


# ---------------------------------------------------------------- sent files and retention


def test_a_sent_file_is_kept_for_good_by_default(sent, purge, clock, client):
    file, _ = sent
    clock.advance(days=3650)
    assert purge() == (0, 0)
    answer = client.simulate_get(path_of(file["url"]))
    assert (answer.status_code, answer.content) == (200, PDF)


def test_retention_empties_a_sent_file_whose_url_then_answers_410_and_its_message_keeps_its_link(
        sent, purge, clock, helpdesk, client, auth, chat, configure):
    file, message = sent
    configure(file_retention_days=30)
    clock.advance(days=30)
    assert purge() == (0, 0)
    clock.advance(seconds=1)
    assert purge() == (0, 1)
    row = file_row(helpdesk, file["id"])
    assert (bytes(row["data"]), row["purged_at"]) == (b"", clock())
    for method in ("GET", "HEAD"):
        for asked in ({}, {"Range": "bytes=0-9"}):
            answer = client.simulate_request(method, path_of(file["url"]), headers=asked)
            assert answer.status_code == 410
    answer = client.simulate_get(path_of(file["url"]))
    assert answer.json["code"] == "wazzup_file_expired" and "retention" in answer.json["message"]
    items = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json["items"]
    shown = next(m for m in items if m["id"] == message["id"])
    assert (shown["content_uri"], shown["content_name"], shown["status"]) == (file["url"], "a.pdf", "accepted")
    assert purge() == (0, 0)  # emptied once


def test_a_range_of_a_file_emptied_while_it_is_answered_says_it_expired(sent, configure, clock, purge, client,
                                                                          monkeypatch):
    """Guards against doing too much: the slice read keeps the retention check of the whole file's."""
    from wazzup_plugin.outbound import files

    file, _ = sent
    configure(file_retention_days=1)
    clock.advance(days=2)
    serve_stored = files.serve_stored

    def purged_meanwhile(req, resp, **found):  # between the row's headers and its bytes
        assert purge() == (0, 1)
        serve_stored(req, resp, **found)

    monkeypatch.setattr(files, "serve_stored", purged_meanwhile)
    answer = client.simulate_get(path_of(file["url"]), headers={"Range": "bytes=0-9"})
    assert (answer.status_code, answer.json["code"]) == (410, "wazzup_file_expired")
    assert "Content-Range" not in answer.headers and "Content-Disposition" not in answer.headers


def test_a_wrong_name_for_an_expired_file_still_answers_404(sent, purge, clock, client, configure):
    file, _ = sent
    configure(file_retention_days=1)
    clock.advance(days=2)
    purge()
    assert client.simulate_get(path_of(file["url"]).rsplit("/", 1)[0] + "/b.pdf").status_code == 404


def test_an_expired_file_cannot_be_sent_or_resent(expired, client, auth, chat, send, helpdesk):
    file, message = expired
    again = send(chat, {"file_id": file["id"]})
    assert (again.status_code, again.json["code"]) == (422, "wazzup_file_expired")
    assert "file_id" in again.json["fields"]
    m = helpdesk.tables.messages
    with helpdesk.db.write() as tx:  # as if Wazzup had reported it failed
        tx.conn.execute(sa.update(m).where(m.c.id == message["id"]).values(status="failed"))
    resend = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{message['id']}/resend", json={},
                                  headers=auth)
    assert (resend.status_code, resend.json["code"]) == (410, "wazzup_file_expired")
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(m)).scalar() == 1  # nothing new stored


def test_a_pasted_link_to_an_uploaded_file_is_sent_as_that_file_and_kept(upload_pdf, send, chat, purge, clock,
                                                                        helpdesk, client, wazzup_api, wazzup_url,
                                                                        outbox_ctx):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": "wz-1"}, status=201)
    file = upload_pdf()
    # The file's own URL as a content_uri (not by file_id), as an integrator copying it would send it.
    message = send(chat, {"content_uri": file["url"]})
    assert message.status_code == 202, message.text
    worker.run_once(outbox_ctx, worker.worker_id())
    assert file_row(helpdesk, file["id"])["sent_at"] == clock()
    assert json.loads(wazzup_api.calls[-1].request.body)["contentUri"] == file["url"]
    clock.advance(days=2)
    assert purge() == (0, 0)  # kept: Wazzup, and the chat's link, still need it
    assert client.simulate_get(path_of(file["url"])).status_code == 200


def test_a_pasted_link_to_a_file_this_helpdesk_does_not_have_is_refused_and_nothing_is_stored(
        upload_pdf, send, chat, purge, clock, helpdesk, wazzup_api):
    file = upload_pdf()
    clock.advance(days=2)
    purge()  # never sent: deleted
    refused = send(chat, {"content_uri": file["url"]})
    assert (refused.status_code, refused.json["code"]) == (422, "invalid_body")
    assert "content_uri" in refused.json["fields"]
    made_up = send(chat, {"content_uri": f"{PUBLIC}/wazzup24/files/{'x' * 43}/a.pdf"})
    assert made_up.status_code == 422 and "content_uri" in made_up.json["fields"]
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(m)).scalar() == 0
    assert not wazzup_api.calls


def test_a_pasted_link_to_an_expired_file_is_refused_as_expired(expired, chat, send):
    file, _ = expired
    again = send(chat, {"content_uri": file["url"]})
    assert (again.status_code, again.json["code"]) == (422, "wazzup_file_expired")
    assert "content_uri" in again.json["fields"]


# ---------------------------------------------------------------- quota


def test_an_upload_over_the_quota_is_refused_with_507_saying_what_is_stored_and_nothing_is_stored(
        upload, upload_pdf, chat, helpdesk, configure):
    configure(files_quota_mb=1)
    upload_pdf(KB600)
    refused = upload(chat, ("b.pdf", KB600, "application/pdf"))
    assert (refused.status_code, refused.json["code"]) == (507, "wazzup_files_quota")
    assert "0.6 MB" in refused.json["message"] and "1 MB" in refused.json["message"]
    assert "WAZZUP24_FILES_QUOTA_MB" in refused.json["message"]
    f = get_state(helpdesk).tables["files"]
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(f)).scalar() == 1


def test_files_emptied_by_retention_or_deleted_leave_the_quota(upload, upload_pdf, sent, chat, configure, purge,
                                                              clock):
    configure(files_quota_mb=1, file_retention_days=1)
    upload_pdf(KB600)          # never sent: deleted after a day
    assert upload(chat, ("c.pdf", KB600, "application/pdf")).status_code == 507
    clock.advance(days=2)
    assert purge() == (1, 1)
    upload_pdf(KB600)
    assert upload(chat, ("d.pdf", KB600[:300 * 1024], "application/pdf")).status_code == 201


def test_a_quota_of_zero_means_no_quota(upload_pdf, configure):
    configure(files_quota_mb=0)
    for name in ("a.pdf", "b.pdf"):
        upload_pdf(KB600 * 2, name=name)


def test_status_shows_the_stored_files_against_the_quota_and_a_note_when_it_is_nearly_full(run, upload_pdf):
    upload_pdf(KB600)
    upload_pdf(KB600[:350 * 1024], name="b.pdf")
    report = json.loads(run("status", "--json").output)
    assert report["files"] == {"stored": 2, "bytes": len(KB600) + 350 * 1024, "quota_bytes": 1024 * 1024 * 1024}
    assert not [n for n in report["notes"] if "uploaded files" in n]
    text = run("status", WAZZUP24_FILES_QUOTA_MB="1").output
    assert re.search(r"\n  Uploaded files +2, 1\.0 MB of 1 MB\n", text), text
    assert "note: uploaded files take 1.0 MB of the 1 MB allowed (WAZZUP24_FILES_QUOTA_MB)" in text
    assert "(no quota)" in run("status", WAZZUP24_FILES_QUOTA_MB="0").output


# ---------------------------------------------------------------- settings


def test_the_settings_default_to_a_day_for_unsent_uploads_sent_files_kept_and_a_1024_mb_quota():
    settings = WazzupSettings.from_env({})
    assert (settings.unsent_file_hours, settings.file_retention_days, settings.files_quota_mb) == (24, 0, 1024)
    chosen = WazzupSettings.from_env({"WAZZUP24_UNSENT_FILE_HOURS": "6", "WAZZUP24_FILE_RETENTION_DAYS": "90",
                                      "WAZZUP24_FILES_QUOTA_MB": "0"})
    assert (chosen.unsent_file_hours, chosen.file_retention_days, chosen.files_quota_mb) == (6, 90, 0)


@pytest.mark.parametrize("name, value", [
    ("WAZZUP24_UNSENT_FILE_HOURS", "0"), ("WAZZUP24_UNSENT_FILE_HOURS", "1.5"),
    ("WAZZUP24_FILE_RETENTION_DAYS", "-1"), ("WAZZUP24_FILES_QUOTA_MB", "1GB"),
])
def test_a_wrong_file_setting_stops_startup_naming_it(name, value):
    with pytest.raises(SettingsError, match=name):
        WazzupSettings.from_env({name: value})


def test_a_file_is_never_sent_after_housekeeping_deleted_it_under_the_send(upload_pdf, send, chat, purge, clock,
                                                                          helpdesk, monkeypatch):
    """The send read the file, then the housekeeping deleted it before the send stored its message:
    the send is refused, not stored naming a file that is gone."""
    from wazzup_plugin.outbound import send as send_module

    file = upload_pdf()
    clock.advance(days=2)
    read = send_module.file_for_send

    def read_then_purge(conn, state, chat_id, file_id):
        found = read(conn, state, chat_id, file_id)
        purge()
        return found

    monkeypatch.setattr(send_module, "file_for_send", read_then_purge)
    refused = send(chat, {"file_id": file["id"]})
    assert refused.status_code == 422 and refused.json["fields"] == {"file_id": ["no such file uploaded to this chat"]}
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0
