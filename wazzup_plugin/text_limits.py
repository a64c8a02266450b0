"""How long a text each messenger takes, in Unicode code points (``len()`` of a ``str``, as the UI counts).

The one table of text limits (reference/wazzup-api-v3.md §3.2): the send route refuses an over-long
text with these, the connection report carries them for the UI's counter (:func:`for_the_ui`), and
Wazzup's codes for an over-long text get their plain-language texts here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextLimit:
    limit: int
    messenger: str  # how agents know the messenger
    code: str       # what Wazzup answers when a text is longer


WHATSAPP = TextLimit(10_000, "WhatsApp", "MESSAGE_TEXT_TOO_LONG")
TELEGRAM = TextLimit(4_096, "Telegram", "MESSAGES_TOO_LONG_TELEGRAM")
MAX = TextLimit(4_096, "MAX", "MESSAGE_TEXT_TOO_LONG")  # Wazzup documents no MAX-specific code
VIBER = TextLimit(6_999, "Viber", "MESSAGES_TOO_LONG_VIBER")
INSTAGRAM = TextLimit(1_000, "Instagram", "MESSAGES_TOO_LONG_INSTAGRAM")
VK = TextLimit(1_000, "VK", "MESSAGES_TOO_LONG_VK")
AVITO = TextLimit(1_000, "Avito", "MESSAGES_TOO_LONG_AVITO")
# A WhatsApp chat on a WhatsApp Business API channel (transport ``wapi``): 1,024 in a regular message.
WABA = TextLimit(1_024, "WhatsApp Business (WABA)", "MESSAGES_TOO_LONG_WABA")
WABA_TRANSPORT = "wapi"

# Wazzup chatType -> its limit. A chat type not listed here gets DEFAULT.
BY_CHAT_TYPE: dict[str, TextLimit] = {
    "whatsapp": WHATSAPP, "whatsgroup": WHATSAPP,
    "telegram": TELEGRAM, "telegroup": TELEGRAM,
    "max": MAX, "maxgroup": MAX,
    "viber": VIBER,
    "instagram": INSTAGRAM, "vk": VK, "avito": AVITO,
}
DEFAULT = WHATSAPP
# The longest text any chat takes (the request body's own limit).
LONGEST = max(t.limit for t in (*BY_CHAT_TYPE.values(), WABA, DEFAULT))


def text_limit(chat_type: str | None, transport: str | None = None) -> TextLimit:
    """The limit of a chat of ``chat_type`` (None: a WhatsApp chat by phone) on a channel of
    ``transport`` (None when unknown)."""
    chat_type = (chat_type or "whatsapp").lower()
    if chat_type == "whatsapp" and (transport or "").lower() == WABA_TRANSPORT:
        return WABA
    return BY_CHAT_TYPE.get(chat_type, DEFAULT)


def too_long_reason(limit: TextLimit, length: int) -> str:
    """What the send route says of a text over the limit (the 422's reason for the field ``text``)."""
    return (f"at most {limit.limit:,} characters in a {limit.messenger} chat; this text has {length:,}")


def for_the_ui() -> dict:
    """The table as the agent UI applies it to a chat (``wazzup_chat_type`` and its channel's transport):
    served in the connection report, so the browser counts against the same numbers as the server."""
    return {"by_chat_type": {name: t.limit for name, t in sorted(BY_CHAT_TYPE.items())},
            "waba": {"chat_type": "whatsapp", "transport": WABA_TRANSPORT, "limit": WABA.limit},
            "default": DEFAULT.limit}


# Wazzup's codes for an over-long text, in words (merged into HUMAN_TEXT, wazzup_plugin/error_texts.py): one sentence per
# messenger, from the limits above. MESSAGE_TEXT_TOO_LONG (WhatsApp, MAX) has its text in the outbox.
TOO_LONG_TEXTS = {
    **{t.code: f"The text is longer than {t.messenger} allows ({t.limit:,} characters); shorten it or send it in parts."
       for t in (TELEGRAM, VIBER, INSTAGRAM, VK, AVITO, WABA)},
    "MESSAGES_TOO_LONG_WABA_HEADER": "The template's header is longer than WhatsApp Business allows (60 characters).",
    "MESSAGES_TOO_LONG_WABA_TEMPLATE": "The template's text is longer than WhatsApp Business allows "
                                       "(1,024 characters).",
}
