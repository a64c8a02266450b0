"""Agents write first: "New chat" under the chat list opens a chat with a number (or, on Telegram, a
username), ready for the first message; the customer's answer comes to the same chat."""

from __future__ import annotations

import json
from contextlib import contextmanager

import pytest

from tests.ui.conftest import WAIT_MS, screenshot
from tests.ui.test_browser import bubble, composer, new_phone, reply

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


def new_chat_dialog(page):
    page.get_by_role("button", name="New chat").click()
    dialog = page.get_by_role("dialog", name="New chat")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Phone number")).to_be_focused()
    return dialog


@contextmanager
def telegram_channel(live, alone: bool = False):
    """The sandbox's account with a Telegram channel (a personal account) beside its own channels, or
    ``alone``; its channels as they were afterwards (the live stack is shared by the module's tests)."""
    channels = live.sandbox("GET", "/_sandbox/config")["channels"]
    telegram = {"channelId": "3f9d2c10-6b1e-4f0a-a7c4-51e2d8b0c7a1", "transport": "tgapi",
                "plainId": "helpdesk_support", "state": "active"}
    live.sandbox("PATCH", "/_sandbox/config", json={"channels": [telegram] if alone else channels + [telegram]})
    try:
        yield telegram
    finally:
        live.sandbox("PATCH", "/_sandbox/config", json={"channels": channels})


def as_written_at_home(phone: str) -> str:
    """79161234567 as a Russian types it: 8 (916) 123-45-67."""
    return f"8 ({phone[1:4]}) {phone[4:7]}-{phone[7:9]}-{phone[9:]}"


def test_an_agent_opens_a_chat_with_a_number_writes_first_and_gets_the_answer_there(signed_in, live):
    page = signed_in
    phone = "79" + new_phone()[2:]   # a Russian mobile, which a Russian writes with 8
    dialog = new_chat_dialog(page)
    dialog.get_by_label("Phone number").fill(as_written_at_home(phone))
    dialog.get_by_label("Name (optional)").fill("Nina New")
    screenshot(page, "new-chat-dialog")
    dialog.get_by_role("button", name="Open the chat").click()
    expect(dialog).to_have_count(0)
    expect(page.locator("#chat-title")).to_have_text("Nina New")
    reply(page, "Hello Nina, your order is ready")
    sent = bubble(page, "Hello Nina, your order is ready")
    expect(sent).to_have_attribute("data-status", "accepted")
    received = live.sandbox("GET", "/_sandbox/received")["messages"]
    assert any(m.get("chatId") == phone and m.get("text") == "Hello Nina, your order is ready" for m in received)

    started = live.chat_by_phone(phone)["id"]
    live.customer_writes("Thank you!", chatId=phone)
    expect(bubble(page, "Thank you!")).to_be_visible()   # in the chat the agent started, open on screen
    assert [c["id"] for c in live.api("/api/chats", q=phone)["items"]] == [started]
    expect(page.locator(".chat-item", has_text="Thank you!")).to_have_count(1)


def test_a_number_that_cannot_be_read_surely_is_explained_in_the_dialog(signed_in):
    page = signed_in
    dialog = new_chat_dialog(page)
    dialog.get_by_label("Phone number").fill("8 495 123 45 67")
    dialog.get_by_role("button", name="Open the chat").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Phone number")
    expect(dialog.get_by_role("alert")).to_contain_text("with + and the country code")
    expect(dialog.get_by_label("Phone number")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("button", name="New chat")).to_be_focused()
    expect(composer(page)).to_have_count(0)   # no chat was opened


def test_with_several_whatsapp_channels_the_agent_chooses_the_one_to_write_from(signed_in, live):
    page = signed_in
    report = live.api("/api/wazzup24/connection")
    [ours] = [c for c in report["channels"] if c["transport"] == "whatsapp"]
    other = {"channel_id": "5c7e9a41-2b0d-4e7f-9a55-0d3f1b6c8e21", "transport": "wapi", "plain_id": "79865784458",
             "state": "active", "active": True}
    page.route("**/api/wazzup24/connection", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps({**report, "channels": [ours, other], "selected_channel": None})))
    posted = []
    page.on("request", lambda request: posted.append(request.post_data_json)
            if request.method == "POST" and request.url.endswith("/api/wazzup24/chats") else None)
    dialog = new_chat_dialog(page)
    source = dialog.get_by_label("From")
    expect(source.locator("option")).to_have_text([f"WhatsApp +{ours['plain_id']}", "WhatsApp Business +79865784458"])
    source.select_option(other["channel_id"])
    dialog.get_by_label("Phone number").fill("+" + new_phone())
    dialog.get_by_role("button", name="Open the chat").click()
    # The sandbox's account has no such channel: the server says so, on the field the agent chose it in.
    expect(dialog.get_by_role("alert")).to_contain_text("From")
    expect(dialog.get_by_role("alert")).to_contain_text("not a channel of this Wazzup account")
    screenshot(page, "new-chat-from")
    assert posted[-1]["channel_id"] == other["channel_id"]


def test_the_new_chat_action_stands_out_and_is_read_out_by_its_name_alone(signed_in):
    page = signed_in
    action = page.get_by_role("button", name="New chat", exact=True)  # the drawn "+ " is not read out

    expect(action).to_be_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('.list-action')).color") == "rgb(37, 99, 235)"
    assert page.page_errors == []


def test_an_agent_writes_first_on_telegram_by_username_and_the_answer_comes_to_that_chat(signed_in, live):
    page = signed_in
    with telegram_channel(live) as telegram:
        username = "olga_" + new_phone()[-6:]
        dialog = new_chat_dialog(page)
        source = dialog.get_by_label("From")
        expect(source.locator("option")).to_have_count(2)
        source.select_option(telegram["channelId"])
        typed = dialog.get_by_label("Phone number or username")
        expect(typed).to_have_attribute("placeholder", "+7 916 123-45-67 or @username")
        typed.fill("@" + username)
        dialog.get_by_role("button", name="Open the chat").click()
        expect(dialog).to_have_count(0)
        expect(page.locator("#chat-title")).to_have_text("@" + username)
        reply(page, "Hello Olga, your order is ready")
        expect(bubble(page, "Hello Olga, your order is ready")).to_have_attribute("data-status", "accepted")
        [sent] = [m for m in live.sandbox("GET", "/_sandbox/received")["messages"]
                  if m.get("text") == "Hello Olga, your order is ready"]
        assert (sent["channelId"], sent["chatType"]) == (telegram["channelId"], "telegram")
        live.customer_writes("Thank you!", chatId=sent["chatId"], chatType="telegram", channelId=telegram["channelId"])
        expect(bubble(page, "Thank you!")).to_be_visible()   # in the chat the agent started, open on screen
        screenshot(page, "new-chat-telegram")


def test_a_started_chat_wazzup_names_after_one_the_helpdesk_has_opens_that_chat_with_the_message(signed_in, live):
    page = signed_in
    with telegram_channel(live) as telegram:
        username = "petr_" + new_phone()[-6:]

        def start(name=None):
            dialog = new_chat_dialog(page)
            dialog.get_by_label("From").select_option(telegram["channelId"])
            dialog.get_by_label("Phone number or username").fill("@" + username)
            if name:
                dialog.get_by_label("Name (optional)").fill(name)
            dialog.get_by_role("button", name="Open the chat").click()
            expect(dialog).to_have_count(0)

        start()
        reply(page, "Hello Petr")
        expect(bubble(page, "Hello Petr")).to_have_attribute("data-status", "accepted")  # the chat has its id now
        start("Petr again")   # the username again: a chat of its own until Wazzup names it
        expect(page.locator("#chat-title")).to_have_text("Petr again")
        reply(page, "Your order is ready")
        # Wazzup names the chat the helpdesk has: the message is there, and so is the agent.
        expect(page.locator("#chat-title")).to_have_text("@" + username)
        expect(bubble(page, "Your order is ready")).to_be_visible()
        expect(bubble(page, "Hello Petr")).to_be_visible()
        expect(page.locator(".chat-item", has_text="Petr again")).to_have_count(0)
        assert page.page_errors == []


def test_on_an_account_whose_only_channel_is_telegram_the_agent_writes_first_by_username(signed_in, live):
    page = signed_in
    with telegram_channel(live, alone=True):
        username = "anna_" + new_phone()[-6:]
        dialog = new_chat_dialog(page)
        expect(dialog.get_by_label("From").locator("option")).to_have_count(1)   # where it goes, said
        dialog.get_by_label("Phone number or username").fill("@" + username)
        dialog.get_by_role("button", name="Open the chat").click()
        expect(dialog).to_have_count(0)
        expect(page.locator("#chat-title")).to_have_text("@" + username)
