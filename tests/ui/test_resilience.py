"""The agent UI when things go wrong: a session that ends, a lost connection, a burst of changes,
a refusal, a proxy's error page, and text that is not plain left-to-right English.

Faults the stack cannot produce on its own (an outage, a proxy's HTML 502) are made in the browser
with Playwright's ``page.route``, as a network or a reverse proxy would. Every wait is bounded.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.ui.conftest import AGENT, PASSWORD, WAIT_MS, screenshot, sign_in
from tests.ui.test_browser import bubble, chat_item, composer, new_phone, open_chat, reply

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)

OFFLINE = "Offline \u2014 reconnecting\u2026"
# One turn of the page's task queue, on a channel Playwright's clock does not fake: a failed poll's
# answer arrives as a task, and its next timer is set once that task has run.
SETTLE = ("() => new Promise(resolve => { const c = new MessageChannel(); "
          "c.port1.onmessage = () => resolve(); c.port2.postMessage(0); })")
DRAFTS = "() => Object.keys(sessionStorage).filter(k => k.startsWith('helpdesk.draft.'))"


def sign_in_again(page):
    """The sign-in form the page shows itself (no reload: the page keeps what it knows)."""
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.get_by_label("Name", exact=True).fill(AGENT)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app-view")).to_be_visible()


def no_conversation_shown(page):
    """The chat pane as if no chat was ever opened (checked by its state: behind the sign-in form
    the whole app is hidden, so visibility alone would prove nothing)."""
    assert page.locator("#chat-box").evaluate("n => n.hidden") is True
    assert page.locator("#chat-empty").evaluate("n => n.hidden") is False
    expect(page.locator("#message-list > *")).to_have_count(0)
    expect(page.locator("#chat-title")).to_have_text("")
    expect(composer(page)).to_have_count(0)


def seeded_chat(live, title: str) -> tuple[object, int]:
    from tests.ui.seed import add_chat, add_message, helpdesk_for

    helpdesk = helpdesk_for(live.database_url)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    chat = add_chat(helpdesk, title=title, phone=new_phone(), at=start)
    add_message(helpdesk, chat, text="Before the burst", at=start)
    return helpdesk, chat


# ------------------------------------------------------------------ 1: the session ends, the agent signs out

def test_a_session_that_ends_mid_reply_clears_the_pane_then_reopens_the_chat_with_the_draft(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Where is my parcel?", chatId=phone, name="Dora Draft")
    open_chat(page, "Dora Draft")
    composer(page).fill("We shipped it on Monday, the tracking number is")
    page.context.clear_cookies()                   # the session expired: the next poll answers 401
    expect(page.locator("#login-message")).to_contain_text("sign in again")
    no_conversation_shown(page)                    # no frozen chat left behind the form

    sign_in_again(page)
    expect(page.locator("#chat-title")).to_have_text("Dora Draft")        # back where the agent was
    expect(composer(page)).to_have_value("We shipped it on Monday, the tracking number is")
    expect(chat_item(page, "Dora Draft")).to_have_class(re.compile(r"\bactive\b"))
    live.customer_writes("Hello? Anyone?", chatId=phone)
    expect(bubble(page, "Hello? Anyone?")).to_be_visible()               # the open chat is live again
    composer(page).press("End")
    composer(page).type(" RU555.")
    composer(page).press("Enter")
    expect(bubble(page, "the tracking number is RU555.")).to_be_visible()
    expect(composer(page)).to_have_value("")
    assert page.evaluate(DRAFTS) == []             # sent: the draft is gone


def test_a_draft_stays_with_its_chat_when_the_agent_switches_chats(signed_in, live):
    page = signed_in
    live.customer_writes("First question", chatId=new_phone(), name="Fiona First")
    live.customer_writes("Second question", chatId=new_phone(), name="Sam Second")
    open_chat(page, "Fiona First")
    composer(page).fill("Half an answer for Fiona")
    open_chat(page, "Sam Second")
    expect(composer(page)).to_have_value("")
    open_chat(page, "Fiona First")
    expect(composer(page)).to_have_value("Half an answer for Fiona")


def test_signing_out_leaves_neither_the_conversation_nor_the_draft_for_the_next_person(signed_in, live):
    page = signed_in
    live.customer_writes("My card number is private", chatId=new_phone(), name="Priya Private")
    open_chat(page, "Priya Private")
    composer(page).fill("Your card ending 4242 was")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#login-message")).to_have_text("You have signed out.")
    no_conversation_shown(page)
    expect(page.locator(".chat-item")).to_have_count(0)
    assert page.evaluate(DRAFTS) == []

    sign_in_again(page)
    expect(chat_item(page, "Priya Private")).to_be_visible()
    no_conversation_shown(page)                    # nothing reopened for whoever signs in next
    open_chat(page, "Priya Private")
    expect(composer(page)).to_have_value("")


# ------------------------------------------------------------------ 2: more changes than one poll takes

def test_a_burst_larger_than_one_poll_shows_every_message_without_a_gap(signed_in, live):
    from tests.ui.seed import add_message

    helpdesk, chat = seeded_chat(live, "Burst Chat")
    page = signed_in
    page.get_by_label("Search chats by name or phone").fill("Burst Chat")
    open_chat(page, "Burst Chat")
    expect(bubble(page, "Before the burst")).to_be_visible()

    # Pages of 2 instead of 200: one poll then takes 10 changes, not 1,000 (the same rule, smaller).
    blocked = {"on": True}

    def changes(route):
        url = route.request.url
        if "changed_since=" not in url:
            return route.continue_()
        if blocked["on"]:
            return route.abort()                   # the network is away while the burst comes in
        return route.continue_(url=re.sub(r"\blimit=\d+", "limit=2", url))

    page.route(re.compile(rf"/api/chats/{chat}/messages\?"), changes)
    try:
        burst = [add_message(helpdesk, chat, text=f"Burst {i:02d}") for i in range(25)]
        helpdesk.db.engine.dispose()
        blocked["on"] = False
        shown = page.locator(".msg", has_text=re.compile(r"Burst \d\d"))
        expect(shown).to_have_count(25)             # three polls' worth, none skipped
        ids = [int(i) for i in page.locator(".msg").evaluate_all("els => els.map(e => e.dataset.messageId)")]
        assert ids[-25:] == burst
        expect(page.locator(".msg").last).to_contain_text("Burst 24")
    finally:
        page.unroute(re.compile(rf"/api/chats/{chat}/messages\?"))
        helpdesk.db.engine.dispose()


# ------------------------------------------------------------------ 3: a refusal that was stored

def test_a_refused_send_that_was_stored_clears_the_composer_and_offers_no_resend_that_would_fail_again(
        signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Write to me", chatId=phone, name="Ivan Resend")
    live.sandbox("PATCH", "/_sandbox/config", json={"bad_contacts": [phone], "bad_contact_mode": "reject"})
    try:
        open_chat(page, "Ivan Resend")
        reply(page, "Your refund is approved")
        toast = page.locator(".toast-error")
        expect(toast).to_contain_text(re.compile(r"Not delivered: .+ \(BAD_CONTACT\)"))
        expect(toast).not_to_contain_text("Resend")   # the number is not on WhatsApp: it would fail again
        expect(composer(page)).to_have_value("")   # one more Enter must not send a second copy
        assert page.evaluate(DRAFTS) == []
        failed = bubble(page, "Your refund is approved")
        expect(failed).to_have_attribute("data-status", "failed")
        expect(failed.locator(".msg-error")).to_contain_text(re.compile(r"Not delivered: \w+"))
        expect(failed.get_by_role("button", name="Resend")).to_have_count(0)
        composer(page).press("Enter")
        expect(page.get_by_role("button", name="Send", exact=True)).to_be_disabled()
        expect(page.locator(".msg-out")).to_have_count(1)
    finally:
        live.sandbox("PATCH", "/_sandbox/config", json={"bad_contacts": [], "bad_contact_mode": "webhook"})


def test_a_plain_refusal_of_the_message_by_wazzup_offers_no_resend(signed_in, live):
    page = signed_in
    live.customer_writes("Hello", chatId=new_phone(), name="Hana Http")
    open_chat(page, "Hana Http")
    live.sandbox("POST", "/_sandbox/faults", json={"kind": "fail", "status": 400, "path": "/v3/message", "count": 1})
    try:
        reply(page, "Refused for no stated reason")
        toast = page.locator(".toast-error")
        expect(toast).to_contain_text("Not delivered")
        expect(toast).not_to_contain_text("Resend")
        failed = bubble(page, "Refused for no stated reason")
        expect(failed).to_have_attribute("data-status", "failed")
        expect(failed.get_by_role("button", name="Resend")).to_have_count(0)
    finally:
        live.sandbox("DELETE", "/_sandbox/faults")


# ------------------------------------------------------------------ 4: the connection is lost

def test_a_lost_connection_shows_an_offline_bar_until_polling_gets_through_again(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Are you there?", chatId=phone, name="Otto Offline")
    open_chat(page, "Otto Offline")
    bar = page.locator("#offline-bar")
    expect(bar).to_have_attribute("role", "status")   # a live region that is always there, empty
    expect(bar).to_have_attribute("aria-live", "polite")
    expect(bar).to_be_hidden()
    page.route("**/api/**", lambda route: route.abort())     # the network is gone
    try:
        expect(page.get_by_role("status")).to_have_text(OFFLINE)
        expect(bar).to_be_visible()
        screenshot(page, "chat-offline-desktop")
        live.customer_writes("Written while you were offline", chatId=phone)
    finally:
        page.unroute("**/api/**")
    expect(bar).to_be_hidden()
    expect(bar).to_have_text("")
    expect(bubble(page, "Written while you were offline")).to_be_visible()


def test_while_the_helpdesk_is_unreachable_the_indicator_does_not_say_connected(signed_in, live):
    page = signed_in
    live.customer_writes("Hello from afar", chatId=new_phone(), name="Ula Unreachable")
    open_chat(page, "Ula Unreachable")
    dot, status = page.locator(".wz-dot"), page.locator(".wz-status-text")
    expect(dot).to_have_attribute("data-status", re.compile(r"^(ok|degraded)$"))   # other tests' channels vary
    before = status.text_content()
    page.route("**/api/**", lambda route: route.abort())
    try:
        expect(page.get_by_role("status")).to_have_text(OFFLINE)
        expect(dot).not_to_have_class(re.compile(r"\bwz-dot-ok\b"))
        expect(status).to_have_text("Wazzup24 status unknown")
        expect(dot).to_have_attribute("title", re.compile("the helpdesk cannot be reached"))
    finally:
        page.unroute("**/api/**")
    expect(page.locator("#offline-bar")).to_be_hidden()
    expect(status).to_have_text(before)   # asked again at once, not in 30 s


def test_polling_backs_off_while_the_helpdesk_is_unreachable_and_resumes_when_the_browser_is_online(
        browser_page, live):
    # The page's timers run on Playwright's clock, paused, so that a minute passes in steps and every
    # poll is counted: without the back-off a page polls every 2 s, 30 times a minute.
    page = browser_page
    page.clock.install()
    sign_in(page, live.url)
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    polls = []

    def unreachable(route):
        if re.search(r"/api/chats\?.*changed_since", route.request.url):
            polls.append(route.request.url)    # the list's changes: one request per poll
        route.abort()

    page.route("**/api/**", unreachable)
    try:
        for _ in range(120):                   # 60 s in steps of 0.5 s
            page.clock.run_for(500)
            page.evaluate(SETTLE)
        expect(page.get_by_role("status")).to_have_text(OFFLINE)
        # 2 s, 2 s, 4 s, 8 s, 16 s, then every 30 s: six polls in the minute, a step's slack either way.
        assert 4 <= len(polls) <= 7, polls
    finally:
        page.unroute("**/api/**")
    page.evaluate("() => window.dispatchEvent(new Event('online'))")   # no clock step: polls at once
    expect(page.locator("#offline-bar")).to_be_hidden()


# ------------------------------------------------------------------ 5: a proxy's HTML error page

def test_an_html_error_page_from_a_proxy_is_not_shown_nor_blamed_on_wazzup(signed_in, live):
    page = signed_in
    live.customer_writes("Hi", chatId=new_phone(), name="Pat Proxy")
    open_chat(page, "Pat Proxy")
    html = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
            "</center><hr><center>nginx/1.24.0</center></body></html>")
    page.route("**/wazzup24/send", lambda route: route.fulfill(status=502, content_type="text/html", body=html))
    try:
        reply(page, "Through a broken proxy")
        toast = page.locator(".toast-error")
        expect(toast).to_contain_text("Not sent: The server answered 502")
        expect(toast).not_to_contain_text("<")
        expect(toast).not_to_contain_text("nginx")
        expect(toast).not_to_contain_text("Wazzup24 refused")
        expect(composer(page)).to_have_value("Through a broken proxy")   # nothing was stored: kept
    finally:
        page.unroute("**/wazzup24/send")


def test_a_text_not_sent_comes_back_to_the_box_before_what_was_typed_while_it_was_on_its_way(signed_in, live):
    page = signed_in
    live.customer_writes("Hi", chatId=new_phone(), name="Pia Pending")
    open_chat(page, "Pia Pending")
    held = []   # the send's request, answered once the agent typed on (as by a slow proxy)
    page.route("**/wazzup24/send", lambda route: held.append(route))
    try:
        box = composer(page)
        reply(page, "Your order left the warehouse")
        expect(box).to_have_value("")
        box.type("Tracking: RU555")
        for _ in range(300):
            if held:
                break
            page.wait_for_timeout(50)
        held[0].fulfill(status=502, content_type="text/html", body="<html>502 Bad Gateway</html>")
        expect(page.locator(".toast-error")).to_contain_text("Not sent")
        expect(box).to_have_value("Your order left the warehouse\nTracking: RU555")
        assert page.evaluate(DRAFTS + ".map(k => sessionStorage.getItem(k))") == [
            "Your order left the warehouse\nTracking: RU555"]
    finally:
        page.unroute("**/wazzup24/send")
    box.press("Enter")
    expect(bubble(page, "Tracking: RU555")).to_have_attribute("data-status", "accepted")
    expect(box).to_have_value("")


# ------------------------------------------------------------------ 6: right-to-left text

def test_right_to_left_text_is_laid_out_right_to_left(signed_in, live):
    page = signed_in
    arabic, name = "\u0645\u0631\u062d\u0628\u0627\u060c \u0647\u0644 \u0637\u0644\u0628\u064a \u062c\u0627\u0647\u0632!", \
        "\u0633\u0627\u0631\u0629 \u0623\u062d\u0645\u062f"
    phone = new_phone()
    live.customer_writes(arabic, chatId=phone, name=name)
    item = chat_item(page, name)
    direction = "node => getComputedStyle(node).direction"
    expect(item.locator(".chat-item-preview")).to_have_text(arabic)
    assert item.locator(".chat-item-title").evaluate(direction) == "rtl"
    assert item.locator(".chat-item-preview").evaluate(direction) == "rtl"
    open_chat(page, name)
    assert page.locator("#chat-title").evaluate(direction) == "rtl"
    assert bubble(page, arabic).locator(".msg-text").evaluate(direction) == "rtl"
    live.customer_writes("Plain English", chatId=phone)
    assert bubble(page, "Plain English").locator(".msg-text").evaluate(direction) == "ltr"
    box = composer(page)
    expect(box).to_have_attribute("dir", "auto")
    box.fill("\u0634\u0643\u0631\u0627!")
    assert box.evaluate(direction) == "rtl"
    screenshot(page, "chat-rtl-desktop")


# ------------------------------------------------------------------ 8: a file link the server refuses

def test_a_refused_file_link_says_which_field_and_why_and_the_hint_matches_the_rule(signed_in, live):
    page = signed_in
    live.customer_writes("Send me the invoice", chatId=new_phone(), name="Lena Link")
    open_chat(page, "Lena Link")
    page.get_by_role("button", name="Attach a file or a link").click()   # the paperclip's menu
    page.get_by_role("button", name="Send a file by its link").click()
    link = page.get_by_label(re.compile(r"^Link to the file to send"))
    link.fill("https://exa mple.com/a b.pdf")
    link.press("Enter")
    expect(page.locator(".toast-error").last).to_have_text(re.compile(
        r"^Not sent: The request body is not valid \(file link: must be an http\(s\) URL\)\."))
    link.fill("ftp://example.com/invoice.pdf")
    link.press("Enter")
    expect(page.locator(".toast-error").last).to_contain_text("must start with http:// or https://")
    expect(link).to_have_accessible_name("Link to the file to send (http:// or https://)")
    link.fill(live.sandbox_url + "/_sandbox/media/invoice.pdf")          # http://, as the hint says
    link.press("Enter")
    expect(page.locator(".msg-out[data-type='document']")).to_have_attribute("data-status", "accepted")


# ------------------------------------------------------------------ 9: blank by the server's rule

def test_a_text_the_server_counts_as_blank_cannot_be_sent(signed_in, live):
    from wazzup_plugin.outbound.send import _BLANK

    page = signed_in
    live.customer_writes("Say something", chatId=new_phone(), name="Bea Blank")
    open_chat(page, "Bea Blank")
    box, send = composer(page), page.get_by_role("button", name="Send", exact=True)
    for blank in ["\x85", "\x1c\x1d\x1e\x1f", _BLANK, *_BLANK]:
        box.fill(blank)
        expect(send).to_be_disabled()
    box.press("Enter")
    box.fill("\x85ok\x1f")                          # blank around a word is fine
    expect(send).to_be_enabled()
    box.fill("\x1c")
    box.press("Enter")
    expect(page.locator(".msg-out")).to_have_count(0)
    expect(page.locator(".toast-error")).to_have_count(0)
