"""``/api/chats/{chat_id}/messages``: a chat's history, what is new, and what changed."""

from __future__ import annotations

import sqlalchemy as sa

from host_stub.pagination import decode_cursor, encode_cursor
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

    def __init__(self, helpdesk, serializer):
        self.helpdesk = helpdesk
        self.serializer = serializer

    def on_get(self, req, resp, chat_id):
        query = load_query(_QUERY, req)
        messages = self.helpdesk.tables.messages
        limit = query["limit"]
        with self.helpdesk.db.read() as conn:
            change_seq = self.helpdesk.db.current_change_seq_in(conn)
            get_chat_row(self.helpdesk, conn, chat_id)
            stmt = sa.select(messages).where(messages.c.chat_id == chat_id)
            if "changed_since" in query:
                mode = "changes"
                stmt = stmt.where(messages.c.change_seq > query["changed_since"])
                if "cursor" in query:
                    seq, last_id = decode_cursor(query["cursor"], (int, int))
                    stmt = stmt.where(sa.tuple_(messages.c.change_seq, messages.c.id) > sa.tuple_(seq, last_id))
                stmt = stmt.order_by(messages.c.change_seq, messages.c.id)
            elif "after" in query or ("cursor" in query and query["cursor"].startswith("f")):
                mode = "forward"
                after = query.get("after", 0)
                if "cursor" in query:
                    after = max(after, decode_cursor(query["cursor"][1:], (int,))[0])
                stmt = stmt.where(messages.c.id > after).order_by(messages.c.id)
            else:
                mode = "older"
                if "cursor" in query:
                    before = decode_cursor(query["cursor"].removeprefix("b"), (int,))[0]
                    stmt = stmt.where(messages.c.id < before)
                stmt = stmt.order_by(messages.c.id.desc())
            rows = conn.execute(stmt.limit(limit + 1)).mappings().all()
            more = len(rows) > limit
            rows = rows[:limit]
            if mode == "older":
                rows = list(reversed(rows))
            items = self.serializer.messages(conn, rows)
        next_cursor = None
        if more:
            if mode == "changes":
                next_cursor = encode_cursor(rows[-1]["change_seq"], rows[-1]["id"])
            elif mode == "forward":
                next_cursor = "f" + encode_cursor(rows[-1]["id"])
            else:
                next_cursor = "b" + encode_cursor(rows[0]["id"])
        resp.media = {"items": items, "next_cursor": next_cursor, "change_seq": change_seq}
