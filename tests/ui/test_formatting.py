"""A chat type's text format (registerTextFormat) in message bubbles."""

from __future__ import annotations

import pytest

from tests.ui.conftest import WAIT_MS
from tests.ui.test_browser import bubble, new_phone, open_chat

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

expect = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright").expect
expect.set_options(timeout=WAIT_MS)


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
