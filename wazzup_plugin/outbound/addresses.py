"""Writing first on Telegram and MAX: a chat kept under the address an agent typed until Wazzup names it.

A WhatsApp chat's id is the customer's number, so a chat started by number has its real key at once
(``start_chat.py``). A Telegram or MAX chat's id is Wazzup's own, and Wazzup tells it only in its
answer to the first message sent by ``phone`` (Telegram, MAX) or ``username`` (Telegram) (reference
§3.1, §3.4). Until then the chat's Wazzup row holds a provisional id, ``phone:79161234567`` or
``username:ivan_petrov``: unique per channel like any key (two starts for one address make one chat),
read back into ``phone``/``username`` by the outbox's send (:func:`recipient_fields`), and replaced
by the id Wazzup answers with (:func:`learn_chat_id`). No id Wazzup gives has a colon: Telegram's and
MAX's are numbers.

If Wazzup names a chat the helpdesk already has (the customer wrote before, under a name that did
not show their number; or they answered before Wazzup's answer to our send was recorded), the started
chat's messages move into that chat and the started chat is removed: one customer, one chat.
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa

log = logging.getLogger(__name__)

# Channel transport -> (the chat type its chats have, the addresses a first message may go to).
# A Telegram bot (transport "telegram") cannot write to anyone first; Telegram's personal accounts
# ("tgapi") can, by phone or username; MAX by phone.
WRITE_FIRST = {"tgapi": ("telegram", ("phone", "username")), "max": ("max", ("phone",))}
PROVISIONAL_KINDS = ("phone", "username")

# Telegram's usernames: 5-32 of Latin letters, digits and underscores, beginning with a letter;
# case does not matter (Telegram finds @Ivan_Petrov and @ivan_petrov alike).
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}")
_LINK = re.compile(r"^(?:https?://)?(?:t\.me|telegram\.me)/", re.IGNORECASE)  # in front only


def telegram_username(written: str) -> str:
    """The username Wazzup takes (no @, lower case) from one as people write it ("@Ivan_Petrov",
    "t.me/ivan_petrov"). Raises ValueError saying what is wrong."""
    text = _LINK.sub("", written.strip(), count=1).removeprefix("@")
    if not _USERNAME.fullmatch(text):
        raise ValueError("a Telegram username has 5-32 Latin letters, digits and underscores and begins with "
                         "a letter (@ in front is fine)")
    return text.lower()


def provisional_chat_id(kind: str, value: str) -> str:
    """The Wazzup row's chat id until Wazzup names the chat."""
    if kind not in PROVISIONAL_KINDS:
        raise ValueError(f"unknown address kind {kind!r}")
    return f"{kind}:{value}"


def address_of(wazzup_chat_id: str | None) -> tuple[str, str] | None:
    """``(kind, value)`` of a provisional chat id; None for an id Wazzup gave."""
    kind, colon, value = (wazzup_chat_id or "").partition(":")
    return (kind, value) if colon and kind in PROVISIONAL_KINDS and value else None


def recipient_fields(wazzup_chat_id: str) -> dict:
    """The recipient's fields of a send: ``chatId``, or ``phone``/``username`` while the chat has none."""
    address = address_of(wazzup_chat_id)
    return {"chatId": wazzup_chat_id} if address is None else {address[0]: address[1]}


def learn_chat_id(tx, ctx, chat_id: int, provisional: str, answered) -> None:
    """Wazzup accepted a message of a chat started by address and named the chat ``answered``: the
    chat is kept under that id from now on; or, when the helpdesk already has a chat under that id,
    this one's messages move into it and this one is removed. (The caller reads the message's chat
    afterwards: another message of the chat, answered first, may have moved it already.)

    Runs in the transaction that records the acceptance (the change counter taken first, as every
    writer does). Does nothing when the chat was renamed meanwhile or the answer names no usable id."""
    answered = str(answered).strip() if isinstance(answered, (str, int)) and not isinstance(answered, bool) else ""
    if not answered or address_of(answered) is not None or len(answered) > 200 or not answered.isprintable():
        return
    wc = ctx.state.tables["chats"]
    mine = tx.conn.execute(sa.select(wc.c.channel_id, wc.c.chat_type).where(
        wc.c.chat_id == chat_id, wc.c.wazzup_chat_id == provisional)).first()
    if mine is None:  # already named (an earlier message's answer), or gone
        return
    holder = tx.conn.execute(sa.select(wc.c.chat_id).where(
        wc.c.channel_id == mine.channel_id, wc.c.chat_type == mine.chat_type,
        wc.c.wazzup_chat_id == answered)).scalar()
    if holder is None:
        tx.conn.execute(sa.update(wc).where(wc.c.chat_id == chat_id).values(wazzup_chat_id=answered))
        log.info("Wazzup24 named a chat started by %s", address_of(provisional)[0],
                 extra={"context": {"chat_id": chat_id, "wazzup_chat_id": answered}})
        return
    _move_into(tx, ctx, chat_id, holder)
    log.info("Wazzup24 named a chat started by %s after one the helpdesk has: its messages moved there",
             address_of(provisional)[0], extra={"context": {"chat_id": holder, "started_chat_id": chat_id}})


def _move_into(tx, ctx, source: int, target: int) -> None:
    """Every message of chat ``source`` (and what the plugin keeps of them) into chat ``target``, the
    target's place in the chat list brought up to the newer of the two (and the number the chat was
    started with kept, if the target showed none), then ``source`` removed."""
    helpdesk, tables = ctx.helpdesk, ctx.state.tables
    chats, m = helpdesk.tables.chats, helpdesk.tables.messages
    seq = tx.change_seq
    moved = [row.id for row in tx.conn.execute(sa.select(m.c.id).where(m.c.chat_id == source))]
    tx.conn.execute(sa.update(m).where(m.c.chat_id == source).values(chat_id=target, change_seq=seq))
    for name, t in tables.items():  # every table of ours that keeps a chat's rows (outbox, files, media…)
        if name != "chats" and "chat_id" in t.c:
            tx.conn.execute(sa.update(t).where(t.c.chat_id == source).values(chat_id=target))
    src = tx.conn.execute(sa.select(chats.c.last_message_at, chats.c.last_message_preview, chats.c.last_activity_at,
                                    chats.c.phone).where(chats.c.id == source)).first()
    dst = tx.conn.execute(sa.select(chats.c.last_message_at, chats.c.last_activity_at, chats.c.phone)
                          .where(chats.c.id == target)).first()
    values = {"change_seq": seq}
    if src is not None and src.phone and not dst.phone:
        # The number the chat was started with reached this customer: a later start with it finds this chat.
        values.update(phone=src.phone)
    if src is not None and src.last_message_at is not None and (
            dst.last_message_at is None or src.last_message_at > dst.last_message_at):
        values.update(last_message_at=src.last_message_at, last_message_preview=src.last_message_preview)
    if src is not None and src.last_activity_at is not None and (
            dst.last_activity_at is None or src.last_activity_at > dst.last_activity_at):
        values.update(last_activity_at=src.last_activity_at)
    tx.conn.execute(sa.update(chats).where(chats.c.id == target).values(**values))
    tx.conn.execute(sa.delete(tables["chats"]).where(tables["chats"].c.chat_id == source))
    tx.conn.execute(sa.delete(chats).where(chats.c.id == source))
    tx.touched(chat_ids=[target], message_ids=moved)  # the removed chat is no one's to announce
