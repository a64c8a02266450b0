"""An agent notices new customer messages: the tab's title counts the chats with unread messages, and a
message that arrives while the agent reads older ones is pointed to, not marked read behind their back.

Messages are seeded straight into the database (tests/ui/seed.py); the page finds them by polling.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.ui.conftest import WAIT_MS
from tests.ui.test_browser import bubble, chat_item, new_phone, open_chat

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


def title_for(unread_chats: int) -> str:
    return f"({unread_chats}) Helpdesk" if unread_chats else "Helpdesk"


def unread_chats(page) -> int:
    return page.locator(".chat-item .badge").count()


def test_the_tab_title_counts_the_chats_with_unread_messages_until_they_are_read(signed_in, live):
    page = signed_in
    live.customer_writes("Is my parcel lost?", chatId=new_phone(), name="Tanya Title")
    expect(chat_item(page, "Tanya Title").locator(".badge")).to_have_text("1")
    unread = unread_chats(page)
    expect(page).to_have_title(title_for(unread))
    open_chat(page, "Tanya Title")
    expect(chat_item(page, "Tanya Title").locator(".badge")).to_have_count(0)
    expect(page).to_have_title(title_for(unread - 1))


def test_a_message_that_arrives_while_the_agent_reads_older_ones_is_pointed_to_and_stays_unread(signed_in, live):
    from tests.ui.seed import add_chat, add_message, helpdesk_for

    page = signed_in
    helpdesk = helpdesk_for(live.database_url)
    # A minute ago, not earlier: the chat must be on the list's first page, which the other tests' chats
    # in this shared database fill with newer activity as the suite grows.
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    try:
        chat = add_chat(helpdesk, title="Sergei Scrolled", phone=new_phone(), at=start)
        for i in range(30):
            add_message(helpdesk, chat, text=f"Earlier line {i}", at=start + timedelta(seconds=i))
        expect(chat_item(page, "Sergei Scrolled")).to_be_visible()
        open_chat(page, "Sergei Scrolled")
        expect(chat_item(page, "Sergei Scrolled").locator(".badge")).to_have_count(0)
        page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")   # reading the first lines
        add_message(helpdesk, chat, text="Hello? Anyone reading this?")
        new = page.get_by_role("button", name="New messages \u2193")
        expect(new).to_be_visible()
        expect(bubble(page, "Hello? Anyone reading this?")).not_to_be_in_viewport()
        expect(chat_item(page, "Sergei Scrolled").locator(".badge")).to_have_text("1")
        page.wait_for_timeout(2500)            # another poll: the chat is still not marked read
        assert live.api(f"/api/chats/{chat}")["unread_count"] == 1
        new.click()
        expect(bubble(page, "Hello? Anyone reading this?")).to_be_in_viewport()
        expect(new).to_be_hidden()
        expect(chat_item(page, "Sergei Scrolled").locator(".badge")).to_have_count(0)
        assert live.api(f"/api/chats/{chat}")["unread_count"] == 0
    finally:
        helpdesk.db.engine.dispose()


def test_a_reply_that_turns_unknown_is_announced_like_one_that_failed(signed_in, live):
    from tests.ui.seed import add_chat, add_message, helpdesk_for, set_message

    page = signed_in
    helpdesk = helpdesk_for(live.database_url)
    try:
        chat = add_chat(helpdesk, title="Uma Unknown", phone=new_phone(), preview="Hi")
        add_message(helpdesk, chat, text="Where is my order?")
        sure = add_message(helpdesk, chat, text="It left today", direction="out", status="accepted")
        unsure = add_message(helpdesk, chat, text="Tracking follows", direction="out", status="accepted")
        open_chat(page, "Uma Unknown")
        expect(bubble(page, "Tracking follows")).to_have_attribute("data-status", "accepted")
        set_message(helpdesk, unsure, status="unknown")
        expect(page.locator(".toast-error")).to_contain_text("could not confirm that your message went out")
        set_message(helpdesk, sure, status="failed", error_code="BAD_CONTACT", error_text="Not on WhatsApp")
        expect(page.locator(".toast-error").last).to_contain_text("Not delivered: Not on WhatsApp")
        expect(page.locator(".toast-error")).to_have_count(2)
    finally:
        helpdesk.db.engine.dispose()
