"""WhatsApp Business (WABA) 24-hour window: when a chat takes free text, and when only a template.

Only chats on a WhatsApp Business API channel (transport ``wapi``) have one (reference
wazzup-api-v3.md §8.6): Meta lets a business write freely for 24 hours after the customer's latest
message; past that only an approved template goes out. Wazzup accepts a free text all the same
(201) and reports the closed window later as an ``error`` status ``24_HOURS_EXCEEDED``, after the
agent was told it was sent: so the send route refuses it up front (send.py), and the UI says so.

Plain ``whatsapp`` channels and other messengers have no such window here (Instagram's 7 days are
only explained when Wazzup reports them: ``7_DAYS_EXCEEDED``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa

from wazzup_plugin.store_common import built
from wazzup_plugin.text_limits import WABA_TRANSPORT

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Window:
    applies: bool                        # the chat is on a WABA channel
    open: bool                           # free text and files may be sent now
    closes_at: datetime | None           # when it closes (or closed); None: no incoming message, or no window
    last_incoming_at: datetime | None    # the customer's latest message
    channel_id: str | None = None        # the chat's channel (its templates are the ones it may use)

    def to_json(self) -> dict:
        return {"applies": self.applies, "open": self.open,
                "closes_at": self.closes_at.isoformat() if self.closes_at else None,
                "last_incoming_at": self.last_incoming_at.isoformat() if self.last_incoming_at else None}

    def closed_reason(self) -> str:
        """Why a free text or a file cannot go now, for the agent (only for a closed window)."""
        if self.last_incoming_at is None:
            since = "The customer has not written in this WhatsApp Business chat yet"
        else:
            since = (f"The customer last wrote at {self.last_incoming_at.strftime('%Y-%m-%d %H:%M')} UTC, "
                     "more than 24 hours ago")
        return (f"{since}, so WhatsApp Business takes only a template now: send a template to reopen the "
                "conversation. Nothing was stored or sent.")


NO_WINDOW = Window(applies=False, open=True, closes_at=None, last_incoming_at=None)


def is_waba(chat_type: str | None, transport: str | None) -> bool:
    """A WhatsApp chat on a WhatsApp Business API channel (as far as its stored channel says)."""
    return (chat_type or "whatsapp").lower() == "whatsapp" and (transport or "").lower() == WABA_TRANSPORT


class ChatChannel(NamedTuple):
    """A chat's Wazzup row with its stored channel's transport (None where the channel is not stored)."""
    channel_id: str | None
    chat_type: str | None
    transport: str | None


def chat_channel(conn, state, chat_id: int):
    """The chat's Wazzup row with its stored channel's transport: a row of :class:`ChatChannel`'s fields, or None."""
    wc, ch = state.tables["chats"], state.tables["channels"]
    return conn.execute(built(wc, "window_channel", lambda: sa.select(wc.c.channel_id, wc.c.chat_type, ch.c.transport)
                              .select_from(wc.outerjoin(ch, ch.c.channel_id == wc.c.channel_id))
                              .where(wc.c.chat_id == sa.bindparam("b_chat_id", type_=wc.c.chat_id.type))),
                        {"b_chat_id": chat_id}).first()


# How many of the chat's newest incoming messages (by id) are looked at: a message Wazzup delivers
# late is stored after newer ones, so the newest id need not be the newest time; this many bounds
# the read (the chat's index walked backwards) however long the chat is.
RECENT_INCOMING = 20


def last_incoming_at(conn, helpdesk, chat_id: int) -> datetime | None:
    """The time of the customer's latest message in the chat (the messenger's time, else when stored)."""
    m = helpdesk.tables.messages

    def build():
        recent = (sa.select(sa.func.coalesce(m.c.messenger_at, m.c.created_at).label("at"))
                  .where(m.c.chat_id == sa.bindparam("b_chat_id", type_=m.c.chat_id.type), m.c.direction == "in")
                  .order_by(m.c.id.desc()).limit(RECENT_INCOMING).subquery())
        return sa.select(sa.func.max(recent.c.at, type_=m.c.created_at.type))

    return conn.execute(built(m, "window_last_incoming", build), {"b_chat_id": chat_id}).scalar()


_UNREAD = object()


def chat_window(conn, helpdesk, state, chat_id: int, now: datetime, channel=_UNREAD) -> Window:
    """The chat's window as the database knows it at ``now`` (the injected clock's time).
    ``channel``: the chat's :func:`chat_channel` row when the caller has read it already."""
    if channel is _UNREAD:
        channel = chat_channel(conn, state, chat_id)
    if channel is None or not is_waba(channel.chat_type, channel.transport):
        return NO_WINDOW
    last = last_incoming_at(conn, helpdesk, chat_id)
    if last is None:
        return Window(applies=True, open=False, closes_at=None, last_incoming_at=None, channel_id=channel.channel_id)
    closes_at = last + WINDOW
    return Window(applies=True, open=now < closes_at, closes_at=closes_at, last_incoming_at=last,
                  channel_id=channel.channel_id)
