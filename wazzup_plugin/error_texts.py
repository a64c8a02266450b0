"""Wazzup's error codes in words for agents: a send's refusal, and the webhook's ``error`` status.

Both flows store these (``messages.error_text``), with Wazzup's own description as the fallback for
a code not listed; codes compare as Wazzup spells them either way (``normalize_code``).
"""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.client import normalize_code
from wazzup_plugin.inbound.message_rows import known_only_by_its_label
from wazzup_plugin.text_limits import TOO_LONG_TEXTS

HUMAN_TEXT = {normalize_code(k): v for k, v in {
    "BAD_CONTACT": "The number is not on WhatsApp, or the customer's app is too old.",
    "MESSAGE_TEXT_TOO_LONG": "The text is longer than WhatsApp allows (10,000 characters).",
    "MESSAGE_ONLY_TEXT_OR_CONTENT": "A message carries either text or a file, not both.",
    "MESSAGE_NOTHING_TO_SEND": "The message is empty.",
    "MESSAGE_WRONG_CONTENT_TYPE": "WhatsApp does not accept this kind of file.",
    "MESSAGE_DOWNLOAD_CONTENT_ERROR": "Wazzup could not download the file from its link.",
    "MESSAGES_CONTENT_SIZE_EXCEEDED": "The file is larger than Wazzup accepts (10 MB).",
    "INVALID_MESSAGE_DATA": "Wazzup found the message data invalid.",
    "WRONG_TRANSPORT": "The chat's type does not match the channel's messenger.",
    "CHANNEL_NOT_FOUND": "The channel is not part of this Wazzup integration.",
    "CHANNEL_BLOCKED": "The channel is switched off in Wazzup.",
    "CHANNEL_WAPI_REJECTED": "The WhatsApp Business channel is blocked.",
    "CHANNEL_NO_MONEY": "The Wazzup subscription for this channel is not paid.",
    "MESSAGE_CHANNEL_UNAVAILABLE": "The channel's phone stayed unavailable while the message was retried for an "
                                   "hour; check the phone in Wazzup, then resend.",
    "CHANNEL_LIMIT_EXCEEDED": "The channel's limit of active dialogues is reached.",
    "BALANCE_IS_EMPTY": "The WhatsApp Business balance is empty.",
    "MESSAGES_IS_SPAM": "Wazzup held the message back as spam.",
    "MESSAGES_NOT_TEXT_FIRST": "This Wazzup plan cannot write to a customer first.",
    "CHAT_NO_ACCESS": "This Wazzup account has no access to the chat.",
    "REFERENCE_MESSAGE_NOT_FOUND": "Wazzup does not know the message this reply quotes; send it as a new "
                                   "message, without replying to that one.",
    "TEMPLATE_REJECTED": "The template is restricted; try another or wait for the customer to write.",
    # The `error` status of the webhook (reference §5.2): what went wrong after Wazzup took the message.
    "24_HOURS_EXCEEDED": "The WhatsApp Business 24-hour window is closed: the customer last wrote more than 24 hours "
                         "ago. Send a template to reopen the conversation.",
    "7_DAYS_EXCEEDED": "The Instagram 7-day window is closed: the customer last wrote more than 7 days ago, so "
                       "Instagram takes no message until they write again.",
    "TOO_BIG_CONTENT": "The file is larger than the messenger accepts (50 MB).",
    "BAD_LINK": "The messenger refused a link in the message.",
    "SPAM": "The messenger held the message back as spam.",
    "TOO_LONG_TEXT": "The text is longer than the messenger accepts.",
    "CHATID_IGSID_MISMATCH": "The Instagram account of this chat does not match the customer's; the message "
                             "could not be delivered.",
    "TOO_MANY_EXT_REQS": "The messenger limited how many messages go out right now; resend it later.",
    "WRONG_CONTENT": "The messenger does not accept this content.",
    "MESSAGE_CANCELLED": "The message was cancelled before it was sent.",
    "CONTENT_CONVERSION_ERROR": "The file could not be converted for the messenger.",
    "MESSAGE_DELETED": "The message was deleted before it was delivered.",
    "CANNOT_REPLY_TO_DELETED": "The quoted message was deleted, so this reply could not be sent.",
    "MENTION_FORBIDDEN": "The messenger does not allow this mention.",
    "CHANNEL_REJECTED": "The channel was rejected by the messenger; see the channel in Wazzup.",
    # Ours, not Wazzup's: Wazzup refused the helpdesk's API key (outbox.py). The agent cannot fix it.
    "WAZZUP_AUTH": "Wazzup24 refused the helpdesk's API key, so nothing was sent: ask your administrator to "
                   "check the Wazzup24 settings.",
    **TOO_LONG_TEXTS,  # MESSAGES_TOO_LONG_TELEGRAM, ...: wazzup_plugin/text_limits.py
}.items()}


def human_text(code: str | None) -> str | None:
    """Wazzup's error code in words for agents, or None when it is not one we know."""
    return HUMAN_TEXT.get(normalize_code(code)) if code else None


# Refusals that the same message meets again when resent: the number is not on the messenger, or the
# message itself is refused (its text, its file, what it quotes or mentions). A channel's, a balance's or
# the API key's problem is not among them: once someone fixes it, a resend goes through.
FINAL_CODES = frozenset(normalize_code(c) for c in (
    "BAD_CONTACT", "INVALID_DATA", "INVALID_MESSAGE_DATA", "MESSAGE_TEXT_TOO_LONG", "MESSAGE_ONLY_TEXT_OR_CONTENT",
    "MESSAGE_NOTHING_TO_SEND", "MESSAGE_WRONG_CONTENT_TYPE", "MESSAGES_CONTENT_SIZE_EXCEEDED", "TOO_BIG_CONTENT",
    "TOO_LONG_TEXT", "WRONG_CONTENT", "CHATID_IGSID_MISMATCH", "REFERENCE_MESSAGE_NOT_FOUND",
    "CANNOT_REPLY_TO_DELETED", "MENTION_FORBIDDEN"))
_TOO_LONG_FOR_THE_MESSENGER = normalize_code("MESSAGES_TOO_LONG_")  # ..._TELEGRAM, ..._WABA: text_limits.py


def resendable(messages: sa.Table, wazzup_messages: sa.Table) -> sa.ColumnElement:
    """Whether Resend can help a message, as SQL over the host's ``messages`` and our ``wazzup_messages``
    (outer-joined: NULLs where we hold no row): an outgoing message that failed or may not have gone out,
    not resent yet, unless its code says that a second attempt meets the same refusal (one of
    :data:`FINAL_CODES`, a text too long for the messenger, Wazzup's plain 4xx ``HTTP_400``). The resend
    route itself takes any failed or unknown message: the customer may update their app, after all.
    Worked out as the message is read, so it follows every change of status or code with no write of its own."""
    m = messages.c
    code = sa.func.lower(sa.func.replace(sa.func.replace(sa.func.coalesce(m.error_code, ""), "_", ""), "-", ""))
    final = sa.or_(code.in_(sorted(FINAL_CODES)), code.like(_TOO_LONG_FOR_THE_MESSENGER + "%"),
                   code.like("http4__"))  # HTTP_404: client.py names a plain refusal by its HTTP status
    return sa.type_coerce(sa.case(
        (sa.and_(m.direction == "out", wazzup_messages.c.resent_as.is_(None),
                 sa.not_(known_only_by_its_label(messages, wazzup_messages)),
                 sa.or_(m.status == "unknown", sa.and_(m.status == "failed", sa.not_(final)))), sa.true()),
        else_=sa.false()), sa.Boolean)
