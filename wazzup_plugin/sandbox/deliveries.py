"""Wazzup-shaped webhook deliveries, built in one place.

The sandbox's webhook sender and ``helpdesk-stub wazzup24 simulate-incoming`` both build
deliveries here, so what the product is tested with is exactly what the sandbox sends.
Shapes: reference/wazzup-api-v3.md §5.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from urllib.parse import urlsplit


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


MEDIA_TYPES = {"image": (".jpg", ".jpeg", ".png", ".gif", ".webp", ".was"),
               "video": (".mp4", ".mov", ".3gp", ".webm"),
               "audio": (".mp3", ".ogg", ".oga", ".opus", ".m4a", ".wav", ".aac")}


def media_type(content_uri: str) -> str:
    """The message type Wazzup would give a file, guessed from its name (a document when unsure)."""
    try:
        parts = urlsplit(content_uri)
    except ValueError:  # e.g. an unclosed IPv6 bracket: nothing to guess from
        return "document"
    path, query = parts.path.lower(), parts.query.lower()   # Wazzup's store puts the name in ?filename=
    for type_, endings in MEDIA_TYPES.items():
        if path.endswith(endings) or any(query.endswith(e) for e in endings):
            return type_
    return "document"


def incoming_message(*, channel_id: str, chat_id: str, text: str | None = None, content_uri: str | None = None,
                     type: str | None = None, name: str | None = None, chat_type: str = "whatsapp",
                     message_id: str | None = None, at: datetime | None = None, avatar_uri: str | None = None,
                     is_echo: bool = False, **extra) -> dict:
    """One item of ``messages``: a customer's message (or, with ``is_echo``, one sent from the phone)."""
    item = {
        "messageId": message_id or str(uuid.uuid4()),
        "channelId": channel_id,
        "chatType": chat_type,
        "chatId": chat_id,
        "dateTime": iso(at or datetime.now(timezone.utc)),
        "type": type or ("text" if content_uri is None else media_type(content_uri)),
        "isEcho": is_echo,
        "contact": {"name": name or chat_id},
        "status": "sent" if is_echo else "inbound",
    }
    if avatar_uri:
        item["contact"]["avatarUri"] = avatar_uri
    if text is not None:
        item["text"] = text
    if content_uri is not None:
        item["contentUri"] = content_uri
    item.update(extra)
    return item


def status_update(*, message_id: str, status: str, at: datetime | None = None, error: dict | None = None) -> dict:
    """One item of ``statuses``; ``error`` like ``{"error": "BAD_CONTACT", "description": "..."}``."""
    item = {"messageId": message_id, "timestamp": iso(at or datetime.now(timezone.utc)), "status": status}
    if error is not None:
        item["error"] = error
    return item


def channel_update(*, channel_id: str, state: str, at: datetime | None = None, **extra) -> dict:
    """One item of ``channelsUpdates`` (§5.4); its ``timestamp`` is an integer of milliseconds."""
    item = {"channelId": channel_id, "state": state,
            "timestamp": int((at or datetime.now(timezone.utc)).timestamp() * 1000)}
    item.update(extra)
    return item


def delivery(messages=(), statuses=(), channels_updates=()) -> dict:
    """A webhook body; keys with nothing to carry are left out, as Wazzup does."""
    body: dict = {}
    if messages:
        body["messages"] = list(messages)
    if statuses:
        body["statuses"] = list(statuses)
    if channels_updates:
        body["channelsUpdates"] = list(channels_updates)
    return body
