"""What a parsed message shows and stores, without the database: its placeholder and preview, the
fields derived from its link, its chat's phone and contact name, and which of its copies is newest."""

from __future__ import annotations

import mimetypes
import re
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa

from wazzup_plugin.inbound.parse import Message
from wazzup_plugin.outbound.file_rules import clean_name

PHONE_CHAT_TYPES = ("whatsapp", "viber")
# Group chats: an item's ``contact`` is (as far as Wazzup lets us tell: no participant field is
# documented) whoever wrote it, not the chat.
GROUP_CHAT_TYPES = ("whatsgroup", "telegroup", "maxgroup")

DELETED_PREVIEW = "[Deleted message]"
PLACEHOLDERS = {
    "image": "[Image]", "video": "[Video]", "audio": "[Audio]", "document": "[Document]",
    "vcard": "[Contact card]", "geo": "[Location]", "missing_call": "Missed call",
    "wapi_template": "[Template message]", "text": "[Empty message]",
    "unsupported": "[A message of a type Wazzup does not support: open it on the phone]",
}


def placeholder(msg: Message) -> str:
    if msg.type == "unknown":
        return f"[Unknown message type: {msg.raw_type}]" if msg.raw_type else "[Unknown message type]"
    return PLACEHOLDERS.get(msg.type, "[Message]")


def is_placeholder(text: str | None, msg_type: str | None) -> bool:
    """Whether a stored message's text is only the label :func:`placeholder` gave it (it came with no
    text and no link): what it was is not known here."""
    if text is None:
        return False
    return (text == PLACEHOLDERS.get(msg_type or "")
            or (msg_type == "unknown" and text.startswith("[Unknown message type")))


def known_only_by_its_label(messages, wazzup_messages):
    """:func:`is_placeholder` of a message sent from the phone, as SQL over the host's ``messages`` and
    our ``wazzup_messages``: Resend would send our label to the customer as a text, so it is not offered."""
    m = messages.c
    # COALESCE: a NULL text or a type without a label compares as NULL, which NOT would keep NULL.
    return sa.and_(wazzup_messages.c.is_echo.is_(True), m.content_uri.is_(None), sa.func.coalesce(sa.or_(
        m.text == sa.case(PLACEHOLDERS, value=m.type, else_=sa.null()),
        sa.and_(m.type == "unknown", m.text.startswith("[Unknown message type", autoescape=True))), sa.false()))


_VCARD_NAME = re.compile(r"(?im)^FN(?:;[^:\r\n]*)?:(.*\S)")


def preview(text: str | None, msg_type: str, content_name: str | None) -> str:
    """A chat's last message as its list line: the text; a file's type and name; a contact card's
    or a location's type before what it holds (not a vCard's raw lines or bare coordinates).

    WhatsApp's markers (``*bold*``, ``_italic_``...) stay, as the message's own text keeps them: the
    agents' page leaves them out (wazzup24.js ``plainWhatsApp``, by the parser that draws the bubbles)
    rather than a second parser here, and an API client gets what was written."""
    if text and msg_type == "vcard":
        name = _VCARD_NAME.search(text)
        text = f"{PLACEHOLDERS['vcard']} {name.group(1) if name else ''}"
    elif text and msg_type == "geo":
        text = f"{PLACEHOLDERS['geo']} {text}"
    if text:
        return re.sub(r"\s+", " ", text).strip()[:200]
    label = PLACEHOLDERS.get(msg_type, "[Message]")
    return f"{label} {content_name}"[:200] if content_name else label


def content_name(uri: str | None) -> str | None:
    """The file name a link carries (``?filename=`` as Wazzup's store uses, else the last path part)."""
    if not uri:
        return None
    parts = urlsplit(uri)
    name = (parse_qs(parts.query).get("filename") or [None])[0]
    if not name:
        last = PurePosixPath(unquote(parts.path)).name
        name = last if "." in last else None
    # Cleaned as an agent's upload's name is: the last path part, no control or format characters
    # (the name reaches a Content-Disposition header and the copy's URL, where "/" would not route).
    return (clean_name(name)[:500] or None) if name else None


def content_fields(uri: str | None) -> dict:
    """A message's ``content_uri``, ``content_name`` and ``content_type``, as derived from its link
    (a new message's row, and an edit that brings a new link)."""
    name = content_name(uri)
    return {"content_uri": uri, "content_name": name, "content_type": mimetypes.guess_type(name)[0] if name else None}


def is_group(msg: Message) -> bool:
    return msg.chat_type in GROUP_CHAT_TYPES


def chat_title(msg: Message, phone: str | None) -> str:
    """A new chat's title: the contact's name, else the phone or chat id. A group is titled once, when
    it is created (its first item's contact name, else "Group <the end of its id>"), and keeps that."""
    if is_group(msg):
        return (msg.contact_name or f"Group {msg.chat_id.split('@')[0][-6:] or msg.chat_id[:6]}")[:300]
    return (msg.contact_name or phone or msg.chat_id)[:300]


def chat_phone(msg: Message) -> str | None:
    if is_group(msg):
        return None  # a group has no phone: a contact phone in its items is a member's
    if msg.chat_type in PHONE_CHAT_TYPES:
        digits = re.sub(r"\D", "", msg.chat_id)
    elif msg.contact_phone:
        digits = re.sub(r"\D", "", msg.contact_phone)
    else:
        return None
    return digits[:32] or None


def _is_just_the_number(name: str, msg: Message) -> bool:
    return not re.search(r"[^\d\s+()\-]", name) or name == msg.chat_id


def contact_name(msg: Message) -> str | None:
    """The name a message gives its chat's contact, if any: WhatsApp may send the number as the
    name, and a chat is never renamed to it."""
    name = msg.contact_name
    return name if name and not _is_just_the_number(name, msg) else None


def contact_update(msg: Message) -> tuple[str | None, str | None]:
    """``(name, avatar)`` an incoming message gives its chat's contact, each None when it gives none
    (then the chat keeps what it has). A group chat's items speak of their sender, not of the chat:
    they never rename it nor change its avatar. Both write paths follow this: ``_contact_changes``
    and the one-statement write (``Writer.store_in_one_statement``)."""
    if msg.is_echo or is_group(msg):
        return None, None
    return contact_name(msg), msg.avatar_uri or None


def author_name(msg: Message) -> str | None:
    """A new message's ``author_name``: an echo's agent (Wazzup's ``authorName``); in a group chat, an
    incoming message's sender (its contact name); none for an incoming message of a one-to-one chat."""
    if msg.is_echo:
        return msg.author_name
    return msg.contact_name if is_group(msg) else None


def _version(msg: Message) -> tuple:
    """Which copy of one message is newest: a deletion beats an edit beats the original."""
    return (2 if msg.is_deleted else 1 if msg.is_edited else 0, msg.at.timestamp() if msg.at else 0.0)


def newest_copies(items: list[Message]) -> dict[str, Message]:
    """Several copies of one message in a delivery: the newest one speaks."""
    newest: dict[str, Message] = {}
    for msg in items:
        held = newest.get(msg.message_id)
        if held is None or _version(msg) > _version(held):
            newest[msg.message_id] = msg
    return newest
