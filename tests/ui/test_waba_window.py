"""WhatsApp Business in the agent UI: the 24-hour window under the status row, the text box closed
with the reason, and a template chosen, filled in with a live preview and sent from the picker.

A wapi channel is added to the session's sandbox for the test and removed afterwards; every wait is bounded.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import WABA_CHANNEL_ID
from tests.ui.conftest import WAIT_MS, screenshot
from tests.ui.test_browser import bubble, composer, new_phone, open_chat, only_the_whatsapp_channel

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def waba_channel(live):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID

    live.sandbox("PATCH", "/_sandbox/config", json={"channels": [
        {"channelId": DEFAULT_CHANNEL_ID, "transport": "whatsapp", "state": "active"},
        {"channelId": WABA_CHANNEL_ID, "transport": "wapi", "plainId": "79865784458", "state": "active"}]})
    live.api("/api/wazzup24/connection")   # the helpdesk reads the channel list: this channel is WhatsApp Business
    yield WABA_CHANNEL_ID
    only_the_whatsapp_channel(live)


def test_a_closed_window_disables_the_text_box_and_a_template_from_the_picker_reopens_the_chat(signed_in, live,
                                                                                               waba_channel):
    page = signed_in
    phone = new_phone()
    # Only the company wrote (from its phone): the customer never did, so the window is closed.
    live.customer_writes("Hello Nina, your order is ready for pickup.", chatId=phone, name="Nina Waba",
                         channelId=waba_channel, isEcho=True, authorName="Alice Agent")
    open_chat(page, "Nina Waba")
    line = page.locator(".wz-window")
    expect(line).to_have_text("The 24-hour window is closed: send a template")
    expect(line).to_have_class(re.compile(r"\bwz-window-closed\b"))
    expect(composer(page)).to_be_disabled()
    expect(composer(page)).to_have_attribute("placeholder", "Window closed: use Template")
    expect(page.get_by_role("button", name="Template")).to_be_focused()   # the disabled box cannot keep it
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_disabled()

    page.get_by_role("button", name="Template").click()
    choices = page.locator(".wz-template-choice")
    expect(choices).to_have_count(1)                      # the rejected template is not offered
    expect(choices.first).to_contain_text("Order update")
    expect(choices.first).to_contain_text("Hello {{1}}! Your order {{2}} is on its way.")
    choices.first.click()
    values = page.locator(".wz-template-value")
    expect(values).to_have_count(2)
    preview = page.locator(".wz-template-preview")
    go = page.get_by_role("button", name="Send template")
    expect(go).to_be_disabled()
    values.nth(0).fill("Nina")
    expect(preview).to_contain_text("Hello Nina! Your order {{2}} is on its way.")
    values.nth(1).fill("<b>#1077</b>")
    expect(preview).to_have_text("Hello Nina! Your order <b>#1077</b> is on its way. Reply here with any questions.")
    values.nth(0).fill("*Nina*")     # drawn as the customer's WhatsApp draws it; the text stays as written
    expect(preview.locator("strong.wz-fmt-bold")).to_have_text("*Nina*")
    expect(preview.locator("b")).to_have_count(0)          # a value's "<b>" stays text, never markup
    values.nth(0).fill("Nina")
    screenshot(page, "waba-template-picker")
    go.click()

    sent = bubble(page, "Your order <b>#1077</b> is on its way")
    expect(sent).to_have_count(1)
    expect(sent).to_have_attribute("data-status", "accepted")
    expect(page.locator(".wz-templates")).to_be_hidden()
    expect(page.get_by_role("button", name="Template")).to_be_focused()
    chat_id = live.chat_by_phone(phone)["id"]
    message = live.message(chat_id, int(sent.get_attribute("data-message-id")))
    at_wazzup = live.sandbox("GET", "/_sandbox/received",
                             params={"crmMessageId": message["wazzup_crm_message_id"]})["messages"]
    assert [(m["templateId"], m["templateValues"]) for m in at_wazzup] == \
        [("6201005a-9a6f-486f-bdd5-e6cb86c76ddb", ["Nina", "<b>#1077</b>"])]

    # The customer answers: the window opens for 24 hours and the text box with it.
    live.customer_writes("Thanks, I'll come today", chatId=phone, channelId=waba_channel)
    # the time as the bubbles write it, in the browser's locale
    bubble_time = page.evaluate("() => new Date(2026, 0, 1, 16, 36).toLocaleTimeString([], "
                                "{hour: '2-digit', minute: '2-digit'})")
    clock = r"\d\d:\d\d [AP]M" if bubble_time.endswith("PM") else r"\d\d:\d\d"
    expect(line).to_have_text(re.compile(rf"^Window open for 2[34] h \d+ min \(until {clock} tomorrow\)$"))
    expect(composer(page)).to_be_enabled()
    assert not page.page_errors
