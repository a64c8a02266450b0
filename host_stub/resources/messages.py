"""``/api/chats/{chat_id}/messages``: a chat's history, what is new, and what changed."""

from __future__ import annotations

import falcon
import sqlalchemy as sa

from host_stub.auth import request_read
from host_stub.errors import ApiError
from host_stub.pagination import cursor_kind, decode_cursor, encode_cursor, invalid_cursor
from host_stub.resources.chats import POLLING_RULES, check_chat_exists
from host_stub.resources.pages import page_rows, page_select
from host_stub.schemas import ErrorSchema, MessageListQuerySchema
from host_stub.validation import load_query

_QUERY = MessageListQuerySchema()


class MessagesResource:
    shares_request_read = True  # GET: the agent's lookup and the page in one read transaction
    openapi = {"get": {
        "summary": "A chat's messages, oldest to newest within each page",
        "description": "Three modes. History (neither after nor changed_since): the latest `limit` messages; "
                       "next_cursor pages to older history. Forward (after=<message id>): messages newer than it; "
                       "next_cursor pages forward. Changes (changed_since=N): messages created or changed (status, "
                       "edit) after change counter N, in change order. after and changed_since exclude each other: "
                       "both answer 422 invalid_query.\n\n" + POLLING_RULES + "\n\nA cursor works only in the "
                       "mode that gave it out (send it with the parameters it came with): a cursor from another "
                       "mode answers 422 invalid_cursor.",
        "parameters": [{"in": "query", "schema": MessageListQuerySchema}],
        "responses": {"200": {"description": "a page of messages",
                              "content": {"application/json": {"schema": "MessagePage"}}},
                      "404": {"description": "no such chat (`chat_not_found`)",
                              "content": {"application/json": {"schema": ErrorSchema}}},
                      "422": {"description": "bad query (`invalid_query`; also after with changed_since), or a "
                                             "cursor from another mode (`invalid_cursor`)",
                              "content": {"application/json": {"schema": ErrorSchema}}}},
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk
        # One statement per mode (with or without a cursor), built at first use; values are parameters.
        self._statements: dict[tuple, sa.Select] = {}

    def on_get(self, req, resp, chat_id):
        query = load_query(_QUERY, req)
        limit = query["limit"]
        mode = _mode(query)
        params = {"b_chat_id": chat_id, "b_limit": limit + 1}
        if mode == "c":
            params["b_since"] = query["changed_since"]
            if "cursor" in query:
                params["b_seq"], params["b_last_id"] = decode_cursor(query["cursor"], "c", ("seq", "id"))
        elif mode == "f":
            after = query.get("after", 0)
            if "cursor" in query:
                after = max(after, decode_cursor(query["cursor"], "f", ("id",))[0])
            params["b_after"] = after
        elif "cursor" in query:  # "b": older history before the cursor
            params["b_before"] = decode_cursor(query["cursor"], "b", ("id",))[0]
        shape = (mode, "b_seq" in params or "b_before" in params)
        stmt = self._statements.get(shape)
        if stmt is None:
            messages = self.helpdesk.tables.messages
            stmt = self._statements[shape] = _page_statement(page_select(self.helpdesk, "message", messages),
                                                             messages, *shape)
        with request_read(req, self.helpdesk.db) as conn:
            page = page_rows(self.helpdesk, conn, "message", self.helpdesk.tables.messages, stmt, params)
            if not page.rows:  # a page with messages proves its chat exists; an empty one may be a 404
                check_chat_exists(self.helpdesk, conn, chat_id)
            more = len(page.rows) > limit
            rows = page.rows[:limit]
            if mode == "b":
                rows.reverse()
            items = page.items(self.helpdesk, conn, rows)
        next_cursor = None
        if more:
            if mode == "c":
                next_cursor = encode_cursor("c", page.value(rows[-1], "change_seq"), page.value(rows[-1], "id"))
            elif mode == "f":
                next_cursor = encode_cursor("f", page.value(rows[-1], "id"))
            else:
                next_cursor = encode_cursor("b", page.value(rows[0], "id"))
        resp.media = {"items": items, "next_cursor": next_cursor, "change_seq": page.change_seq}


def _page_statement(base: sa.Select, messages, mode: str, after_cursor: bool):
    """A page of one chat's messages in a mode (``c``, ``f`` or ``b``); values are the ``b_*`` parameters.

    ``base`` selects the messages with the plugins' joinable fields and the counter (``page_select``)."""
    stmt = base.where(messages.c.chat_id == sa.bindparam("b_chat_id", type_=messages.c.chat_id.type))
    if mode == "c":
        seq_type = messages.c.change_seq.type
        stmt = stmt.where(messages.c.change_seq > sa.bindparam("b_since", type_=seq_type))
        if after_cursor:
            seq = sa.bindparam("b_seq", type_=seq_type)
            stmt = stmt.where(sa.or_(messages.c.change_seq > seq, sa.and_(
                messages.c.change_seq == seq, messages.c.id > sa.bindparam("b_last_id", type_=messages.c.id.type))))
        stmt = stmt.order_by(messages.c.change_seq, messages.c.id)
    elif mode == "f":
        stmt = stmt.where(messages.c.id > sa.bindparam("b_after", type_=messages.c.id.type)).order_by(messages.c.id)
    else:  # "b": the latest page, or older history before the cursor
        if after_cursor:
            stmt = stmt.where(messages.c.id < sa.bindparam("b_before", type_=messages.c.id.type))
        stmt = stmt.order_by(messages.c.id.desc())
    return stmt.limit(sa.bindparam("b_limit", type_=sa.Integer))


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
