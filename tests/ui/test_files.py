"""Agents attach a file from their computer: the paperclip's "Attach a file", then Send uploads it and
sends it by its id; a text typed beside it goes as a second message (Wazzup takes a text or a file)."""

from __future__ import annotations

import re

import pytest

from tests.ui.conftest import WAIT_MS, screenshot
from tests.ui.test_browser import bubble, composer, new_phone, open_chat

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)

PDF = b"%PDF-1.4\n% a tiny invoice\n"


@pytest.fixture
def outbox_worker(live):
    """The outbox worker, as `serve` runs it: it sends the files (Wazzup downloads them from us)."""
    from tests.conftest import _stop_process

    proc = live.start_worker()
    yield proc
    _stop_process(proc)


def attach(page, name: str, data: bytes, mime: str) -> None:
    """As an agent does: the paperclip, "Attach a file…", then the file in the browser's file chooser."""
    page.get_by_role("button", name="Attach a file or a link").click()
    pick = page.get_by_role("button", name="Attach a file\u2026")
    expect(pick).to_be_focused()
    with page.expect_file_chooser() as chooser:
        pick.press("Enter")
    chooser.value.set_files({"name": name, "mimeType": mime, "buffer": data})


def file_row(page):
    return page.locator(".wz-file-row")


def sent_to_wazzup(live) -> list[dict]:
    return live.sandbox("GET", "/_sandbox/received")["messages"]


def test_an_agent_attaches_a_file_sends_it_and_sees_it_in_the_chat(signed_in, live, outbox_worker):
    page = signed_in
    live.customer_writes("Please send the invoice", chatId=new_phone(), name="Fiona File")
    open_chat(page, "Fiona File")
    page.get_by_label("File to attach").set_input_files({"name": "invoice 1042.pdf", "mimeType": "application/pdf",
                                                        "buffer": PDF})
    expect(file_row(page)).to_be_visible()
    expect(file_row(page).locator(".wz-file-name")).to_have_text("invoice 1042.pdf")
    expect(file_row(page).locator(".wz-file-size")).to_have_text("1 KB")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    screenshot(page, "file-attached")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator(".toast-info").last).to_contain_text("File queued: it goes out to Wazzup24 in a moment.")
    expect(file_row(page)).to_be_hidden()
    sent = page.locator(".msg-out[data-type='document']", has_text="invoice 1042.pdf")
    expect(sent).to_have_count(1)
    expect(sent).to_have_attribute("data-status", "accepted")  # the outbox worker sent it; the UI polled it in
    [received] = [m for m in sent_to_wazzup(live) if (m.get("contentUri") or "").endswith("/invoice%201042.pdf")]
    assert received["contentUri"].startswith(live.url + "/wazzup24/files/")
    # What Wazzup would download is the very file the agent picked.
    assert live.http.get(received["contentUri"], timeout=10).content == PDF


def test_a_file_and_a_text_go_as_two_messages_file_first(signed_in, live, outbox_worker):
    page = signed_in
    phone = new_phone()
    live.customer_writes("Do you have a photo?", chatId=phone, name="Tom Two")
    open_chat(page, "Tom Two")
    attach(page, "kettle.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048, "image/png")
    composer(page).fill("Here is the blue kettle.")
    composer(page).press("Enter")
    expect(bubble(page, "Here is the blue kettle.")).to_have_count(1)
    expect(file_row(page)).to_be_hidden()
    expect(composer(page)).to_have_value("")
    chat_id = live.chat_by_phone(phone)["id"]
    outgoing = [m for m in live.api(f"/api/chats/{chat_id}/messages", limit=50)["items"] if m["direction"] == "out"]
    assert [(m["type"], m["content_name"], m["text"]) for m in outgoing] == [
        ("image", "kettle.png", None), ("text", None, "Here is the blue kettle.")]
    assert len({m["wazzup_crm_message_id"] for m in outgoing}) == 2


def test_a_file_wazzup_cannot_send_is_refused_in_the_browser_before_any_upload(signed_in, live):
    page = signed_in
    live.customer_writes("Hello", chatId=new_phone(), name="Una Upload")
    open_chat(page, "Una Upload")
    uploads = []
    page.on("request", lambda request: uploads.append(request.url) if "/wazzup24/files" in request.url else None)
    attach(page, "page.html", b"<script>alert(1)</script>", "text/html")
    expect(page.locator(".toast-error").last).to_contain_text("cannot send .html files")
    expect(file_row(page)).to_be_hidden()
    attach(page, "huge.zip", b"0" * (10 * 1000 * 1000 + 1), "application/zip")
    expect(page.locator(".toast-error").last).to_contain_text("takes files up to 10 MB")
    assert uploads == []


def test_the_attached_file_can_be_removed_from_the_keyboard(signed_in, live):
    page = signed_in
    live.customer_writes("Hi", chatId=new_phone(), name="Rex Remove")
    open_chat(page, "Rex Remove")
    attach(page, "notes.txt", b"some notes", "text/plain")
    remove = page.get_by_role("button", name="Remove the attached file")
    remove.focus()
    remove.press("Enter")
    expect(file_row(page)).to_be_hidden()
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_disabled()


def test_an_image_pasted_into_the_text_box_is_attached(signed_in, live):
    page = signed_in
    live.customer_writes("Screenshot please", chatId=new_phone(), name="Paula Paste")
    open_chat(page, "Paula Paste")
    composer(page).evaluate("""box => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array([137, 80, 78, 71])], "image.png", {type: "image/png"}));
        box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
    }""")
    expect(file_row(page).locator(".wz-file-name")).to_have_text("image.png")


def test_a_file_dropped_on_the_panel_is_attached(signed_in, live):
    page = signed_in
    live.customer_writes("Drop it here", chatId=new_phone(), name="Dora Drop")
    open_chat(page, "Dora Drop")
    page.locator(".wz-panel").evaluate("""panel => {
        const data = new DataTransfer();
        data.items.add(new File(["%PDF-1.4"], "contract.pdf", {type: "application/pdf"}));
        panel.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true, cancelable: true}));
        panel.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""")
    expect(file_row(page).locator(".wz-file-name")).to_have_text("contract.pdf")


def test_a_photo_the_agent_sent_shows_as_a_picture_when_the_helpdesk_serves_it_over_http(signed_in, live,
                                                                                        outbox_worker):
    """Wazzup downloads a sent file from the helpdesk's public URL, which is the message's link: on a
    helpdesk served over http (the demo, a LAN), the page's own origin, so the picture is drawn."""
    page = signed_in
    photo = live.http.get(live.sandbox_url + "/_sandbox/media/photo.png", timeout=10).content
    live.customer_writes("Send me a photo of the parcel", chatId=new_phone(), name="Pavel Photo")
    open_chat(page, "Pavel Photo")
    page.get_by_label("File to attach").set_input_files({"name": "parcel.png", "mimeType": "image/png",
                                                        "buffer": photo})
    page.get_by_role("button", name="Send", exact=True).click()
    sent = page.locator(".msg-out[data-type='image']")
    expect(sent).to_have_attribute("data-status", "accepted")
    expect(sent.locator("img.msg-image")).to_have_attribute("src", re.compile(
        "^" + re.escape(live.url) + "/wazzup24/files/[^/]+/parcel.png$"))
    page.wait_for_function("() => document.querySelector('.msg-out img.msg-image').naturalWidth > 0",
                           timeout=WAIT_MS)


def test_a_customers_picture_linked_over_plain_http_elsewhere_stays_a_link(signed_in, live):
    """http from another origin would be mixed content on an https helpdesk: a link, never drawn."""
    page = signed_in
    live.sandbox("POST", "/_sandbox/customer-messages", json={
        "chatId": new_phone(), "name": "Hanna Http", "type": "image", "contentUri": "http://store.example/parcel.png",
        "wait": True})
    open_chat(page, "Hanna Http")
    bubble_ = page.locator(".msg-in[data-type='image']")
    expect(bubble_.locator("a.msg-document")).to_have_attribute("href", "http://store.example/parcel.png")
    expect(bubble_.locator("img")).to_have_count(0)
