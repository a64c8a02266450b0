"""``/api/chats``: the chat list, one chat, and marking a chat read."""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone

import falcon
import sqlalchemy as sa

from host_stub.auth import request_read
from host_stub.errors import ApiError
from host_stub.pagination import decode_cursor, encode_cursor, invalid_cursor
from host_stub.resources.pages import page_rows, page_select
from host_stub.schemas import ChatListQuerySchema, ErrorSchema
from host_stub.validation import load_query

_QUERY = ChatListQuerySchema()

# How to poll a list (chats or messages) without losing a change; the OpenAPI descriptions say it.
# A page's change_seq is the counter when the page was read, not the position of its last item.
POLLING_RULES = (
    "Polling: in changed_since mode, follow next_cursor until it is null, and only then poll again with "
    "changed_since set to that last page's change_seq (a page that has a next_cursor already counts the "
    "changes on the pages after it). When browsing page by page to build a first copy, keep the FIRST "
    "page's change_seq and poll from it afterwards: a change made between two pages can hit an item on a "
    "page already read (or move a chat onto one), and a later page's change_seq already counts it. An item "
    "may come more than once: the later copy replaces the earlier (same id).")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ChatsResource:
    shares_request_read = True  # GET: the agent's lookup and the page in one read transaction
    openapi = {"get": {
        "summary": "List chats, newest activity first",
        "description": "Two modes. Browsing (no changed_since): newest activity first; next_cursor pages to older "
                       "chats. Changes (changed_since=N): chats created or changed after change counter N, in change "
                       "order.\n\n" + POLLING_RULES + "\n\nA cursor works only in the mode that gave it out: a "
                       "browsing cursor sent with changed_since, or a changes cursor sent without it, answers 422 "
                       "invalid_cursor.",
        "parameters": [{"in": "query", "schema": ChatListQuerySchema}],
        "responses": {"200": {"description": "a page of chats", "content": {"application/json": {"schema": "ChatPage"}}},
                      "422": {"description": "bad query (`invalid_query`), or a cursor from another mode "
                                             "(`invalid_cursor`)",
                              "content": {"application/json": {"schema": ErrorSchema}}}},
    }}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk
        # One statement per shape of query (listing, filters, cursor), built at first use: building
        # a statement costs about as much as running it. Values go in as parameters.
        self._statements: dict[tuple, sa.Select] = {}

    def on_get(self, req, resp):
        query = load_query(_QUERY, req)
        limit = query["limit"]
        by_changes = "changed_since" in query
        params = {"b_limit": limit + 1}
        if "type" in query:
            params["b_type"] = query["type"]
        q = query.get("q", "").strip()
        if q:
            params.update(search_params(q))
        if by_changes:
            params["b_since"] = query["changed_since"]
            if "cursor" in query:
                params["b_seq"], params["b_last_id"] = decode_cursor(query["cursor"], "c", ("seq", "id"))
        elif "cursor" in query:
            at, params["b_last_id"] = decode_cursor(query["cursor"], "a", ("text", "id"))
            params["b_at"] = _parse_time(at)
        shape = (by_changes, "b_type" in params, "b_title" in params, "b_phone" in params, "b_phone_intl" in params,
                 "cursor" in query)
        stmt = self._statements.get(shape)
        if stmt is None:
            chats = self.helpdesk.tables.chats
            stmt = self._statements[shape] = _list_statement(page_select(self.helpdesk, "chat", chats), chats,
                                                             *shape)
        with request_read(req, self.helpdesk.db) as conn:
            page = page_rows(self.helpdesk, conn, "chat", self.helpdesk.tables.chats, stmt, params)
            more = len(page.rows) > limit
            rows = page.rows[:limit]
            items = page.items(self.helpdesk, conn, rows)
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = (encode_cursor("c", page.value(last, "change_seq"), page.value(last, "id")) if by_changes
                           else encode_cursor("a", page.value(last, "last_activity_at").isoformat(),
                                              page.value(last, "id")))
        resp.media = {"items": items, "next_cursor": next_cursor, "change_seq": page.change_seq}


def _list_statement(base: sa.Select, chats, by_changes: bool, by_type: bool, by_title: bool, by_phone: bool,
                    by_national: bool, after_cursor: bool):
    """The chat list's statement for one shape of query; its values are the ``b_*`` parameters.

    ``base`` selects the chats with the plugins' joinable fields and the counter (``page_select``)."""
    stmt = base
    if by_type:
        stmt = stmt.where(chats.c.type == sa.bindparam("b_type", type_=chats.c.type.type))
    if by_title:
        stmt = stmt.where(search_condition(chats, by_phone, by_national))
    if by_changes:
        # What was created or changed after the counter value, in change order.
        seq, last_id = (sa.bindparam("b_seq", type_=chats.c.change_seq.type),
                        sa.bindparam("b_last_id", type_=chats.c.id.type))
        stmt = stmt.where(chats.c.change_seq > sa.bindparam("b_since", type_=chats.c.change_seq.type))
        if after_cursor:
            stmt = stmt.where(sa.or_(chats.c.change_seq > seq, sa.and_(chats.c.change_seq == seq, chats.c.id > last_id)))
        stmt = stmt.order_by(chats.c.change_seq, chats.c.id)
    else:
        # Newest activity first; ties broken by id so that no chat is skipped or repeated.
        if after_cursor:
            at = sa.bindparam("b_at", type_=chats.c.last_activity_at.type)
            # "(a < at) or (a = at and id < last_id)", written with a plain upper bound first so the
            # activity index seeks straight to the cursor; with the bare OR, SQLite and PostgreSQL
            # walk the index from the newest chat down, and a deep page costs time linear in its depth.
            stmt = stmt.where(chats.c.last_activity_at <= at,
                              sa.or_(chats.c.last_activity_at < at,
                                     chats.c.id < sa.bindparam("b_last_id", type_=chats.c.id.type)))
        stmt = stmt.order_by(chats.c.last_activity_at.desc(), chats.c.id.desc())
    return stmt.limit(sa.bindparam("b_limit", type_=sa.Integer))


_PHONE_CHARS = re.compile(r"^[\d\s+()./-]+$")
# Russia and Kazakhstan dial "8" before a national number where the stored, international form has
# the country code "7": "8 (916) 123-45-67" is +7 916 123-45-67. Agents type numbers the way customers
# say them, so a query that starts with that trunk "8" (no "+") also finds the "7..." number.
_TRUNK_PREFIX, _COUNTRY_CODE = "8", "7"
_MIN_NATIONAL_DIGITS = 4  # "8" and three digits of the area code: shorter is no number yet


def search_params(q: str) -> dict:
    """``q`` matches the title (case-insensitive, any alphabet) or, when it looks like a phone
    number (digits and + - ( ) . spaces, at least 3 digits), the phone with formatting ignored:
    the ``b_title`` (and ``b_phone``) patterns of :func:`search_condition`. A phone typed in the
    national form "8 916 ..." also matches the stored "7916..." from its start (``b_phone_intl``)."""
    params = {"b_title": f"%{_escape_like(q.lower())}%"}
    digits = "".join(ch for ch in q if ch.isdigit())
    if _PHONE_CHARS.match(q) and len(digits) >= 3:
        params["b_phone"] = f"%{digits}%"
        if q.lstrip().startswith(_TRUNK_PREFIX) and len(digits) >= _MIN_NATIONAL_DIGITS:
            params["b_phone_intl"] = f"{_COUNTRY_CODE}{digits[1:]}%"
    return params


def search_condition(chats, by_phone: bool, by_national: bool):
    """The search's condition on ``b_title`` (and, ``by_phone``, ``b_phone``; ``by_national``,
    ``b_phone_intl``): see :func:`search_params`."""
    condition = sa.func.lower(chats.c.title).like(sa.bindparam("b_title", type_=chats.c.title.type), escape="\\")
    if by_phone:
        phone = chats.c.phone
        for ch in ("+", " ", "-", "(", ")", "."):
            phone = sa.func.replace(phone, ch, "")
        matches = [condition, phone.like(sa.bindparam("b_phone", type_=chats.c.phone.type))]
        if by_national:
            matches.append(phone.like(sa.bindparam("b_phone_intl", type_=chats.c.phone.type)))
        condition = sa.or_(*matches)
    return condition


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError
        return parsed.astimezone(timezone.utc)  # overflows for year 1 at +14:00: a time never given out
    except (ValueError, OverflowError):
        raise invalid_cursor() from None


class ChatResource:
    shares_request_read = True
    openapi = {
        "get": {"summary": "One chat",
                "responses": {"200": {"description": "the chat", "content": {"application/json": {"schema": "Chat"}}},
                              "404": {"description": "no such chat (`chat_not_found`)",
                                      "content": {"application/json": {"schema": ErrorSchema}}}}},
    }

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp, chat_id):
        with request_read(req, self.helpdesk.db) as conn:
            row = get_chat_row(self.helpdesk, conn, chat_id)
            resp.media = self.helpdesk.serialize_chats(conn, [row])[0]


class ChatReadResource:
    openapi = {"post": {
        "summary": "Mark a chat read (unread_count back to 0)",
        "responses": {"200": {"description": "the chat", "content": {"application/json": {"schema": "Chat"}}},
                      "404": {"description": "no such chat (`chat_not_found`)",
                              "content": {"application/json": {"schema": ErrorSchema}}}},
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
    row = conn.execute(_chat_statements(helpdesk.serializer, helpdesk.tables.chats)[0],
                       {"b_id": chat_id}).mappings().first()
    if row is None:
        raise _chat_not_found(chat_id)
    return row


def check_chat_exists(helpdesk, conn, chat_id: int) -> None:
    """404 unless the chat exists (reads only its id)."""
    if conn.execute(_chat_statements(helpdesk.serializer, helpdesk.tables.chats)[1], {"b_id": chat_id}).first() is None:
        raise _chat_not_found(chat_id)


def _chat_not_found(chat_id: int) -> ApiError:
    return ApiError(falcon.HTTP_404, "chat_not_found", f"There is no chat {chat_id}.")


@functools.lru_cache(maxsize=32)
def _chat_statements(serializer, chats) -> tuple[sa.Select, sa.Select]:
    """One chat by id (every column and the plugins' joinable fields; the id alone), built once per app."""
    return (serializer.select("chat", chats).where(chats.c.id == sa.bindparam("b_id", type_=chats.c.id.type)),
            sa.select(chats.c.id).where(chats.c.id == sa.bindparam("b_id", type_=chats.c.id.type)))
