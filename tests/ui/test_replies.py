"""Replies (quotes) in the agent UI, as WhatsApp users know them: a customer's reply shows the
message it quotes, and the agent quotes a message with "Reply".

A customer's quoted reply comes through the sandbox (``quotedMessage`` on a customer message); every
wait is bounded.
"""

from __future__ import annotations

import re
import secrets

import pytest

from tests.ui.conftest import WAIT_MS, screenshot
from tests.ui.test_browser import bubble, composer, new_phone, open_chat, reply

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


def quote_of(page, text: str):
    return bubble(page, text).locator(".wz-quote")


def reply_bar(page):
    return page.locator(".wz-reply")


def test_a_customer_reply_shows_the_quoted_text_and_clicking_it_scrolls_to_the_original(signed_in, live):
    page = signed_in
    phone = new_phone()
    original = "Where is my parcel? " + "I ordered the blue kettle and the matching cups last week. " * 3
    first = live.customer_writes(original, chatId=phone, name="Quinn Quote")
    for i in range(5):  # tall messages push the original out of view
        live.customer_writes(f"Filler {i}\n" + "more details\n" * 8, chatId=phone)
    live.customer_writes("Any news on this?", chatId=phone, quotedMessage={"messageId": first["messageId"]})
    open_chat(page, "Quinn Quote")
    quote = quote_of(page, "Any news on this?")
    expect(quote).to_have_count(1)
    expect(quote.locator(".wz-quote-author")).to_have_text("Quinn Quote")
    shown = quote.locator(".wz-quote-text")
    expect(shown).to_have_text(original[:100] + "\u2026")    # the first 100 characters, as text
    expect(shown).to_have_attribute("dir", "auto")
    chat_id = live.chat_by_phone(phone)["id"]
    quoted_id = next(m["id"] for m in live.api(f"/api/chats/{chat_id}/messages", limit=50)["items"]
                     if m["wazzup_message_id"] == first["messageId"])
    target = page.locator(f".msg[data-message-id='{quoted_id}']")
    expect(target).not_to_be_in_viewport()
    quote.click()
    expect(target).to_be_in_viewport()
    expect(target).to_have_class(re.compile(r"\bmsg-flash\b"))   # briefly highlighted
    expect(target).not_to_have_class(re.compile(r"\bmsg-flash\b"))


def test_the_agent_replies_with_the_reply_action_and_wazzup_gets_the_quoted_id(signed_in, live):
    page = signed_in
    phone = new_phone()
    asked = live.customer_writes("Which size should I order?", chatId=phone, name="Rita Reply")
    live.customer_writes("And which colour?", chatId=phone)
    open_chat(page, "Rita Reply")
    question = bubble(page, "Which size should I order?")
    question.get_by_role("button", name="Reply").click()
    expect(reply_bar(page)).to_be_visible()
    expect(reply_bar(page)).to_contain_text("Replying to: Which size should I order?")
    expect(composer(page)).to_be_focused()
    reply(page, "Size M fits most.")
    expect(reply_bar(page)).to_be_hidden()                        # the reply target clears once sent
    sent = bubble(page, "Size M fits most.")
    expect(sent).to_have_attribute("data-status", "accepted")
    expect(quote_of(page, "Size M fits most.").locator(".wz-quote-text")).to_have_text("Which size should I order?")

    chat_id = live.chat_by_phone(phone)["id"]
    stored = live.message(chat_id, int(sent.get_attribute("data-message-id")))
    assert stored["wazzup_reply_to"] == asked["messageId"]
    received = [m for m in live.sandbox("GET", "/_sandbox/received")["messages"] if m.get("text") == "Size M fits most."]
    assert len(received) == 1
    assert received[0]["refMessageId"] == asked["messageId"]       # what Wazzup was asked to quote

    live.post_status(stored["wazzup_message_id"], "delivered")   # a re-render must not repeat the quote
    expect(sent).to_have_attribute("data-status", "delivered")
    expect(quote_of(page, "Size M fits most.")).to_have_count(1)
    bubble(page, "And which colour?").get_by_role("button", name="Reply").click()
    expect(reply_bar(page)).to_contain_text("Replying to: And which colour?")
    screenshot(page, "chat-reply-desktop")


def test_escape_or_the_cross_cancels_a_reply_and_so_does_another_chat(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Do you deliver on Sundays?", chatId=phone, name="Sam Escape")
    live.customer_writes("Just checking in", chatId=new_phone(), name="Other Chat")
    open_chat(page, "Sam Escape")
    question = bubble(page, "Do you deliver on Sundays?")
    question.get_by_role("button", name="Reply").click()
    expect(reply_bar(page)).to_be_visible()
    composer(page).press("Escape")
    expect(reply_bar(page)).to_be_hidden()

    question.get_by_role("button", name="Reply").click()
    page.get_by_role("button", name="Cancel the reply").click()
    expect(reply_bar(page)).to_be_hidden()

    question.get_by_role("button", name="Reply").click()
    open_chat(page, "Other Chat")
    open_chat(page, "Sam Escape")
    expect(page.locator(".wz-panel")).to_be_visible()
    expect(reply_bar(page)).to_be_hidden()

    reply(page, "Yes, from 10 to 16.")
    sent = bubble(page, "Yes, from 10 to 16.")
    expect(sent).to_have_attribute("data-status", "accepted")
    expect(sent.locator(".wz-quote")).to_have_count(0)
    chat_id = live.chat_by_phone(phone)["id"]
    assert live.message(chat_id, int(sent.get_attribute("data-message-id")))["wazzup_reply_to"] is None


def test_a_quote_of_a_message_not_loaded_says_a_reply_to_an_earlier_message(signed_in, live):
    page = signed_in
    phone = new_phone()
    gone = "wz-" + secrets.token_hex(8)                           # a message this helpdesk never loaded
    live.customer_writes("As I said before", chatId=phone, name="Una Earlier", quotedMessage={"messageId": gone})
    open_chat(page, "Una Earlier")
    quote = quote_of(page, "As I said before")
    expect(quote).to_have_text("a reply to an earlier message")
    expect(quote.get_by_role("button")).to_have_count(0)
    expect(bubble(page, "As I said before").get_by_role("button", name="Show the quoted message")).to_have_count(0)
