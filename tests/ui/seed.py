"""Seed chats and messages straight into a helpdesk database (for UI tests and screenshots)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa


def helpdesk_for(database_url: str):
    """A helpdesk facade on an existing database (e.g. the one a running gunicorn serves)."""
    import wazzup_plugin.hooks
    from host_stub.app import create_app
    from host_stub.config import Config
    from host_stub.plugins import get_plugin_manager

    pm = get_plugin_manager(load_entrypoints=False, extra_plugins=[wazzup_plugin.hooks])
    return create_app(Config(database_url=database_url, env={}), pm).helpdesk


def add_chat(helpdesk, *, type="wazzup", title="A customer", phone=None, unread=0, at=None,
             preview="") -> int:
    chats = helpdesk.tables.chats
    now = at or datetime.now(timezone.utc)
    with helpdesk.db.write() as tx:
        chat_id = tx.conn.execute(sa.insert(chats).values(
            type=type, title=title, phone=phone, unread_count=unread, last_message_at=now if preview else None,
            last_message_preview=preview[:200], last_activity_at=now, created_at=now, change_seq=tx.change_seq,
        )).inserted_primary_key[0]
        tx.touched(chat_ids=[chat_id])
    return chat_id


def add_message(helpdesk, chat_id, *, text="hello", direction="in", status=None, type="text", at=None,
                bump_chat=True, **columns) -> int:
    """Insert a message (any host column may be given) and, like a real flow, move its chat up."""
    messages, chats = helpdesk.tables.messages, helpdesk.tables.chats
    now = at or datetime.now(timezone.utc)
    status = status or ("inbound" if direction == "in" else "queued")
    values = dict(chat_id=chat_id, direction=direction, status=status, type=type, text=text,
                  created_at=now, messenger_at=now, change_seq=0)
    if status != "inbound":
        values.setdefault(f"{status}_at", now)
    values.update(columns)
    with helpdesk.db.write() as tx:
        values["change_seq"] = tx.change_seq
        message_id = tx.conn.execute(sa.insert(messages).values(**values)).inserted_primary_key[0]
        if bump_chat:
            preview = text or f"[{type}]"
            update = dict(last_message_at=now, last_activity_at=now, last_message_preview=preview[:200],
                          change_seq=tx.change_seq)
            if direction == "in":
                update["unread_count"] = chats.c.unread_count + 1
            tx.conn.execute(sa.update(chats).where(chats.c.id == chat_id).values(**update))
        tx.touched(chat_ids=[chat_id], message_ids=[message_id])
    return message_id


def set_message(helpdesk, message_id, **values) -> None:
    messages = helpdesk.tables.messages
    with helpdesk.db.write() as tx:
        chat_id = tx.conn.execute(sa.select(messages.c.chat_id).where(messages.c.id == message_id)).scalar_one()
        tx.conn.execute(sa.update(messages).where(messages.c.id == message_id)
                        .values(change_seq=tx.change_seq, **values))
        tx.touched(chat_ids=[chat_id], message_ids=[message_id])


def showcase(helpdesk, now: datetime | None = None) -> dict:
    """A chat list and a chat with every kind of message, status and marker the UI shows."""
    now = now or datetime.now(timezone.utc)
    ids = {}
    for i in range(12):
        add_chat(helpdesk, type="wazzup", title=f"Customer {i:02d}", phone=f"7999000{i:04d}",
                 at=now - timedelta(hours=30 + i), preview=f"Earlier question {i}")
    ids["note"] = add_chat(helpdesk, type="internal", title="Team notes", at=now - timedelta(hours=3),
                           preview="Remember the Friday release")
    ids["orphan"] = add_chat(helpdesk, type="telegram_legacy", title="Old Telegram chat", phone="79990009999",
                             at=now - timedelta(hours=2), preview="from a removed plugin")
    chat = ids["chat"] = add_chat(helpdesk, type="wazzup", title="Maria Ivanova", phone="79991234567",
                                  at=now - timedelta(minutes=40))
    t = now - timedelta(minutes=30)
    step = timedelta(minutes=1)
    add_message(helpdesk, chat, text="Hello! My order #1042 has not arrived yet.", at=t)
    add_message(helpdesk, chat, text="Good afternoon, Maria! Let me check.", direction="out", status="read",
                author_name="Alice Agent", at=t + step)
    add_message(helpdesk, chat, text=None, type="image", at=t + 2 * step, content_name="parcel.jpg",
                content_uri="https://store.wazzup24.com/parcel.jpg")
    add_message(helpdesk, chat, text=None, type="document", at=t + 3 * step, content_name="invoice-1042.pdf",
                content_uri="https://store.wazzup24.com/invoice-1042.pdf")
    add_message(helpdesk, chat, text=None, type="audio", at=t + 4 * step,
                content_uri="https://store.wazzup24.com/voice.ogg")
    add_message(helpdesk, chat, text="55.7558, 37.6173", type="geo", at=t + 5 * step)
    add_message(helpdesk, chat, text="BEGIN:VCARD\nVERSION:3.0\nFN:Ivan Petrov\nTEL:+79990001122\nEND:VCARD",
                type="vcard", at=t + 6 * step)
    add_message(helpdesk, chat, text=None, type="unsupported", at=t + 7 * step)
    add_message(helpdesk, chat, text="Sorry, wrong number", at=t + 8 * step, edited_at=t + 9 * step,
                previous_text="Sorry, wrong numbr")
    add_message(helpdesk, chat, text="This was removed", at=t + 9 * step, deleted_at=t + 10 * step)
    add_message(helpdesk, chat, text="It is on its way.", direction="out", status="delivered", at=t + 10 * step)
    add_message(helpdesk, chat, text="Tracking: RU123456789", direction="out", status="sent", at=t + 11 * step)
    add_message(helpdesk, chat, text="Anything else?", direction="out", status="accepted", at=t + 12 * step)
    add_message(helpdesk, chat, text="Please rate us", direction="out", status="failed", at=t + 13 * step,
                error_code="BAD_CONTACT", error_text="The contact does not exist in WhatsApp")
    add_message(helpdesk, chat, text="Are you still there?", direction="out", status="unknown", at=t + 14 * step)
    add_message(helpdesk, chat, text="One moment…", direction="out", status="queued", at=t + 15 * step)
    add_message(helpdesk, chat, text="<img src=x onerror=alert(1)><script>alert(2)</script>", at=t + 16 * step)
    return ids
