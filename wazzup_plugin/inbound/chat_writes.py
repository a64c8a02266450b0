"""Writing a delivery's chats: creating them once under races, following a contact's new name or
avatar, and following what the chat list shows (last message, preview, activity, unread count)."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from wazzup_plugin.chat_type import CHAT_TYPE
from wazzup_plugin.inbound.message_rows import (DELETED_PREVIEW, chat_phone, chat_title, contact_update, content_name,
                                                placeholder, preview)
from wazzup_plugin.inbound.parse import Message
from wazzup_plugin.store_common import insert_ignore_returning, insert_returning_ids


class ChatWrites:
    """``Writer``'s writes of chats.

    Relies on these of ``Writer``: ``conn``, ``t``, ``chats``, ``now``, ``seq``, ``summary`` and
    ``_driver_statement``; and on ``_find_chats`` (``StoredLookups``).
    """

    def _ensure_chats(self, items: list[Message], prefetched: dict | None = None) -> dict[tuple, int]:
        """The host chat of each (channel, chat type, chat id), created once even under races.

        ``prefetched``: chats found before the transaction (chats are never deleted, so they still
        exist); only the others are looked up here."""
        wc, c = self.t["chats"], self.chats
        latest: dict[tuple, Message] = {}
        for msg in items:
            held = latest.get(msg.chat_key)
            if held is None or (msg.at or self.now) >= (held.at or self.now):
                latest[msg.chat_key] = msg
        keys = sorted(latest)
        if prefetched is None:
            found = self._find_chats(keys)
        else:
            found = {k: dict(prefetched[k]) for k in keys if k in prefetched}
            found.update(self._find_chats([k for k in keys if k not in found]))

        missing = [k for k in keys if k not in found]
        if missing:
            new_rows = [self._new_chat_row(latest[k]) for k in missing]
            created = insert_returning_ids(self.conn, c, new_rows)
            mine = dict(zip(missing, created))
            won = insert_ignore_returning(self.conn, wc, [
                {"chat_id": mine[k], "channel_id": k[0], "chat_type": k[1], "wazzup_chat_id": k[2],
                 "contact_name": latest[k].contact_name} for k in missing], wc.c.chat_id)
            # The chats we created are known as written; only those another worker won are read back.
            winners = self._find_chats([k for k in missing if mine[k] not in won])
            for k, row in zip(missing, new_rows):
                if mine[k] in won:
                    winners[k] = {"chat_id": mine[k], "channel_id": k[0], "chat_type": k[1], "wazzup_chat_id": k[2],
                                  "contact_name": latest[k].contact_name, "avatar_uri": row["avatar_uri"],
                                  "last_message_at": row["last_message_at"],
                                  "last_activity_at": row["last_activity_at"]}
            lost = [cid for k, cid in mine.items() if winners[k]["chat_id"] != cid]
            if lost:  # another worker created the same chat first: drop our copy, use theirs
                self.conn.execute(sa.delete(c).where(c.c.id.in_(lost)))
            for k in missing:
                found[k] = winners[k]
                if winners[k]["chat_id"] == mine[k]:
                    self.summary.chats_created.append(mine[k])
                    self.summary.chat_ids.add(mine[k])

        self._refresh_contacts(latest, found)
        return {k: row["chat_id"] for k, row in found.items()}

    def ensure_chat(self, channel_id: str, chat_type: str, wazzup_chat_id: str,
                    title: str | None, phone: str | None = None) -> tuple[int, bool]:
        """``(chat id, whether it was created now)`` of the chat of this key, for a chat the helpdesk
        starts: created exactly as a customer's first message creates it (``title`` standing for their
        name, ``phone`` for the number a Telegram or MAX message shows), found as that message would
        find it. An existing chat keeps its title."""
        first = Message(raw={}, message_id="", channel_id=channel_id, chat_type=chat_type, chat_id=wazzup_chat_id,
                        at=None, type="text", raw_type=None, is_echo=True, status=None, text=None,
                        content_uri=None, contact_name=title, avatar_uri=None, contact_phone=phone, author_name=None,
                        author_id=None, sent_from_app=None, error_code=None, error_text=None, is_edited=False,
                        is_deleted=False, old_text=None, crm_message_id=None, ref_message_id=None)
        # Outgoing (is_echo): an existing chat's contact is not renamed after what the helpdesk typed.
        chat_id = self._ensure_chats([first])[first.chat_key]
        return chat_id, chat_id in self.summary.chats_created

    def _new_chat_row(self, msg: Message) -> dict:
        phone = chat_phone(msg)
        return {"type": CHAT_TYPE, "title": chat_title(msg, phone), "phone": phone,
                "avatar_uri": msg.avatar_uri, "unread_count": 0, "last_message_at": None,
                "last_message_preview": "", "last_activity_at": self.now, "created_at": self.now,
                "change_seq": self.seq}

    def _contact_changes(self, latest: dict[tuple, Message], found: dict[tuple, dict]) -> list[tuple]:
        """``(chat id, new name or None, new avatar or None)`` of each chat whose contact was renamed
        or got a new avatar (incoming messages of one-to-one chats: ``contact_update``); ``found``'s
        rows are updated to match."""
        changes = []
        for key, msg in latest.items():
            row = found[key]
            if row["chat_id"] in self.summary.chats_created:
                continue
            name, avatar = contact_update(msg)
            name = name if name != row["contact_name"] else None
            avatar = avatar if avatar != row["avatar_uri"] else None
            if name or avatar:
                changes.append((row["chat_id"], name, avatar))
                row["contact_name"] = name or row["contact_name"]
                row["avatar_uri"] = avatar or row["avatar_uri"]
        return changes

    def _refresh_contacts(self, latest: dict[tuple, Message], found: dict[tuple, dict]) -> None:
        """A contact renamed or with a new avatar: the chat follows (incoming messages only; never a group)."""
        wc, c = self.t["chats"], self.chats
        changes = self._contact_changes(latest, found)
        if not changes:
            return
        changes.sort()
        self.conn.execute(
            sa.update(c).where(c.c.id == sa.bindparam("b_id")).values(
                title=sa.func.coalesce(sa.bindparam("b_title", type_=c.c.title.type), c.c.title),
                avatar_uri=sa.func.coalesce(sa.bindparam("b_avatar", type_=c.c.avatar_uri.type),
                                            c.c.avatar_uri),
                change_seq=sa.bindparam("b_seq", type_=c.c.change_seq.type)),
            [{"b_id": cid, "b_title": name, "b_avatar": avatar, "b_seq": self.seq}
             for cid, name, avatar in changes])
        renamed = [{"b_id": cid, "b_name": name} for cid, name, _ in changes if name]
        if renamed:
            self.conn.execute(sa.update(wc).where(wc.c.chat_id == sa.bindparam("b_id"))
                              .values(contact_name=sa.bindparam("b_name")), renamed)
        self.summary.chat_ids.update(cid for cid, _, _ in changes)

    def _chat_follow_values(self, chat_id: int, msgs: list[Message], stamped: bool = True) -> dict:
        """Parameters of ``_chat_follow_update`` for one chat and the messages it got (``stamped=False``:
        without ``b_seq``, for a statement that takes the counter itself)."""
        last = max(msgs, key=lambda x: x.at or self.now)
        text = last.text if last.text else (None if last.content_uri else placeholder(last))
        # A message first seen as its deletion (its original never stored) shows no more of its text
        # in the chat list than one deleted later does (``_follow_edited_last_messages``).
        shown = DELETED_PREVIEW if last.is_deleted else preview(text, last.type, content_name(last.content_uri))
        values = {"b_id": chat_id, "b_unread": sum(1 for x in msgs if not x.is_echo), "b_last_at": last.at or self.now,
                  "b_preview": shown}
        if stamped:
            values["b_seq"] = self.seq
        return values

    def _chat_follow_update(self, seq=None, chat_id=None) -> sa.Update:
        """Last message, preview, activity and unread count of one chat (``b_*`` parameters).

        Relative to the row as it is when the update runs (never to a copy read earlier): a delivery
        may look its chats up before its write transaction, and another may have moved them since.
        ``seq``: an expression for ``change_seq`` (default: the ``b_seq`` parameter); ``chat_id``: one
        for the chat's id (default: the ``b_id`` parameter).
        """
        c = self.chats
        last_at = sa.bindparam("b_last_at", type_=c.c.last_message_at.type)
        newer = sa.or_(c.c.last_message_at.is_(None), c.c.last_message_at <= last_at)
        # Every SET expression sees the row as it was before this UPDATE (SQLite and PostgreSQL).
        return sa.update(c).where(c.c.id == (sa.bindparam("b_id") if chat_id is None else chat_id)).values(
            unread_count=c.c.unread_count + sa.bindparam("b_unread", type_=sa.Integer),
            last_message_at=sa.case((newer, last_at), else_=c.c.last_message_at),
            last_message_preview=sa.case(
                (newer, sa.bindparam("b_preview", type_=c.c.last_message_preview.type)),
                else_=c.c.last_message_preview),
            last_activity_at=sa.case((c.c.last_activity_at < last_at, last_at), else_=c.c.last_activity_at),
            change_seq=sa.bindparam("b_seq", type_=c.c.change_seq.type) if seq is None else seq)

    def _follow_chats(self, stored: list[Message], chat_of: dict) -> None:
        """Follow each chat that got messages (``_chat_follow_update``), one executemany."""
        if not stored:
            return
        per_chat: dict[int, list[Message]] = defaultdict(list)
        for msg in stored:
            per_chat[chat_of[msg.chat_key]].append(msg)
        updates = [self._chat_follow_values(chat_id, msgs) for chat_id, msgs in sorted(per_chat.items())]
        self._driver_statement("follow_chats", self._chat_follow_update).many(self.conn, updates)
        self.summary.chat_ids.update(per_chat)

    def _follow_edited_last_messages(self, edits: list[dict]) -> None:
        """A chat whose last message was edited or deleted shows the new text, or that it was deleted,
        in its preview, and its change reaches pollers: a deleted "my card number is …" must not stay
        in every agent's chat list. A chat whose last message is another one (newer) is left alone."""
        c = self.chats
        updates = [{"b_id": e["chat_id"], "b_at": e["at"], "b_seq": self.seq,
                    "b_preview": DELETED_PREVIEW if e["b_deleted"] is not None
                    else preview(e["b_text"], e["type"], e["b_content_name"])}
                   for e in edits if e["at"] is not None]
        if not updates:
            return
        changed = self.conn.execute(sa.update(c).where(
            c.c.id == sa.bindparam("b_id"),
            c.c.last_message_at == sa.bindparam("b_at", type_=c.c.last_message_at.type)).values(
            last_message_preview=sa.bindparam("b_preview", type_=c.c.last_message_preview.type),
            change_seq=sa.bindparam("b_seq", type_=c.c.change_seq.type)), sorted(updates, key=lambda u: u["b_id"]))
        if changed.rowcount:
            self.summary.chat_ids.update(u["b_id"] for u in updates)
