"""``/api/chats``: the chat list, one chat, and marking a chat read."""

from __future__ import annotations

import re
from datetime import datetime

import falcon
import sqlalchemy as sa

from host_stub.errors import ApiError
from host_stub.pagination import decode_cursor, encode_cursor, invalid_cursor
from host_stub.schemas import ChatListQuerySchema, ChatSchema, ErrorSchema
from host_stub.validation import load_query

_QUERY = ChatListQuerySchema()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ChatsResource:
    openapi = {"get": {
        "summary": "List chats, newest activity first",
        "description": "Cursor pagination (limit, cursor → next_cursor). With changed_since=N: chats created "
                       "or changed after change counter N, in change order; poll again with the returned change_seq.",
        "parameters": [{"in": "query", "schema": ChatListQuerySchema}],
        "responses": {"200": {"description": "a page of chats", "content": {"application/json": {"schema": "ChatPage"}}},
                      "422": {"description": "bad query", "content": {"application/json": {"schema": ErrorSchema}}}},
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp):
        query = load_query(_QUERY, req)
        chats = self.helpdesk.tables.chats
        limit = query["limit"]
        by_changes = "changed_since" in query
        stmt = sa.select(chats)
        if "type" in query:
            stmt = stmt.where(chats.c.type == query["type"])
        if query.get("q", "").strip():
            stmt = stmt.where(search_condition(chats, query["q"].strip()))
        stmt = self._changes(stmt, chats, query) if by_changes else self._by_activity(stmt, chats, query)
        with self.helpdesk.db.read() as conn:
            # Read the counter first: everything at or below it is committed and will be in the result.
            change_seq = self.helpdesk.db.current_change_seq_in(conn)
            rows = conn.execute(stmt.limit(limit + 1)).mappings().all()
            more = len(rows) > limit
            rows = rows[:limit]
            items = self.helpdesk.serialize_chats(conn, rows)
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = (encode_cursor("c", last["change_seq"], last["id"]) if by_changes
                           else encode_cursor("a", last["last_activity_at"].isoformat(), last["id"]))
        resp.media = {"items": items, "next_cursor": next_cursor, "change_seq": change_seq}

    @staticmethod
    def _changes(stmt, chats, query):
        """What was created or changed after the counter value, in change order."""
        stmt = stmt.where(chats.c.change_seq > query["changed_since"])
        if "cursor" in query:
            seq, last_id = decode_cursor(query["cursor"], "c", (int, int))
            stmt = stmt.where(sa.or_(chats.c.change_seq > seq,
                                     sa.and_(chats.c.change_seq == seq, chats.c.id > last_id)))
        return stmt.order_by(chats.c.change_seq, chats.c.id)

    @staticmethod
    def _by_activity(stmt, chats, query):
        """Newest activity first; ties broken by id so that no chat is skipped or repeated."""
        if "cursor" in query:
            at, last_id = decode_cursor(query["cursor"], "a", (str, int))
            at = _parse_time(at)
            # "(a < at) or (a = at and id < last_id)", written with a plain upper bound first so the
            # activity index seeks straight to the cursor; with the bare OR, SQLite and PostgreSQL
            # walk the index from the newest chat down, and a deep page costs time linear in its depth.
            stmt = stmt.where(chats.c.last_activity_at <= at,
                              sa.or_(chats.c.last_activity_at < at, chats.c.id < last_id))
        return stmt.order_by(chats.c.last_activity_at.desc(), chats.c.id.desc())


_PHONE_CHARS = re.compile(r"^[\d\s+()./-]+$")


def search_condition(chats, q: str):
    """``q`` matches the title (case-insensitive, any alphabet) or, when it looks like a phone
    number (digits and + - ( ) . spaces, at least 3 digits), the phone with formatting ignored."""
    condition = sa.func.lower(chats.c.title).like(f"%{_escape_like(q.lower())}%", escape="\\")
    digits = "".join(ch for ch in q if ch.isdigit())
    if _PHONE_CHARS.match(q) and len(digits) >= 3:
        phone = chats.c.phone
        for ch in ("+", " ", "-", "(", ")", "."):
            phone = sa.func.replace(phone, ch, "")
        condition = sa.or_(condition, phone.like(f"%{digits}%"))
    return condition


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise invalid_cursor()
    return parsed


class ChatResource:
    openapi = {
        "get": {"summary": "One chat",
                "responses": {"200": {"description": "the chat", "content": {"application/json": {"schema": "Chat"}}},
                              "404": {"description": "no such chat",
                                      "content": {"application/json": {"schema": ErrorSchema}}}}},
    }

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp, chat_id):
        with self.helpdesk.db.read() as conn:
            row = get_chat_row(self.helpdesk, conn, chat_id)
            resp.media = self.helpdesk.serialize_chats(conn, [row])[0]


class ChatReadResource:
    openapi = {"post": {
        "summary": "Mark a chat read (unread_count back to 0)",
        "responses": {"200": {"description": "the chat", "content": {"application/json": {"schema": "Chat"}}},
                      "404": {"description": "no such chat", "content": {"application/json": {"schema": ErrorSchema}}}},
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_post(self, req, resp, chat_id):
        chats = self.helpdesk.tables.chats
        with self.helpdesk.db.write() as tx:
            row = get_chat_row(self.helpdesk, tx.conn, chat_id)
            if row["unread_count"]:
                tx.conn.execute(sa.update(chats).where(chats.c.id == chat_id)
                                .values(unread_count=0, change_seq=tx.change_seq))
                tx.touched(chat_ids=[chat_id])
                row = get_chat_row(self.helpdesk, tx.conn, chat_id)
            resp.media = self.helpdesk.serialize_chats(tx.conn, [row])[0]


def get_chat_row(helpdesk, conn, chat_id: int):
    chats = helpdesk.tables.chats
    row = conn.execute(sa.select(chats).where(chats.c.id == chat_id)).mappings().first()
    if row is None:
        raise ApiError(falcon.HTTP_404, "chat_not_found", f"There is no chat {chat_id}.")
    return row
