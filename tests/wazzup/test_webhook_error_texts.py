"""An `error` status from the webhook keeps Wazzup's code and explains it in our words when we know
the code (reference §5.2); Wazzup's own description stays the fallback."""

import pytest

from wazzup_plugin.sandbox.deliveries import delivery, status_update

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"


@pytest.fixture
def sent(deliver, payload, wazzup_rows, outgoing_send):
    """An agent's message Wazzup accepted, in a chat the customer started."""
    deliver(payload("incoming_text"))
    send = outgoing_send(wazzup_rows.chats()[0]["id"])
    send.settle(WAZZUP_ID)
    return send


def fail_with(deliver, code, description="what Wazzup says"):
    deliver(delivery(statuses=[status_update(message_id=WAZZUP_ID, status="error",
                                             error={"error": code, "description": description})]))


def test_a_closed_24_hour_window_says_to_send_a_template(deliver, payload, wazzup_rows, sent):
    deliver(payload("statuses_24_hours_exceeded"))
    message = wazzup_rows.message(WAZZUP_ID)
    assert (message["status"], message["error_code"]) == ("failed", "24_HOURS_EXCEEDED")
    assert message["error_text"] == ("The WhatsApp Business 24-hour window is closed: the customer last wrote more "
                                      "than 24 hours ago. Send a template to reopen the conversation.")


@pytest.mark.parametrize("code, words", [
    ("7_DAYS_EXCEEDED", "Instagram 7-day window is closed"),
    ("TOO_BIG_CONTENT", "larger than the messenger accepts"),
    ("BAD_LINK", "refused a link"),
    ("SPAM", "as spam"),
    ("TOO_LONG_TEXT", "longer than the messenger accepts"),
    ("CHATID_IGSID_MISMATCH", "Instagram account"),
    ("24HoursExceeded", "24-hour window is closed"),  # codes compare case- and underscore-insensitively
])
def test_webhook_error_codes_get_a_human_text(deliver, wazzup_rows, sent, code, words):
    fail_with(deliver, code)
    message = wazzup_rows.message(WAZZUP_ID)
    assert message["error_code"] == code
    assert words in message["error_text"]


def test_an_unknown_code_keeps_wazzups_description_and_a_known_one_gets_ours(deliver, wazzup_rows, sent,
                                                                            outgoing_send):
    fail_with(deliver, "SOMETHING_NEW", "A reason Wazzup gives")
    other = outgoing_send(wazzup_rows.chats()[0]["id"])
    other.settle("WZ-2")
    deliver(delivery(statuses=[status_update(message_id="WZ-2", status="error",
                                             error={"error": "TOO_BIG_CONTENT", "description": "File is too big"})]))
    assert (wazzup_rows.message(WAZZUP_ID)["error_code"], wazzup_rows.message(WAZZUP_ID)["error_text"]) == \
        ("SOMETHING_NEW", "A reason Wazzup gives")
    assert wazzup_rows.message("WZ-2")["error_text"] == "The file is larger than the messenger accepts (50 MB)."


def test_a_message_sent_from_the_phone_that_failed_is_explained_in_our_words_too(deliver, wazzup_rows):
    from wazzup_plugin.sandbox.config import DEFAULT_CHANNEL_ID
    from wazzup_plugin.sandbox.deliveries import incoming_message

    echo = incoming_message(channel_id=DEFAULT_CHANNEL_ID, chat_id="79161234567", text="Typed on the phone",
                            message_id="WZ-ECHO", is_echo=True, status="error",
                            error={"error": "BAD_CONTACT", "description": "Account does not exist"})
    deliver(delivery(messages=[echo]))
    message = wazzup_rows.message("WZ-ECHO")
    assert (message["direction"], message["status"], message["error_code"]) == ("out", "failed", "BAD_CONTACT")
    assert message["error_text"] == "The number is not on WhatsApp, or the customer's app is too old."
