"""A customer's media in the agent UI: shown from the helpdesk's own copy once it is kept, and a
"Retry download" action on one whose download failed.

The copy's state is set in the database (the download itself is the worker's, tested in
tests/wazzup/test_media_mirror*.py); every wait is bounded.
"""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from tests.ui.conftest import WAIT_MS
from tests.ui.test_browser import new_phone, open_chat
from wazzup_plugin.media.urls import media_url
from wazzup_plugin.sandbox.media import png, store_url

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


def _customer_sends_a_photo(live, name: str) -> tuple[int, int]:
    phone = new_phone()
    live.sandbox("POST", "/_sandbox/customer-messages", json={
        "contentUri": store_url(live.sandbox_url, "parcel.png"), "type": "image", "chatId": phone, "name": name,
        "wait": True})
    chat_id = live.chat_by_phone(phone)["id"]
    [message] = live.api(f"/api/chats/{chat_id}/messages")["items"]
    return chat_id, message["id"]


def _set_media(live, message_id: int, **values) -> None:
    engine = sa.create_engine(live.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE wazzup_media SET " + ", ".join(f"{k} = :{k}" for k in values)
                                 + " WHERE message_id = :id"), {**values, "id": message_id})
    finally:
        engine.dispose()


def _media(live, message_id: int):
    engine = sa.create_engine(live.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT state, token, name FROM wazzup_media WHERE message_id = :id"),
                                {"id": message_id}).one()
    finally:
        engine.dispose()


def test_a_kept_photo_is_shown_from_the_helpdesks_copy(signed_in, live):
    page = signed_in
    chat_id, message_id = _customer_sends_a_photo(live, "Paula Photo")
    data, kept = png(), _media(live, message_id)
    _set_media(live, message_id, state="stored", data=data, size=len(data), content_type="image/png",
               sha256=hashlib.sha256(data).hexdigest(), url=media_url(kept.token, kept.name))
    url = live.message(chat_id, message_id)["wazzup_media_url"]
    assert url == f"/wazzup24/media/{kept.token}/parcel.png"

    open_chat(page, "Paula Photo")

    image = page.locator(f".msg[data-message-id='{message_id}'] img.msg-image")
    expect(image).to_have_attribute("src", url)
    expect(page.locator(f".msg[data-message-id='{message_id}'] a.msg-image-link")).to_have_attribute("href", url)
    page.wait_for_function("img => img.complete && img.naturalWidth === 160", arg=image.element_handle())
    assert page.page_errors == []


def test_a_failed_download_offers_retry_download(signed_in, live):
    page = signed_in
    chat_id, message_id = _customer_sends_a_photo(live, "Fiona Failed")
    _set_media(live, message_id, state="failed", attempts=6, last_error="the store answered HTTP 503")

    open_chat(page, "Fiona Failed")

    bubble = page.locator(f".msg[data-message-id='{message_id}']")
    expect(bubble.locator(".wz-media-note")).to_contain_text("could not download")
    # Until a copy is kept, Wazzup's link is what the agent gets.
    expect(bubble.locator("img.msg-image")).to_have_count(0)
    retry = bubble.get_by_role("button", name="Retry download")
    retry.click()
    expect(retry).to_have_count(0)               # the message changed: no longer failed
    expect(bubble.locator(".wz-media-note")).to_have_count(0)
    assert _media(live, message_id).state == "pending"
    assert page.page_errors == []


def test_a_copy_deleted_after_the_retention_says_so_and_offers_no_retry(signed_in, live):
    page = signed_in
    chat_id, message_id = _customer_sends_a_photo(live, "Edna Expired")
    _set_media(live, message_id, state="expired", data=None)

    open_chat(page, "Edna Expired")

    bubble = page.locator(f".msg[data-message-id='{message_id}']")
    expect(bubble.locator(".wz-media-note")).to_contain_text("retention period and has deleted it")
    expect(bubble.locator("img.msg-image")).to_have_count(0)  # not drawn from the copy's URL, which answers 410
    expect(bubble.get_by_role("button", name="Retry download")).to_have_count(0)
    assert live.message(chat_id, message_id)["wazzup_media_state"] == "expired"
    assert page.page_errors == []
