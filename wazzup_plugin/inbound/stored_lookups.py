"""Looking up a delivery's stored messages and chats (read only: before the write lock, or under it)."""

from __future__ import annotations

from collections import namedtuple
from typing import TYPE_CHECKING

import sqlalchemy as sa

from wazzup_plugin.driver_sql import DriverStatement, one_of
from wazzup_plugin.inbound.id_chunks import chunks
from wazzup_plugin.inbound.parse import Message
from wazzup_plugin.store_common import built

if TYPE_CHECKING:
    from wazzup_plugin.inbound.store import Prefetched


class StoredLookups:
    """``Writer``'s lookups of stored messages (by Wazzup id) and chats (by channel, chat type and chat id).

    Relies on these of ``Writer``: ``conn``, ``t``, ``chats``, ``messages`` and ``_driver_statement``.
    """

    def _stored_after_prefetch(self, newest: dict[str, Message], prefetched: "Prefetched") -> dict[str, tuple]:
        """Stored rows of this delivery's messages, reusing what the lookup before the transaction found.

        A message found then is still stored (messages are never deleted); its row is reused as is for
        a plain copy, which changes nothing. Echoes (they settle sends and carry statuses) and edits or
        deletions need the row as it is now, so they are looked up again. A message not found then
        may have been stored since: the insert-or-ignore finds that out (``_insert_messages``).
        """
        existing, again = {}, {}
        for wid, msg in newest.items():
            if msg.is_echo or (wid in prefetched.stored and (msg.is_edited or msg.is_deleted)):
                again[wid] = msg
            elif wid in prefetched.stored:
                existing[wid] = prefetched.stored[wid]
        if again:
            existing.update(self._stored_messages(again))
        return existing

    def _stored_select(self) -> sa.Select:
        wm, m = self.t["messages"], self.messages
        return (sa.select(wm.c.message_id, wm.c.wazzup_message_id, wm.c.chat_id, wm.c.version_at,
                          m.c.status, m.c.text, m.c.previous_text, m.c.edited_at, m.c.deleted_at,
                          m.c.type, m.c.content_uri, m.c.content_name, m.c.content_type, m.c.messenger_at)
                .join(m, m.c.id == wm.c.message_id))

    def _one_stored_message_statement_select(self) -> sa.Select:
        wm = self.t["messages"]
        return self._stored_select().where(
            wm.c.wazzup_message_id == sa.bindparam("b_wid", type_=wm.c.wazzup_message_id.type))

    def _one_stored_message_statement(self) -> DriverStatement:
        """The stored row of one Wazzup id, ``b_wid`` (``=``, on the driver: the usual delivery's lookup)."""
        return self._driver_statement("stored_message", self._one_stored_message_statement_select)

    def _one_stored_message(self, wid: str) -> dict[str, tuple]:
        return {r.wazzup_message_id: r for r in self._one_stored_message_statement().rows(self.conn, {"b_wid": wid})}

    def _one_chat_select(self) -> sa.Select:
        wc = self.t["chats"]
        return self._chats_select().where(
            wc.c.channel_id == sa.bindparam("b_channel", type_=wc.c.channel_id.type),
            wc.c.chat_type == sa.bindparam("b_type", type_=wc.c.chat_type.type),
            wc.c.wazzup_chat_id == sa.bindparam("b_chat", type_=wc.c.wazzup_chat_id.type))

    def _one_chat_statement(self) -> DriverStatement:
        """The chat of one (channel, chat type, chat id) key (``=``, on the driver)."""
        return self._driver_statement("find_chat", self._one_chat_select)

    @staticmethod
    def _chat_found(key: tuple, rows) -> dict[tuple, dict]:
        return {key: rows[0]._asdict()} if rows else {}

    def lookup_one(self, wid: str, key: tuple) -> tuple[dict[str, tuple], dict[tuple, dict]]:
        """One message's stored row and, when it is not stored, its chat.

        Over a network (PostgreSQL): both in one statement, one round trip. On SQLite, where a
        statement costs no round trip, the chat is looked up only for a new message (a redelivery
        needs no chat)."""
        chat_values = {"b_channel": key[0], "b_type": key[1], "b_chat": key[2]}
        if self.conn.dialect.name == "sqlite":
            stored = self._one_stored_message(wid)
            return stored, {} if stored else self._chat_found(key, self._one_chat_statement().rows(self.conn, chat_values))
        stmt, stored_row, chat_row = self._one_message_and_chat_statement()
        (row,) = stmt.rows(self.conn, {"b_wid": wid, **chat_values})
        n = len(stored_row._fields)
        if row[0] is not None:  # the stored message's id (a primary key: never NULL when found)
            return {wid: stored_row._make(row[:n])}, {}
        return {}, ({} if row[n] is None else {key: chat_row._make(row[n:])._asdict()})

    def _one_message_and_chat_statement(self):
        """``(statement, stored row type, chat row type)``: the stored row of one Wazzup id and the chat
        of one key side by side in one row (NULLs for a miss; both keys are unique)."""
        def build():
            stored = self._one_stored_message_statement_select().subquery("stored")
            chat = self._one_chat_select().subquery("chat")
            one = sa.select(sa.literal_column("1").label("one")).subquery("one")
            stmt = (sa.select(*[c.label(f"s_{c.name}") for c in stored.c], *[c.label(f"c_{c.name}") for c in chat.c])
                    .select_from(one.outerjoin(stored, sa.true()).outerjoin(chat, sa.true())))
            return (DriverStatement(stmt, self.conn.dialect), namedtuple("StoredRow", [c.name for c in stored.c]),
                    namedtuple("ChatRow", [c.name for c in chat.c]))
        return built(self.t["messages"], ("inbound-driver", "stored_message_and_chat", self.conn.dialect.name), build)

    def _stored_messages(self, by_id) -> dict[str, tuple]:
        wm = self.t["messages"]
        found = {}
        if len(by_id) == 1:  # the usual delivery
            (wid,) = by_id
            return self._one_stored_message(wid)
        stmt = self._driver_statement("stored_messages", lambda: self._stored_select().where(
            one_of(wm.c.wazzup_message_id, "b_wids", self.conn.dialect)))
        for part in chunks(sorted(by_id)):
            found.update({r.wazzup_message_id: r for r in stmt.rows(self.conn, {"b_wids": part})})
        return found

    def _chats_select(self) -> sa.Select:
        wc, c = self.t["chats"], self.chats
        return (sa.select(wc.c.chat_id, wc.c.channel_id, wc.c.chat_type, wc.c.wazzup_chat_id,
                          wc.c.contact_name, c.c.avatar_uri, c.c.last_message_at, c.c.last_activity_at)
                .join(c, c.c.id == wc.c.chat_id))

    def _find_chats(self, keys) -> dict[tuple, dict]:
        wc = self.t["chats"]
        found = {}
        if not keys:
            return found
        if len(keys) == 1:  # the usual delivery: ``=`` spares the per-call rewrite of three expanding INs
            (key,) = keys
            rows = self._one_chat_statement().rows(self.conn, {"b_channel": key[0], "b_type": key[1], "b_chat": key[2]})
            return self._chat_found(key, rows)
        for part in chunks(keys):
            # One IN per key column, not a row-value IN: SQLite answers ``(a, b, c) IN (VALUES ...)``
            # of two or more keys by scanning every chat, while per-column INs seek the unique index.
            # The result may hold other combinations of those values: only the asked keys are kept.
            wanted = set(part)
            dialect = self.conn.dialect
            stmt = self._driver_statement("find_chats", lambda: self._chats_select().where(
                one_of(wc.c.channel_id, "b_channels", dialect), one_of(wc.c.chat_type, "b_types", dialect),
                one_of(wc.c.wazzup_chat_id, "b_chats", dialect)))
            rows = stmt.rows(self.conn, {"b_channels": sorted({k[0] for k in part}),
                                         "b_types": sorted({k[1] for k in part}),
                                         "b_chats": sorted({k[2] for k in part})})
            for r in rows:
                key = (r.channel_id, r.chat_type, r.wazzup_chat_id)
                if key in wanted:
                    found[key] = r._asdict()
        return found
