"""Group chats in the agent UI: each incoming message names the member who wrote it, and the group
keeps its title whoever writes. Every wait is bounded."""

from __future__ import annotations

import re
import secrets

import pytest

from tests.ui.conftest import WAIT_MS
from tests.ui.test_browser import bubble, chat_item, new_phone, open_chat

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


def test_a_group_message_shows_its_senders_name_and_a_one_to_one_message_shows_none(signed_in, live):
    page = signed_in
    group_id = "1203630" + "".join(secrets.choice("0123456789") for _ in range(11)) + "@g.us"
    title = "Suppliers " + secrets.token_hex(3)
    live.customer_writes("Welcome to the group", chatId=group_id, chatType="whatsgroup", name=title)
    live.customer_writes("Who has the invoice?", chatId=group_id, chatType="whatsgroup", name="Anna <b>Group</b>")
    live.customer_writes("I do, sending it now", chatId=group_id, chatType="whatsgroup", name="Boris")
    expect(chat_item(page, title).locator(".chat-item-preview")).to_have_text("I do, sending it now")
    open_chat(page, title)                            # still titled as created: no rename after Boris
    asked, answered = bubble(page, "Who has the invoice?"), bubble(page, "I do, sending it now")
    expect(asked).to_have_class(re.compile(r"\bmsg-in\b"))
    expect(asked.locator(".msg-author")).to_have_text("Anna <b>Group</b>")   # as text, never markup
    expect(asked.locator(".msg-author b")).to_have_count(0)
    expect(answered.locator(".msg-author")).to_have_text("Boris")
    expect(page.locator("#chat-title")).to_have_text(title)

    live.customer_writes("A one-to-one question", chatId=new_phone(), name="Olga Single")
    open_chat(page, "Olga Single")
    expect(bubble(page, "A one-to-one question")).to_be_visible()
    expect(bubble(page, "A one-to-one question").locator(".msg-author")).to_have_count(0)
