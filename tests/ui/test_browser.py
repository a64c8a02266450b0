"""The agent UI in a real browser (Chromium via Playwright) against gunicorn and the Wazzup24 sandbox.

Every wait is bounded (Playwright's expect with a timeout); nothing asserts how long anything took.
Screenshots of the list and of a chat, at desktop width and at 360 px, go to tests/artifacts/.
"""

from __future__ import annotations

import re
import secrets

import pytest

from tests.ui.conftest import WAIT_MS, screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


def new_phone() -> str:
    return "7" + "".join(secrets.choice("0123456789") for _ in range(10))


def chat_item(page, title: str):
    return page.locator(".chat-item", has_text=title)


def open_chat(page, title: str):
    chat_item(page, title).get_by_role("button").click()
    expect(page.locator("#chat-title")).to_have_text(title)


def composer(page):
    return page.get_by_label(re.compile(r"^Message to "))


def reply(page, text: str):
    box = composer(page)
    box.fill(text)
    box.press("Enter")


def bubble(page, text: str):
    return page.locator(".msg", has_text=text)


def test_an_agent_signs_in_and_a_wrong_password_is_refused(browser_page, live):
    page = browser_page
    page.goto(live.url + "/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("alice")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-message")).to_have_text("The name or the password is wrong.")
    sign_in(page, live.url)
    expect(page.locator("#agent-name")).to_have_text("Alice Agent")
    page.reload()  # the session cookie keeps the agent signed in
    expect(page.locator("#app-view")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login-message")).to_have_text("You have signed out.")
    page.reload()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_an_incoming_message_appears_live_and_opening_the_chat_marks_it_read(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Hello, is my order ready?", chatId=phone, name="Olga Live")
    item = chat_item(page, "Olga Live")
    expect(item).to_be_visible()                     # no reload: the list polls changed_since
    expect(item.locator(".chat-item-preview")).to_have_text("Hello, is my order ready?")
    expect(item.locator(".badge")).to_have_text("1")
    expect(item.locator(".chat-item-icon")).to_have_attribute("src", "/static/plugins/wazzup24/whatsapp.svg")
    expect(page.locator(".chat-item").first).to_contain_text("Olga Live")   # newest activity first
    open_chat(page, "Olga Live")
    expect(bubble(page, "Hello, is my order ready?")).to_have_class(re.compile(r"\bmsg-in\b"))
    expect(item.locator(".badge")).to_have_count(0)
    assert live.chat_by_phone(phone)["unread_count"] == 0
    live.customer_writes("And one more question", chatId=phone)
    expect(bubble(page, "And one more question")).to_be_visible()   # the open chat polls too
    expect(page.locator(".msg").last).to_contain_text("And one more question")
    expect(item.locator(".chat-item-preview")).to_have_text("And one more question")
    expect(item.locator(".badge")).to_have_count(0)                 # read while the agent looks at it


def test_the_chat_list_writes_phones_as_people_do_and_sets_unread_chats_apart(signed_in, live):
    page = signed_in
    phone = new_phone()
    written = f"+7 {phone[1:4]} {phone[4:7]}-{phone[7:9]}-{phone[9:]}"
    live.customer_writes("Is anyone there?", chatId=phone, name="Rita Unread")
    item = chat_item(page, "Rita Unread")
    expect(item.locator(".chat-item-phone")).to_have_text(written)
    expect(item).to_have_class(re.compile(r"\bchat-unread\b"))
    assert item.locator(".chat-item-title").evaluate("e => getComputedStyle(e).fontWeight") == "700"
    open_chat(page, "Rita Unread")
    expect(page.locator("#chat-phone")).to_have_text(written)
    expect(item).not_to_have_class(re.compile(r"\bchat-unread\b"))
    assert item.locator(".chat-item-title").evaluate("e => getComputedStyle(e).fontWeight") == "500"


def test_the_chat_header_names_the_channel_the_reply_goes_out_from(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Which shop is this?", chatId=phone, name="Vadim Channel")
    open_chat(page, "Vadim Channel")   # the page's connection check stores the account's channels
    line = page.locator("#chat-header-extra .wz-chat-channel")
    expect(line).to_contain_text("via WhatsApp +")
    channel = live.api(f"/api/chats/{live.chat_by_phone(phone)['id']}/wazzup24/info")["channel"]
    assert (channel["transport"], channel["state"]) == ("whatsapp", "active")
    expect(line).to_have_text(f"via WhatsApp +{channel['plain_id']}")


def test_a_missed_call_and_an_unsupported_message_show_their_placeholder_once(signed_in, live):
    page = signed_in
    phone = new_phone()
    for kind in ("missing_call", "unsupported"):
        live.sandbox("POST", "/_sandbox/customer-messages",
                     json={"type": kind, "chatId": phone, "name": "Gleb Calls", "wait": True})
    open_chat(page, "Gleb Calls")
    call = page.locator(".msg[data-type='missing_call']")
    expect(call).to_have_count(1)
    expect(call.locator(".msg-content")).to_have_text("Missed call")
    unsupported = page.locator(".msg[data-type='unsupported'] .msg-content")
    expect(unsupported).to_have_text("[A message of a type Wazzup does not support: open it on the phone]")


def test_a_reply_goes_out_and_its_ticks_progress_to_read(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Can you call me back?", chatId=phone, name="Pavel Ticks")
    expect(chat_item(page, "Pavel Ticks").locator(".badge")).to_have_text("1")
    screenshot(page, "list-desktop")
    open_chat(page, "Pavel Ticks")
    expect(page.locator(".wz-dot")).to_have_attribute("data-status", "ok")
    box = composer(page)
    box.fill("Of course, in five minutes.")
    box.press("Shift+Enter")                          # a new line, not a send
    box.type("Alice")
    expect(box).to_have_value("Of course, in five minutes.\nAlice")
    box.press("Enter")
    expect(box).to_have_value("")
    sent = bubble(page, "Of course, in five minutes.")
    expect(sent).to_have_class(re.compile(r"\bmsg-out\b"))
    expect(sent).to_have_attribute("data-status", "accepted")
    # Said where the agent looks (the seed's "notification of a successful send"), not in a toast over the chat.
    note = page.locator(".wz-sent-note")
    expect(note).to_have_text("Sent to Wazzup24 \u2713")
    expect(note).to_have_attribute("aria-live", "polite")
    assert page.locator(".toast").count() == 0
    message_id = int(sent.get_attribute("data-message-id"))
    chat_id = live.chat_by_phone(phone)["id"]
    wazzup_id = live.message(chat_id, message_id)["wazzup_message_id"]
    assert wazzup_id
    for status in ("sent", "delivered", "read"):
        live.post_status(wazzup_id, status)
        expect(sent).to_have_attribute("data-status", status, timeout=WAIT_MS)
        expect(sent.locator(f".ticks-{status}")).to_be_visible()
    expect(sent.locator(".ticks-read")).to_have_attribute("aria-label", "Read")
    color = sent.locator(".ticks-read").evaluate("node => getComputedStyle(node).color")
    assert color == "rgb(14, 165, 233)"  # read ticks are blue
    expect(note).to_have_text("", timeout=WAIT_MS)  # said for a few seconds
    screenshot(page, "chat-desktop")


def test_a_failure_reported_later_by_webhook_notifies_and_offers_resend_only_where_it_can_help(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Hi there", chatId=phone, name="Vera Webhook")
    open_chat(page, "Vera Webhook")
    chat_id = live.chat_by_phone(phone)["id"]

    def fails_later(text: str, code: str):
        reply(page, text)
        sent = bubble(page, text)
        expect(sent).to_have_attribute("data-status", "accepted")
        wazzup_id = live.message(chat_id, int(sent.get_attribute("data-message-id")))["wazzup_message_id"]
        live.post_status(wazzup_id, "error", {"error": code, "description": "Refused"})
        expect(sent).to_have_attribute("data-status", "failed")
        return sent

    sent = fails_later("Thanks for writing", "BAD_CONTACT")
    expect(page.locator(".toast-error")).to_contain_text("The number is not on WhatsApp")  # our words for the code
    expect(sent.locator(".msg-error")).to_contain_text("The number is not on WhatsApp")
    expect(sent.get_by_role("button", name="Resend")).to_have_count(0)   # it would be refused again
    sent = fails_later("We are on it", "TOO_MANY_EXT_REQS")
    expect(sent.locator(".msg-error")).to_contain_text("resend it later")
    sent.get_by_role("button", name="Resend").click()
    expect(page.locator(".toast").last).to_contain_text(re.compile("Sent again|Queued again|Resend failed"))
    expect(sent.get_by_role("button", name="Resend")).to_have_count(0)  # offered once: it points at its resend
    screenshot(page, "chat-failed-desktop")


def test_the_connection_indicator_is_green_and_turns_red_with_a_wrong_key(playwright_browser, browser_page, live):
    page = sign_in(browser_page, live.url)
    phone = new_phone()
    live.customer_writes("Is anyone there?", chatId=phone, name="Key Check")
    open_chat(page, "Key Check")
    dot = page.locator(".wz-dot")
    expect(dot).to_have_attribute("data-status", "ok")
    expect(dot).to_have_class(re.compile(r"\bwz-dot-ok\b"))

    wrong = live.start_host(WAZZUP24_API_KEY="wrong-key-0123456789abcdef")   # same database, a wrong key
    other = sign_in(playwright_browser.new_page(viewport={"width": 1280, "height": 800}), wrong)
    try:
        open_chat(other, "Key Check")
        red = other.locator(".wz-dot")
        expect(red).to_have_attribute("data-status", "error")
        expect(red).to_have_class(re.compile(r"\bwz-dot-bad\b"))
        expect(red).to_have_attribute("aria-label", re.compile(r"Wazzup24 connection failed: .+"))
        assert red.get_attribute("title") == red.get_attribute("aria-label")
        reply(other, "Sending with a refused key")
        # In an agent's words, once: who can fix it, then Resend (which works again once the key does).
        toast = other.locator(".toast-error")
        expect(toast).to_have_text(re.compile(
            r"^Not delivered: Wazzup24 refused the helpdesk's API key, so nothing was sent: ask your administrator "
            r"to check the Wazzup24 settings\. Use Resend on the message to send it again once that is done\."))
        expect(toast).not_to_contain_text("WAZZUP24_API_KEY")
        expect(composer(other)).to_have_value("")   # stored as failed: Resend, not another Enter, sends it
        failed = bubble(other, "Sending with a refused key")
        expect(failed).to_have_attribute("data-status", "failed")
        expect(failed.locator(".msg-error")).to_contain_text("ask your administrator")
        expect(failed.get_by_role("button", name="Resend")).to_be_visible()
    finally:
        other.context.close()


def test_a_script_payload_stays_inert_and_shows_literally(signed_in, live):
    page = signed_in
    phone = new_phone()
    payload = "<img src=x onerror=alert('xss')><script>alert('xss2')</script>"
    name = "<b onmouseover=alert(3)>Mallory</b>"
    live.customer_writes(payload, chatId=phone, name=name)
    item = chat_item(page, "Mallory")
    expect(item.locator(".chat-item-title")).to_have_text(name)
    expect(item.locator(".chat-item-preview")).to_have_text(payload)
    open_chat(page, name)
    shown = bubble(page, "onerror")
    expect(shown.locator(".msg-text")).to_have_text(payload)
    reply(page, payload)
    expect(bubble(page, "xss2")).to_have_count(2)
    item.hover()
    assert page.locator("img[src='x'], #message-list script, b[onmouseover]").count() == 0
    assert page.dialogs == []
    assert page.page_errors == []


def test_links_in_a_message_open_in_a_new_tab_and_nothing_else_becomes_a_link(signed_in, live):
    page = signed_in
    text = ("Track it at https://track.example/parcel?id=42&x=<b>1</b>. Or http://shop.example/faq, "
            "not javascript:alert(1) nor <a href='https://evil.example'>this</a>")
    live.customer_writes(text, chatId=new_phone(), name="Lukas Links")
    open_chat(page, "Lukas Links")
    shown = bubble(page, "Track it at")
    expect(shown.locator(".msg-text")).to_have_text(text)            # every character shown as written
    links = shown.locator(".msg-text a")
    expect(links).to_have_count(3)
    expect(links.nth(0)).to_have_attribute("href", "https://track.example/parcel?id=42&x=")
    expect(links.nth(1)).to_have_attribute("href", "http://shop.example/faq")
    expect(links.nth(2)).to_have_attribute("href", "https://evil.example")   # the URL, not the markup
    expect(links.nth(2)).to_have_text("https://evil.example")
    for i in range(3):
        expect(links.nth(i)).to_have_attribute("target", "_blank")
        expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
    expect(shown.locator("b")).to_have_count(0)


def test_the_list_filters_by_type_searches_and_pages(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Searching for me?", chatId=phone, name="Zoe Search")
    expect(chat_item(page, "Zoe Search")).to_be_visible()
    page.get_by_label("Search chats by name or phone").fill(phone[-6:])
    expect(page.locator(".chat-item")).to_have_count(1)
    expect(page.locator(".chat-item")).to_contain_text("Zoe Search")
    page.get_by_label("Search chats by name or phone").fill("zoe sea")
    expect(page.locator(".chat-item")).to_have_count(1)
    page.get_by_label("Search chats by name or phone").fill("")
    page.get_by_label("Channel").select_option("internal")
    expect(chat_item(page, "Zoe Search")).to_have_count(0)
    expect(page.locator(".chat-item[data-type='wazzup']")).to_have_count(0)
    page.get_by_label("Channel").select_option("")
    expect(chat_item(page, "Zoe Search")).to_be_visible()


def test_a_long_list_loads_page_by_page_as_it_scrolls(signed_in, live):
    from datetime import datetime, timedelta, timezone

    from tests.ui.seed import add_chat, helpdesk_for

    helpdesk = helpdesk_for(live.database_url)
    start = datetime.now(timezone.utc) - timedelta(days=30)
    for i in range(120):
        add_chat(helpdesk, type="internal", title=f"Archive {i:03d}", at=start + timedelta(minutes=i),
                 preview=f"archived thread {i}")
    helpdesk.db.engine.dispose()
    page = signed_in
    page.get_by_label("Search chats by name or phone").fill("Archive")
    items = page.locator(".chat-item")
    expect(items).to_have_count(50)                              # one page, never the whole list
    expect(items.first).to_contain_text("Archive 119")           # newest activity first
    internal_icon = next(t["icon"] for t in live.api("/api/chat-types")["items"] if t["name"] == "internal")
    expect(items.first.locator(".chat-item-icon")).to_have_attribute("src", internal_icon)
    page.locator("#chat-list-more").scroll_into_view_if_needed()
    expect(items).to_have_count(100)
    page.locator("#chat-list-more").scroll_into_view_if_needed()
    expect(items).to_have_count(120)
    expect(items.last).to_contain_text("Archive 000")
    expect(page.locator("#chat-list-more")).to_be_hidden()


def test_on_a_narrow_screen_the_list_and_the_chat_take_turns(playwright_browser, live):
    context = playwright_browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        sign_in(page, live.url)
        phone = new_phone()
        live.customer_writes("Writing from my phone", chatId=phone, name="Nina Narrow")
        expect(chat_item(page, "Nina Narrow")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(page, "list-360")
        open_chat(page, "Nina Narrow")
        expect(page.locator("#list-pane")).to_be_hidden()
        reply(page, "Answering at 360 px")
        expect(bubble(page, "Answering at 360 px")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(page, "chat-360")
        page.get_by_role("button", name="Back to the chat list").click()
        expect(page.locator("#list-pane")).to_be_visible()
    finally:
        context.close()


def test_every_kind_of_message_status_and_marker_is_shown(signed_in, live):
    from tests.ui.seed import helpdesk_for, showcase

    helpdesk = helpdesk_for(live.database_url)
    showcase(helpdesk)
    helpdesk.db.engine.dispose()
    page = signed_in
    # Media stay where Wazzup stores them; the browser here has no internet, so answer for the store.
    photo = live.http.get(live.sandbox_url + "/_sandbox/media/photo.png", timeout=10).content
    page.route("https://store.wazzup24.com/**", lambda route: route.fulfill(
        status=200, content_type="image/png", body=photo))
    page.get_by_label("Search chats by name or phone").fill("Maria Ivanova")
    open_chat(page, "Maria Ivanova")
    image = page.locator(".msg[data-type='image'] img.msg-image")
    expect(image).to_have_attribute("src", "https://store.wazzup24.com/parcel.jpg")
    expect(image).to_have_attribute("alt", "parcel.jpg")
    page.wait_for_function("() => document.querySelector('img.msg-image').naturalWidth > 0", timeout=WAIT_MS)
    document = page.locator(".msg[data-type='document'] a.msg-document")
    expect(document).to_have_text("invoice-1042.pdf")
    expect(document).to_have_attribute("href", "https://store.wazzup24.com/invoice-1042.pdf")
    expect(page.locator(".msg[data-type='audio'] audio[controls]")).to_have_count(1)
    expect(page.locator(".msg[data-type='geo'] a.msg-geo-link")).to_have_attribute(
        "href", re.compile(r"^https://www\.openstreetmap\.org/\?mlat=55\.7558&mlon=37\.6173"))
    contact = page.locator(".msg[data-type='vcard'] .msg-contact")
    expect(contact.locator(".msg-contact-name")).to_have_text("Ivan Petrov")
    expect(contact.locator(".msg-contact-phone")).to_have_text("+79990001122")
    expect(page.locator(".msg[data-type='unsupported'] .msg-placeholder")).to_contain_text("cannot be shown here")
    edited = bubble(page, "Sorry, wrong number").locator(".msg-edited")
    expect(edited).to_have_attribute("title", "Before the edit: Sorry, wrong numbr")
    expect(bubble(page, "This was removed").locator(".msg-deleted-marker")).to_have_text("deleted")
    for text, status in [("Good afternoon, Maria", "read"), ("It is on its way.", "delivered"),
                         ("Tracking: RU123456789", "sent"), ("Anything else?", "accepted"),
                         ("Please rate us", "failed"), ("Are you still there?", "unknown"), ("One moment", "queued")]:
        expect(bubble(page, text)).to_have_attribute("data-status", status)
        expect(bubble(page, text).locator(f".ticks-{status}")).to_have_count(1)
    expect(bubble(page, "Please rate us").locator(".msg-error")).to_have_text(
        "Not delivered: The contact does not exist in WhatsApp")
    expect(bubble(page, "Are you still there?").locator(".msg-hint")).to_contain_text("could not confirm")
    # The plugin's action: where resending may help (not to a number that is not on WhatsApp).
    expect(bubble(page, "Are you still there?").get_by_role("button", name="Resend")).to_be_visible()
    expect(bubble(page, "Please rate us").get_by_role("button", name="Resend")).to_have_count(0)
    expect(bubble(page, "It is on its way.").get_by_role("button", name="Resend")).to_have_count(0)
    expect(page.locator(".msg-in .ticks")).to_have_count(0)
    page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
    screenshot(page, "chat-media-desktop")

    page.get_by_label("Search chats by name or phone").fill("Old Telegram chat")
    open_chat(page, "Old Telegram chat")                            # its plugin is not installed
    expect(page.locator("#chat-icon")).to_have_attribute("src", "/static/icons/unknown.svg")
    expect(page.locator(".panel-note")).to_contain_text("not installed")
    expect(page.locator(".wz-panel")).to_have_count(0)


def test_messages_of_different_days_are_separated_by_their_day(signed_in, live):
    from datetime import datetime, timedelta, timezone

    from tests.ui.seed import add_chat, add_message, helpdesk_for

    helpdesk = helpdesk_for(live.database_url)
    now = datetime.now(timezone.utc)
    chat = add_chat(helpdesk, title="Dora Days", phone=new_phone(), at=now - timedelta(days=3))
    add_message(helpdesk, chat, text="Three days ago, twice", at=now - timedelta(days=3))
    add_message(helpdesk, chat, text="Three days ago, again", at=now - timedelta(days=3) + timedelta(seconds=5))
    add_message(helpdesk, chat, text="Yesterday's question", at=now - timedelta(days=1))
    add_message(helpdesk, chat, text="Today's question", at=now)
    helpdesk.db.engine.dispose()
    page = signed_in
    open_chat(page, "Dora Days")
    days = page.get_by_role("separator")
    expect(days).to_have_count(3)
    three_days_ago = page.evaluate("() => new Date(Date.now() - 3 * 864e5).getDate()")
    expect(days.nth(0)).to_contain_text(re.compile(rf"\b{three_days_ago}\b"))
    expect(days.nth(1)).to_have_text("Yesterday")
    expect(days.nth(2)).to_have_text("Today")
    order = page.locator("#message-list > li").all_text_contents()
    assert [i for i, text in enumerate(order) if text in ("Yesterday", "Today")] == [3, 5], order


def test_older_history_loads_when_scrolling_up(signed_in, live):
    from datetime import datetime, timedelta, timezone

    from tests.ui.seed import add_chat, add_message, helpdesk_for

    helpdesk = helpdesk_for(live.database_url)
    start = datetime.now(timezone.utc) - timedelta(days=2)
    chat = add_chat(helpdesk, title="Long History", phone=new_phone(), at=start)
    for i in range(130):
        add_message(helpdesk, chat, text=f"History {i:03d}", direction="in" if i % 2 else "out",
                    status=None if i % 2 else "read", at=start + timedelta(minutes=i))
    helpdesk.db.engine.dispose()
    page = signed_in
    page.get_by_label("Search chats by name or phone").fill("Long History")
    open_chat(page, "Long History")
    messages = page.locator(".msg")
    expect(messages).to_have_count(50)
    expect(messages.last).to_contain_text("History 129")
    for count in (100, 130):
        page.locator("#messages").evaluate("box => { box.scrollTop = 0; box.dispatchEvent(new Event('scroll')); }")
        expect(messages).to_have_count(count)
    expect(messages.first).to_contain_text("History 000")


def test_the_counter_counts_code_points_and_stops_a_text_over_the_limit(signed_in, live):
    page = signed_in
    live.customer_writes("Send me a long one", chatId=new_phone(), name="Long Text")
    open_chat(page, "Long Text")
    box, counter, send = composer(page), page.locator(".wz-counter"), page.get_by_role("button", name="Send", exact=True)
    box.fill("\U0001F600" * 5000)                  # 10,000 UTF-16 units, 5,000 characters: no counter yet
    expect(counter).to_be_hidden()
    expect(send).to_be_enabled()
    box.fill("\U0001F600" * 9500)
    expect(counter).to_have_text("9,500 / 10,000")
    box.fill("\U0001F600" * 10000)
    expect(counter).to_have_text("10,000 / 10,000")
    expect(send).to_be_enabled()
    box.fill("\U0001F600" * 10001)
    expect(counter).to_have_text("10,001 / 10,000")
    expect(counter).to_have_class(re.compile(r"\bwz-over\b"))
    expect(send).to_be_disabled()
    box.press("Enter")                             # Enter does not send a text over the limit
    expect(page.locator(".msg-out")).to_have_count(0)
    box.fill("   ")
    expect(send).to_be_disabled()                  # nor a blank one


def test_a_lost_session_returns_to_the_sign_in_form(signed_in, live):
    page = signed_in
    page.context.clear_cookies()                   # e.g. the session expired or was signed out elsewhere
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()   # the next poll answers 401
    expect(page.locator("#login-message")).to_contain_text("sign in again")
    sign_in(page, live.url)
    expect(page.locator(".chat-item").first).to_be_visible()


def test_while_a_send_is_in_flight_send_waits_and_the_box_takes_the_next_message(signed_in, live):
    page = signed_in
    live.customer_writes("Take your time", chatId=new_phone(), name="Slow Wazzup")
    open_chat(page, "Slow Wazzup")
    live.sandbox("POST", "/_sandbox/faults", json={"kind": "slow", "seconds": 2, "path": "/v3/message",
                                                   "afterAccept": True})
    try:
        box, send = composer(page), page.get_by_role("button", name=re.compile(r"^Send(ing…)?$"))
        box.fill("Wazzup is slow today")
        box.press("Enter")
        expect(send).to_be_disabled()
        expect(send).to_have_text("Sending…")
        expect(box).to_be_editable()
        expect(box).to_have_value("")                 # the text went out of the box: the next one comes in
        box.type("And here is the next one")
        box.press("Enter")                            # not sent while the first one is in flight
        expect(send).to_have_text("Send")
        expect(bubble(page, "Wazzup is slow today")).to_have_attribute("data-status", "accepted")
        expect(box).to_have_value("And here is the next one")
        expect(page.locator(".msg-out")).to_have_count(1)
    finally:
        live.sandbox("DELETE", "/_sandbox/faults")


def test_the_indicator_turns_amber_with_the_reason_when_the_channel_needs_attention(signed_in, live):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

    page = signed_in
    live.customer_writes("Hello?", chatId=new_phone(), name="Amber Check")
    live.sandbox("PATCH", f"/_sandbox/channels/{DEFAULT_CHANNEL_ID}", json={"state": "qr"})
    try:
        open_chat(page, "Amber Check")
        dot = page.locator(".wz-dot")
        expect(dot).to_have_attribute("data-status", "degraded")
        expect(dot).to_have_class(re.compile(r"\bwz-dot-warn\b"))
        expect(dot).to_have_attribute("title", re.compile(r"Wazzup24 works with problems: .*No active WhatsApp channel"))
        expect(page.locator(".wz-status-text")).to_have_text("Wazzup24 works with problems")
    finally:
        live.sandbox("PATCH", f"/_sandbox/channels/{DEFAULT_CHANNEL_ID}", json={"state": "active"})


def test_the_indicator_is_checked_again_as_soon_as_a_send_is_refused_or_queued(signed_in, live):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

    page = signed_in
    live.customer_writes("Still open?", chatId=new_phone(), name="Recheck Indicator")
    dot = page.locator(".wz-dot")
    channel = f"/_sandbox/channels/{DEFAULT_CHANNEL_ID}"

    def a_send_while(break_wazzup, repair_wazzup, text, toast, attribute, value):
        open_chat(page, "Recheck Indicator")           # a fresh panel, whose check finds Wazzup working
        expect(dot).to_have_attribute("data-channel-state", "active")
        break_wazzup()
        try:
            reply(page, text)
            expect(page.locator(".toast").last).to_contain_text(toast)
            expect(dot).to_have_attribute(attribute, value, timeout=5000)   # not at the next check, in 30 s
            expect(dot).not_to_have_class(re.compile(r"\bwz-dot-ok\b"))
        finally:
            repair_wazzup()

    a_send_while(lambda: live.sandbox("PATCH", channel, json={"state": "disabled"}),
                 lambda: live.sandbox("PATCH", channel, json={"state": "active"}),
                 "Sent to a channel switched off", "switched off", "data-channel-state", "disabled")
    a_send_while(lambda: live.sandbox("POST", "/_sandbox/faults", json={"kind": "downtime", "seconds": 60,
                                                                        "mode": "503"}),
                 lambda: live.sandbox("DELETE", "/_sandbox/faults"),
                 "Sent while Wazzup is down", "Queued", "data-status", "error")


TELEGRAM_CHANNEL = "5c1d7a0e-7e57-4b1e-9a11-7e1e6a2a0001"


def with_a_telegram_channel(live):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

    live.sandbox("PATCH", "/_sandbox/config", json={"channels": [
        {"channelId": DEFAULT_CHANNEL_ID, "transport": "whatsapp", "state": "active"},
        {"channelId": TELEGRAM_CHANNEL, "transport": "tgapi", "plainId": "shop_bot", "state": "active"}]})


def only_the_whatsapp_channel(live):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

    live.sandbox("PATCH", "/_sandbox/config", json={"channels": [
        {"channelId": DEFAULT_CHANNEL_ID, "transport": "whatsapp", "state": "active"}]})


def test_a_telegram_chat_counts_against_telegrams_limit_and_shows_its_own_icon(signed_in, live):
    page = signed_in
    with_a_telegram_channel(live)
    try:
        live.customer_writes("Hi from WhatsApp", chatId=new_phone(), name="Wa Icon")
        live.customer_writes("Hi from Telegram", chatId=new_phone(), name="Tg Counter", chatType="telegram",
                             channelId=TELEGRAM_CHANNEL)
        expect(chat_item(page, "Tg Counter").locator("img")).to_have_attribute("src", re.compile(r"/telegram\.svg$"))
        expect(chat_item(page, "Tg Counter").locator("img")).to_have_attribute("alt", "Telegram (Wazzup24)")
        expect(chat_item(page, "Wa Icon").locator("img")).to_have_attribute("src", re.compile(r"/whatsapp\.svg$"))
        open_chat(page, "Tg Counter")
        expect(page.locator("#chat-icon")).to_have_attribute("src", re.compile(r"/telegram\.svg$"))
        box, counter = composer(page), page.locator(".wz-counter")
        send = page.get_by_role("button", name="Send", exact=True)
        box.fill("\U0001F600" * 4500)
        expect(counter).to_have_text("4,500 / 4,096")
        expect(counter).to_have_class(re.compile(r"\bwz-over\b"))
        expect(send).to_be_disabled()
        box.press("Enter")                         # Enter does not send it either
        box.fill("\U0001F600" * 4096)
        expect(counter).to_have_text("4,096 / 4,096")
        expect(send).to_be_enabled()
        expect(page.locator(".msg-out")).to_have_count(0)
        # Another chat's header shows its own icon again (the WhatsApp one).
        open_chat(page, "Wa Icon")
        expect(page.locator("#chat-icon")).to_have_attribute("src", re.compile(r"/whatsapp\.svg$"))
    finally:
        only_the_whatsapp_channel(live)


def test_a_chat_whose_channel_is_signed_out_shows_red_with_what_to_do_and_a_send_fails_at_once(signed_in, live):
    page = signed_in
    with_a_telegram_channel(live)
    try:
        live.customer_writes("Are you there?", chatId=new_phone(), name="Tg Signed Out", chatType="telegram",
                             channelId=TELEGRAM_CHANNEL)
        live.sandbox("PATCH", f"/_sandbox/channels/{TELEGRAM_CHANNEL}", json={"state": "unauthorized"})
        open_chat(page, "Tg Signed Out")
        dot = page.locator(".wz-dot")
        expect(dot).to_have_class(re.compile(r"\bwz-dot-bad\b"))
        expect(dot).to_have_attribute("data-channel-state", "unauthorized")
        expect(dot).to_have_attribute("title", re.compile(r"shop_bot is 'unauthorized' at Wazzup.*sign it in again"))
        expect(page.locator(".wz-status-text")).to_have_text("This chat's channel needs attention")
        reply(page, "Hello from the helpdesk")
        expect(page.locator(".toast-error")).to_contain_text("sign it in again")
        expect(bubble(page, "Hello from the helpdesk")).to_be_visible()
        expect(page.locator(".msg-out").get_by_role("button", name="Resend")).to_be_visible()
    finally:
        only_the_whatsapp_channel(live)


def test_an_open_chat_removed_from_the_helpdesk_is_closed_saying_so(signed_in, live):
    import sqlalchemy as sa

    from tests.ui.seed import add_chat, add_message, helpdesk_for

    helpdesk = helpdesk_for(live.database_url)
    title = "Started " + new_phone()
    chat_id = add_chat(helpdesk, type="internal", title=title, preview="about to move")
    add_message(helpdesk, chat_id, text="about to move")
    page = signed_in
    open_chat(page, title)
    expect(bubble(page, "about to move")).to_be_visible()
    with helpdesk.db.write() as tx:  # as a plugin removes a chat it merged into another
        _ = tx.change_seq
        tx.conn.execute(sa.delete(helpdesk.tables.chats).where(helpdesk.tables.chats.c.id == chat_id))
    helpdesk.db.engine.dispose()
    expect(page.locator(".toast").last).to_contain_text("This chat was removed")
    expect(page.locator("#chat-empty")).to_be_visible()
    expect(chat_item(page, title)).to_have_count(0)
