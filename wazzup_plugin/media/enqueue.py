"""Queueing an incoming message's media for download, in the transaction that stores the message.

The webhook only writes a row here (one executemany per delivery, none for a delivery without
media); the outbox worker downloads later (``download``). Insert-or-ignore on the message's id: a
redelivery, or two deliveries racing, leave one row.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from wazzup_plugin.inbound.message_rows import content_fields
from wazzup_plugin.media.tables import PENDING
from wazzup_plugin.store_common import insert_ignore, upsert

# What an edit bringing a new link resets: the row starts over for the new file (its token stays,
# so the copy's URL changes only with its name), queued now (``created_at``: the backlog's age).
_RESET_ON_NEW_LINK = ("source_uri", "state", "attempts", "next_attempt_at", "lease_owner", "lease_until",
                      "last_error", "name", "url", "content_type", "size", "sha256", "data", "stored_at",
                      "created_at")


# A new row's columns but for its message and chat (the one-statement write selects those itself).
QUEUED_COLUMNS = ("source_uri", "state", "attempts", "next_attempt_at", "name", "content_type", "token",
                  "created_at")


def pending_row(message_id: int, chat_id: int, uri: str, now: datetime) -> dict:
    """A new row of ``message_id``'s media, due now."""
    derived = content_fields(uri)
    return {"message_id": message_id, "chat_id": chat_id, "source_uri": uri, "state": PENDING, "attempts": 0,
            "next_attempt_at": now, "lease_owner": None, "lease_until": None, "last_error": None,
            "name": derived["content_name"], "url": None, "content_type": derived["content_type"], "size": None,
            "sha256": None, "data": None, "token": secrets.token_urlsafe(32), "created_at": now,
            "stored_at": None}


def enqueue_new(conn, table, media: list[tuple[int, int, str]], now: datetime) -> None:
    """Queue the media of messages this transaction stored: ``(message id, chat id, link)`` each."""
    if media:
        insert_ignore(conn, table, [pending_row(m, c, uri, now) for m, c, uri in sorted(media)])


def enqueue_edited(conn, table, media: list[tuple[int, int, str]], now: datetime) -> None:
    """Queue the new media edits brought to stored messages: a row held for the old link starts over
    (its lease cleared, so a download of the old file in flight records nothing)."""
    if media:
        upsert(conn, table, [pending_row(m, c, uri, now) for m, c, uri in sorted(media)], key=["message_id"],
               update=_RESET_ON_NEW_LINK)
