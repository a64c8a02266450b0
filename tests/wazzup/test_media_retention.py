"""Customers' media get a lifetime: kept for good unless WAZZUP24_MEDIA_RETENTION_DAYS says otherwise
(the copy's bytes go, its row stays ``expired``, its URL answers 410), and the status check shows what
the kept copies take. Ages are moved with the injected clock."""

import json
import re

import pytest
import sqlalchemy as sa

from wazzup_plugin.media.housekeeping import purge_expired_media
from wazzup_plugin.media.status import media_kept
from wazzup_plugin.outbound import worker
from wazzup_plugin.settings import SettingsError, WazzupSettings
from wazzup_plugin.state import get_state

STORE_URI = "https://store.wazzup24.com/e5115a1e0046d628b3924161d411e5812d2546/?filename=photo.jpg"
PHOTO = b"\xff\xd8\xff\xe0" + b"a customer's photo" * 100


@pytest.fixture
def kept(deliver, payload, download, wazzup_api, media_row):
    """A customer's photo, downloaded and kept now: its media row."""
    deliver(payload("incoming_image"))
    wazzup_api.get(STORE_URI, body=PHOTO, content_type="image/jpeg")
    assert download() == 1
    assert media_row().state == "stored"
    return media_row()


@pytest.fixture
def purge(outbox_ctx):
    """One run of the media's housekeeping, as the outbox worker makes it: how many copies it emptied."""
    return lambda **limits: purge_expired_media(outbox_ctx, **limits)


def _url(row) -> str:
    return f"/wazzup24/media/{row.token}/{row.name}"


def _keep_photos(deliver, payload, download, wazzup_api, clock, count: int) -> None:
    """``count`` customers' photos, each in its own chat, downloaded a minute apart (oldest first)."""
    for n in range(count):
        body = payload("incoming_image")
        uri = f"https://store.wazzup24.com/p{n}/?filename=photo{n}.jpg"
        body["messages"][0].update(messageId=f"photo-{n}", chatId=f"7916000000{n}", contentUri=uri)
        deliver(body)
        wazzup_api.get(uri, body=PHOTO, content_type="image/jpeg")
        assert download() == 1
        clock.advance(60)


def _states(helpdesk) -> list[str]:
    t = get_state(helpdesk).tables["media"]
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(t.c.state).order_by(t.c.stored_at)).scalars().all()


def test_a_copy_past_the_retention_is_emptied_and_its_url_answers_410(kept, plugin_settings, clock, purge,
                                                                     media_row, client, auth, wazzup_rows):
    plugin_settings(media_retention_days=30)
    clock.advance(days=30, seconds=1)

    assert purge() == 1

    row = media_row()
    assert (row.state, row.data, row.token, row.size) == ("expired", None, kept.token, len(PHOTO))
    for answer in (client.simulate_get(_url(kept)), client.simulate_head(_url(kept))):
        assert answer.status_code == 410
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert client.simulate_get(_url(kept)).json["code"] == "wazzup_media_expired"
    [chat] = wazzup_rows.chats()
    [message] = client.simulate_get(f"/api/chats/{chat['id']}/messages", headers=auth).json["items"]
    assert message["wazzup_media_state"] == "expired"
    assert message["content_uri"] == STORE_URI and message["text"] is None  # the message itself is untouched


def test_an_emptied_copy_reaches_a_page_that_follows_the_chat_by_changed_since(kept, plugin_settings, clock, purge,
                                                                               client, auth, wazzup_rows):
    """The agents' pages and integrators follow a chat's messages with changed_since: a copy emptied without
    a new change_seq stayed `stored` there, its picture a link that answers 410."""
    [chat] = wazzup_rows.chats()
    messages = f"/api/chats/{chat['id']}/messages"
    shown = client.simulate_get(messages, headers=auth).json
    assert [m["wazzup_media_state"] for m in shown["items"]] == ["stored"]
    plugin_settings(media_retention_days=30)
    clock.advance(days=30, seconds=1)

    assert purge() == 1

    since = {"changed_since": shown["change_seq"]}
    changed = client.simulate_get(messages, params=since, headers=auth).json["items"]
    assert [(m["id"], m["wazzup_media_state"]) for m in changed] == [(shown["items"][0]["id"], "expired")]
    assert purge() == 0  # emptied once


def test_a_copy_younger_than_the_retention_is_kept(kept, plugin_settings, clock, purge, media_row, client):
    """Guards against emptying too much: a day short of the retention, nothing goes."""
    plugin_settings(media_retention_days=30)
    clock.advance(days=29)

    assert purge() == 0

    assert media_row().state == "stored" and media_row().data == PHOTO
    assert client.simulate_get(_url(kept)).content == PHOTO


def test_without_a_retention_copies_are_kept_for_good(kept, clock, purge, media_row, client):
    """Guards against emptying too much: the default keeps every copy."""
    clock.advance(days=3650)

    assert purge() == 0

    assert client.simulate_get(_url(kept)).content == PHOTO


def test_the_workers_housekeeping_empties_copies_past_the_retention(kept, plugin_settings, clock, outbox_ctx,
                                                                   media_row):
    plugin_settings(media_retention_days=1)
    clock.advance(days=2)

    worker.housekeeping(outbox_ctx)

    assert media_row().state == "expired"


def test_retention_empties_the_oldest_copies_first_in_bounded_batches(deliver, payload, download, wazzup_api, clock,
                                                                      plugin_settings, purge, helpdesk):
    _keep_photos(deliver, payload, download, wazzup_api, clock, 5)
    plugin_settings(media_retention_days=1)
    clock.advance(days=1, seconds=-150)  # the first three are a day old, the last two not yet

    assert purge(batch=2, seconds=0) == 0  # a run's time is up: no batch starts (the worker's sends wait)
    assert purge(batch=2, max_batches=1) == 2
    assert _states(helpdesk) == ["expired", "expired", "stored", "stored", "stored"]
    assert purge(batch=2) == 1
    assert _states(helpdesk) == ["expired", "expired", "expired", "stored", "stored"]


def test_an_expired_copy_cannot_be_retried(kept, plugin_settings, clock, purge, client, auth, wazzup_rows):
    plugin_settings(media_retention_days=1)
    clock.advance(days=2)
    purge()
    [message] = wazzup_rows.messages()

    answer = client.simulate_post(f"/api/chats/{message['chat_id']}/wazzup24/messages/{message['id']}/media/retry",
                                  headers=auth, json={})

    assert answer.status_code == 409 and answer.json["state"] == "expired"


def test_an_edit_bringing_a_new_file_to_an_expired_message_keeps_the_new_one(kept, plugin_settings, clock, purge,
                                                                             deliver, payload, download, wazzup_api,
                                                                             media_row, client):
    plugin_settings(media_retention_days=1)
    clock.advance(days=2)
    purge()
    new_uri = "https://store.wazzup24.com/b2c3/?filename=invoice.pdf"
    edited = payload("incoming_image")
    edited["messages"][0].update(contentUri=new_uri, isEdited=True, dateTime="2025-05-06T14:17:00Z")
    deliver(edited)
    wazzup_api.get(new_uri, body=b"%PDF-1.4 the invoice")

    assert download() == 1

    row = media_row()
    assert (row.state, row.data) == ("stored", b"%PDF-1.4 the invoice")
    assert client.simulate_get(_url(row)).content == b"%PDF-1.4 the invoice"
    assert purge() == 0  # downloaded just now: a new copy's age starts again


def test_status_shows_what_customers_media_take(deliver, payload, download, wazzup_api, clock, plugin_settings,
                                                purge, run):
    assert re.search(r"Media kept +0, 0 KB \(kept for good", run("status").output)
    _keep_photos(deliver, payload, download, wazzup_api, clock, 3)

    report = json.loads(run("status", "--json").output)["media"]
    assert (report["stored"], report["bytes"], report["retention_days"]) == (3, 3 * len(PHOTO), None)
    assert re.search(r"Media kept +3, 5 KB \(kept for good", run("status").output)

    plugin_settings(media_retention_days=1)
    clock.advance(days=1, seconds=-90)  # the first two are a day old
    purge()
    # The report reads the settings of the process running it: the test's retention is passed as the environment.
    report = json.loads(run("status", "--json", WAZZUP24_MEDIA_RETENTION_DAYS="1").output)["media"]
    assert (report["stored"], report["bytes"], report["retention_days"]) == (1, len(PHOTO), 1)


@pytest.mark.new_tables
def test_retention_and_the_status_check_read_the_kept_copies_from_their_partial_index(
        kept, plugin_settings, clock, purge, query_plans, helpdesk):
    # A table scan would read every kept copy's bytes on SQLite (they lie before stored_at in the row).
    plugin_settings(media_retention_days=1)
    clock.advance(days=2)

    with query_plans("FROM wazzup_media") as plans:
        assert purge() == 1
        with helpdesk.db.read() as conn:
            assert media_kept(conn, get_state(helpdesk)) == (0, 0)

    assert len(plans) == 2
    for plan in plans:
        assert "ix_wazzup_media_stored" in plan, plan
    if helpdesk.db.engine.dialect.name == "sqlite":
        assert all("COVERING INDEX" in plan for plan in plans), plans


def test_the_media_retention_is_read_from_the_environment_and_checked():
    assert WazzupSettings.from_env({}).media_retention_days == 0
    assert WazzupSettings.from_env({"WAZZUP24_MEDIA_RETENTION_DAYS": "90"}).media_retention_days == 90
    for wrong in ("-1", "a month"):
        with pytest.raises(SettingsError, match="WAZZUP24_MEDIA_RETENTION_DAYS"):
            WazzupSettings.from_env({"WAZZUP24_MEDIA_RETENTION_DAYS": wrong})
