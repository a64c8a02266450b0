"""``/api/chats/{chat_id}/messages``: a chat's history, what is new, and what changed."""

from __future__ import annotations

import falcon
import sqlalchemy as sa

from host_stub.errors import ApiError
from host_stub.pagination import cursor_kind, decode_cursor, encode_cursor, invalid_cursor
from host_stub.resources.chats import get_chat_row
from host_stub.schemas import ErrorSchema, MessageListQuerySchema
from host_stub.validation import load_query

_QUERY = MessageListQuerySchema()


class MessagesResource:
    openapi = {"get": {
        "summary": "A chat's messages, oldest to newest within each page",
        "description": "Without after/changed_since: the latest `limit` messages; next_cursor pages to older "
                       "history. With after=<message id>: messages newer than it; next_cursor pages forward. "
                       "With changed_since=N: messages created or changed (status, edit) after change counter N.",
        "parameters": [{"in": "query", "schema": MessageListQuerySchema}],
        "responses": {"200": {"description": "a page of messages",
                              "content": {"application/json": {"schema": "MessagePage"}}},
                      "404": {"description": "no such chat", "content": {"application/json": {"schema": ErrorSchema}}},
                      "422": {"description": "bad query", "content": {"application/json": {"schema": ErrorSchema}}}},
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp, chat_id):
        query = load_query(_QUERY, req)
        messages = self.helpdesk.tables.messages
        limit = query["limit"]
        mode = _mode(query)
        stmt = sa.select(messages).where(messages.c.chat_id == chat_id)
        if mode == "c":
            stmt = stmt.where(messages.c.change_seq > query["changed_since"])
            if "cursor" in query:
                seq, last_id = decode_cursor(query["cursor"], "c", (int, int))
                stmt = stmt.where(sa.or_(messages.c.change_seq > seq,
                                         sa.and_(messages.c.change_seq == seq, messages.c.id > last_id)))
            stmt = stmt.order_by(messages.c.change_seq, messages.c.id)
        elif mode == "f":
            after = query.get("after", 0)
            if "cursor" in query:
                after = max(after, decode_cursor(query["cursor"], "f", (int,))[0])
            stmt = stmt.where(messages.c.id > after).order_by(messages.c.id)
        else:  # "b": the latest page, or older history before the cursor
            if "cursor" in query:
                stmt = stmt.where(messages.c.id < decode_cursor(query["cursor"], "b", (int,))[0])
            stmt = stmt.order_by(messages.c.id.desc())
        with self.helpdesk.db.read() as conn:
            change_seq = self.helpdesk.db.current_change_seq_in(conn)
            get_chat_row(self.helpdesk, conn, chat_id)
            rows = conn.execute(stmt.limit(limit + 1)).mappings().all()
            more = len(rows) > limit
            rows = rows[:limit]
            if mode == "b":
                rows = list(reversed(rows))
            items = self.helpdesk.serialize_messages(conn, rows)
        next_cursor = None
        if more:
            if mode == "c":
                next_cursor = encode_cursor("c", rows[-1]["change_seq"], rows[-1]["id"])
            elif mode == "f":
                next_cursor = encode_cursor("f", rows[-1]["id"])
            else:
                next_cursor = encode_cursor("b", rows[0]["id"])
        resp.media = {"items": items, "next_cursor": next_cursor, "change_seq": change_seq}


def _mode(query) -> str:
    """``c`` changes since a counter, ``f`` forward after an id, ``b`` backward into history."""
    if "changed_since" in query:
        if "after" in query:
            raise ApiError(falcon.HTTP_422, "invalid_query", "Give either after or changed_since, not both.",
                           fields={"after": ["not allowed with changed_since"]})
        return "c"
    if "after" in query:
        return "f"
    if "cursor" in query:
        kind = cursor_kind(query["cursor"])
        if kind == "c":
            raise invalid_cursor("This cursor pages changes: send it with the same changed_since.")
        if kind not in ("b", "f"):
            raise invalid_cursor()
        return kind
    return "b"
