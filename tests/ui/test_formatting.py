"""WhatsApp's formatting in message bubbles: *bold*, _italic_, ~strikethrough~, ```monospace```,
`inline code`, "> " quotes, "- "/"* " bullets and "1. " numbered lines, drawn as WhatsApp draws them,
while the text stays what the customer wrote: stored and sent as is, copied with its markers. One-line
previews (the chat list, a reply's quote, the reply bar) show the same text plain, its markers left out.
"""

from __future__ import annotations

import pytest

from tests.ui.conftest import WAIT_MS, screenshot, sign_in
from tests.ui.test_browser import bubble, chat_item, new_phone, open_chat, reply

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)

# A bubble's text as its elements draw it: <strong>…</strong> for what is bold, hidden markers left out,
# [quote] … for a line drawn as a quote.
_SHAPE = """text => {
  const p = [...document.querySelectorAll('.msg-text')].find(n => n.textContent === text);
  if (!p) return null;
  const shape = node => [...node.childNodes].map(c => {
    if (c.nodeType === Node.TEXT_NODE) return c.textContent;
    if (c.classList.contains('wz-fmt-mark')) return '';
    const line = [...c.classList].find(k => /^wz-fmt-(quote|bullet|numbered)$/.test(k));
    if (line) return '[' + line.slice(7) + ']' + shape(c);
    const tag = c.tagName.toLowerCase();
    return '<' + tag + '>' + shape(c) + '</' + tag + '>';
  }).join('');
  return shape(p);
}"""


def shape(page, text: str) -> str:
    expect(bubble(page, text.splitlines()[0]).first).to_be_visible()
    return page.evaluate(_SHAPE, text)


FORMATTED = {
    "*Order 1234* is ready": "<strong>Order 1234</strong> is ready",
    "It is _really_ late": "It is <em>really</em> late",
    "Price ~100~ 80 EUR": "Price <s>100</s> 80 EUR",
    "Run ```pip install *x*``` now": "Run <code>pip install *x*</code> now",
    "Use `git status` first": "Use <code>git status</code> first",
    "*bold _and italic_*": "<strong>bold <em>and italic</em></strong>",
    "(*in brackets*), fine.": "(<strong>in brackets</strong>), fine.",
    "> what you asked\nmy answer": "[quote]what you asked\nmy answer",
    "Bring:\n- a pen\n* a *big* cup\n1. first\n2. second": (
        "Bring:\n[bullet]a pen\n[bullet]a <strong>big</strong> cup\n[numbered]1. first\n[numbered]2. second"),
    "```line one\n*line* two```": "<code>line one\n*line* two</code>",
}

AS_WRITTEN = [
    "so * not bold * here",
    "_ not italic_",
    "2*3*4 is 24",
    "call snake_case_names here",
    "see https://shop.example/_sale_/a_b_c for it",
    "**",
    "a ~~ b",
    "open *but never closed",
    "mid*word* too",
]


def test_whatsapp_markers_are_drawn_as_whatsapp_draws_them(signed_in, live):
    page = signed_in
    phone = new_phone()
    for text in FORMATTED:
        live.customer_writes(text, chatId=phone, name="Fiona Format")
    open_chat(page, "Fiona Format")
    assert {text: shape(page, text) for text in FORMATTED} == FORMATTED
    screenshot(page, "whatsapp-formatting")


def test_markers_that_do_not_hug_text_or_sit_in_words_or_links_stay_as_written(signed_in, live):
    page = signed_in
    phone = new_phone()
    for text in AS_WRITTEN:
        live.customer_writes(text, chatId=phone, name="Nora Nomatch")
    open_chat(page, "Nora Nomatch")
    drawn = {text: shape(page, text) for text in AS_WRITTEN}
    link = "see <a>https://shop.example/_sale_/a_b_c</a> for it"
    assert drawn == {text: (link if text.startswith("see ") else text) for text in AS_WRITTEN}


def test_a_link_in_bold_text_stays_a_working_link(signed_in, live):
    page = signed_in
    phone = new_phone()
    text = "*Track it: https://post.example/t?id=7*"
    live.customer_writes(text, chatId=phone, name="Lena Link")
    open_chat(page, "Lena Link")
    assert shape(page, text) == "<strong>Track it: <a>https://post.example/t?id=7</a></strong>"
    link = bubble(page, "Track it").locator("strong a")
    expect(link).to_have_attribute("href", "https://post.example/t?id=7")
    expect(link).to_have_attribute("target", "_blank")


def test_a_formatted_bubble_copies_as_written_and_the_agents_text_is_stored_and_sent_as_written(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Hello", chatId=phone, name="Carl Copy")
    open_chat(page, "Carl Copy")
    written = "*Done*: your _refund_ is ~pending~ sent\n> see `ticket 12`"
    reply(page, written)
    sent = bubble(page, "your")
    expect(sent.locator("strong")).to_have_text("*Done*")      # drawn bold; the markers are in the text, hidden
    expect(sent.locator("strong .wz-fmt-mark").first).to_have_css("font-size", "0px")
    copied = page.evaluate("""() => {
        const p = [...document.querySelectorAll('.msg-text')].find(n => n.textContent.startsWith('*Done*'));
        const range = document.createRange();
        range.selectNodeContents(p);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        return getSelection().toString();
    }""")
    assert copied == written
    chat_id = live.chat_by_phone(phone)["id"]
    assert live.message(chat_id, int(sent.get_attribute("data-message-id")))["text"] == written
    received = live.sandbox("GET", "/_sandbox/received")["messages"]
    assert len([m for m in received if m.get("text") == written]) == 1


def test_markup_like_text_in_a_formatted_message_stays_inert_text(signed_in, live):
    page = signed_in
    phone = new_phone()
    text = '*<script>window.pwned = 1</script>* _<img src=x onerror="window.pwned = 2">_'
    live.customer_writes(text, chatId=phone, name="Ivy Inert")
    open_chat(page, "Ivy Inert")
    assert shape(page, text) == ('<strong><script>window.pwned = 1</script></strong> '
                                 '<em><img src=x onerror="window.pwned = 2"></em>')
    shown = bubble(page, "window.pwned = 1")
    expect(shown.locator("script, img")).to_have_count(0)
    assert page.evaluate("() => window.pwned") is None


def test_a_text_format_that_changes_the_text_is_not_used_and_the_text_shows_as_written(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("*keep every star*", chatId=phone, name="Gus Guard")
    # A formatter that drops the markers instead of keeping them: the page draws the text as written.
    page.evaluate("""() => window.helpdesk.registerTextFormat('wazzup', (text) => {
        const b = document.createElement('b');
        b.textContent = text.replaceAll('*', '');
        return b;
    })""")
    open_chat(page, "Gus Guard")
    shown = bubble(page, "keep every star").locator(".msg-text")
    expect(shown).to_have_text("*keep every star*")
    expect(shown.locator("b")).to_have_count(0)


# A chat list's preview: the customer's last text, markers left out by the same rules as in the bubble.
PLAIN_PREVIEWS = {
    "*Order* _42_ is ~late~": "Order 42 is late",
    "> see `ticket 12`, ```now```": "see ticket 12, now",
    "2*3*4 is 24": "2*3*4 is 24",
    "a lone * stays": "a lone * stays",
    "open *but never closed": "open *but never closed",
    "see https://shop.example/_sale_/a_b_c": "see https://shop.example/_sale_/a_b_c",
}


def test_the_chat_list_previews_a_formatted_message_as_plain_text_and_keeps_stars_that_are_no_markers(
        signed_in, live):
    page = signed_in
    phones = {text: new_phone() for text in PLAIN_PREVIEWS}
    for i, (text, phone) in enumerate(phones.items()):
        live.customer_writes(text, chatId=phone, name=f"Paul Preview {chr(65 + i)}")
    for i, (text, shown) in enumerate(PLAIN_PREVIEWS.items()):
        preview = chat_item(page, f"Paul Preview {chr(65 + i)}").locator(".chat-item-preview")
        expect(preview).to_have_text(shown)
        # Plain on the page only: the API's preview, like the message, is what the customer wrote.
        assert live.chat_by_phone(phones[text])["last_message_preview"] == text
    open_chat(page, "Paul Preview A")
    expect(bubble(page, "Order").locator(".msg-text")).to_have_text("*Order* _42_ is ~late~")


def test_a_reply_quotes_a_formatted_message_as_plain_text_and_so_does_the_reply_bar(signed_in, live):
    page = signed_in
    phone = new_phone()
    formatted = live.customer_writes("*Order* _42_ is ~late~\n> your question\n- call me", chatId=phone,
                                     name="Quentin Plain")
    stars = live.customer_writes("2*3*4 is * 24", chatId=phone)
    live.customer_writes("Any news?", chatId=phone, quotedMessage={"messageId": formatted["messageId"]})
    live.customer_writes("Is that right?", chatId=phone, quotedMessage={"messageId": stars["messageId"]})
    open_chat(page, "Quentin Plain")
    # Each line's "> " and "- " count (the quote is made plain from the whole text, then put on one line).
    plain = "Order 42 is late your question call me"
    expect(bubble(page, "Any news?").locator(".wz-quote-text")).to_have_text(plain)
    expect(bubble(page, "Is that right?").locator(".wz-quote-text")).to_have_text("2*3*4 is * 24")
    # The message itself, not the replies whose quotes say "is late" too.
    original = page.locator(".msg", has=page.locator(".msg-text", has_text="is ~late~"))
    original.get_by_role("button", name="Reply").click()
    expect(page.locator(".wz-reply")).to_contain_text("Replying to: " + plain)


def test_a_plain_text_function_is_used_for_previews_only_while_it_leaves_characters_out(signed_in, live):
    page = signed_in
    phone = new_phone()
    live.customer_writes("first", chatId=phone, name="Hugo Hashes")
    preview = chat_item(page, "Hugo Hashes").locator(".chat-item-preview")
    expect(preview).to_have_text("first")
    # Another messenger's markup (#...#), registered through the host's contract.
    page.evaluate("""() => window.helpdesk.registerTextFormat('wazzup', () => null,
        (text) => text.replaceAll('#', ''))""")
    live.customer_writes("#tagged# text", chatId=phone)
    expect(preview).to_have_text("tagged text")
    # One that writes what the customer did not is not used: the preview is the text as written.
    page.evaluate("""() => window.helpdesk.registerTextFormat('wazzup', () => null,
        (text) => text.toUpperCase())""")
    live.customer_writes("#second# text", chatId=phone)
    expect(preview).to_have_text("#second# text")


def test_without_the_plugin_the_host_shows_previews_and_bubbles_as_written(browser_page, live):
    # Guards against doing too much: the host itself knows no messenger's markup (passes without the change).
    page = browser_page
    page.route("**/static/plugins/wazzup24/wazzup24.js*", lambda route: route.abort())
    sign_in(page, live.url)
    live.customer_writes("*Order* _7_ is ~late~", chatId=new_phone(), name="Otto Noplugin")
    preview = chat_item(page, "Otto Noplugin").locator(".chat-item-preview")
    expect(preview).to_have_text("*Order* _7_ is ~late~")
    open_chat(page, "Otto Noplugin")
    expect(bubble(page, "Order").locator(".msg-text")).to_have_text("*Order* _7_ is ~late~")
    expect(bubble(page, "Order").locator("strong")).to_have_count(0)


def test_a_previews_file_name_after_the_servers_label_keeps_its_underscores(signed_in, live):
    from wazzup_plugin.sandbox.media import store_url

    page = signed_in
    phone = new_phone()
    live.sandbox("POST", "/_sandbox/customer-messages", json={
        "contentUri": store_url(live.sandbox_url, "_draft_ v2.pdf"), "type": "document", "chatId": phone,
        "name": "Dan Document", "wait": True})

    expect(chat_item(page, "Dan Document").locator(".chat-item-preview")).to_have_text("[Document] _draft_ v2.pdf")
    assert page.page_errors == []
