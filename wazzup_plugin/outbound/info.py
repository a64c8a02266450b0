"""``GET /api/chats/{chat_id}/wazzup24/info``: what we know of a chat in Wazzup24.

The chat's Wazzup identity, channel and its state, the contact, message counts and the latest
outgoing statuses; with ``?iframe=1`` also a URL of Wazzup's own chat window (``POST /v3/iframe``).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from marshmallow import Schema, fields, validate

from wazzup_plugin.chat_type import CHAT_TYPE
from wazzup_plugin.client import WazzupAuthError, WazzupError
from wazzup_plugin.outbound.addresses import address_of, recipient_fields
from wazzup_plugin.outbound.context import outbound
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response, load_query
from wazzup_plugin.outbound.window import chat_window

log = logging.getLogger(__name__)
LAST_STATUSES = 10


class InfoQuerySchema(Schema):
    iframe = fields.Integer(load_default=0, validate=validate.OneOf([0, 1]),
                            metadata={"description": "1: also return a Wazzup chat-window URL"})


class InfoSchema(Schema):
    chat_id = fields.Integer()
    wazzup_chat_id = fields.String(allow_none=True)
    chat_type = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    channel = fields.Dict(allow_none=True, metadata={"description": "channel_id, transport, plain_id, state"})
    contact = fields.Dict(metadata={"description": "name, avatar_uri"})
    counts = fields.Dict(metadata={"description": "in, out, total, by_status"})
    last_statuses = fields.List(fields.Dict())
    outbox_pending = fields.Integer()
    window = fields.Dict(metadata={"description": "the WhatsApp Business 24-hour window: applies (a WABA chat), "
                                                  "open (free text may go), closes_at, last_incoming_at"})
    iframe_url = fields.String(allow_none=True)


_QUERY = InfoQuerySchema()


class InfoResource:
    openapi = {"get": {
        "summary": "What Wazzup24 knows of this chat",
        "parameters": [{"in": "query", "schema": InfoQuerySchema}],
        "responses": {"200": {"description": "chat info", "content": {"application/json": {"schema": InfoSchema}}},
                      "404": error_response("`chat_not_found`: no such chat"),
                      "409": error_response("not a Wazzup chat"),
                      "422": error_response("bad query"),
                      "502": error_response("Wazzup refused the iframe request"),
                      "503": error_response("Wazzup24 is not configured (iframe needs WAZZUP24_API_KEY)")},
    }}

    def __init__(self, helpdesk, state):
        self.helpdesk = helpdesk
        self.state = state

    @answers_problems
    def on_get(self, req, resp, chat_id):
        query = load_query(_QUERY, req)
        info = self.collect(chat_id)
        info["iframe_url"] = self.iframe_url(info, req.context.agent) if query["iframe"] else None
        resp.media = info

    def collect(self, chat_id: int) -> dict:
        chats, messages = self.helpdesk.tables.chats, self.helpdesk.tables.messages
        wc, ch, o = self.state.tables["chats"], self.state.tables["channels"], self.state.tables["outbox"]
        with self.helpdesk.db.read() as conn:
            chat = conn.execute(sa.select(chats).where(chats.c.id == chat_id)).first()
            if chat is None:
                raise Problem(404, "chat_not_found", f"There is no chat {chat_id}.")
            if chat.type != CHAT_TYPE:
                raise Problem(409, "wrong_chat_type", f"Chat {chat_id} is a {chat.type!r} chat, not a Wazzup24 chat.")
            w = conn.execute(sa.select(wc).where(wc.c.chat_id == chat_id)).first()
            channel = None
            if w is not None:
                c = conn.execute(sa.select(ch).where(ch.c.channel_id == w.channel_id)).first()
                channel = {"channel_id": w.channel_id, "transport": c.transport if c else None,
                           "plain_id": c.plain_id if c else None, "state": c.state if c else None,
                           "state_updated_at": c.updated_at.isoformat() if c and c.updated_at else None}
            counts = conn.execute(sa.select(messages.c.direction, messages.c.status, sa.func.count())
                                  .where(messages.c.chat_id == chat_id)
                                  .group_by(messages.c.direction, messages.c.status)).all()
            last = conn.execute(sa.select(messages.c.id, messages.c.status, messages.c.error_code,
                                          messages.c.error_text, messages.c.created_at)
                                .where(messages.c.chat_id == chat_id, messages.c.direction == "out")
                                .order_by(messages.c.id.desc()).limit(LAST_STATUSES)).all()
            pending = conn.execute(sa.select(sa.func.count()).select_from(o)
                                   .where(o.c.chat_id == chat_id, o.c.state == "pending")).scalar()
            window = chat_window(conn, self.helpdesk, self.state, chat_id, self.helpdesk.clock())
        by_status: dict[str, int] = {}
        totals = {"in": 0, "out": 0}
        for direction, status, n in counts:
            totals[direction] = totals.get(direction, 0) + n
            by_status[status] = by_status.get(status, 0) + n
        return {
            "chat_id": chat_id,
            "wazzup_chat_id": w.wazzup_chat_id if w else None,
            "chat_type": w.chat_type if w else None,
            "phone": chat.phone,
            "channel": channel,
            "contact": {"name": (w.contact_name if w else None) or chat.title, "avatar_uri": chat.avatar_uri},
            "counts": {**totals, "total": sum(totals.values()), "by_status": by_status},
            "last_statuses": [{"message_id": r.id, "status": r.status, "error_code": r.error_code,
                               "error_text": r.error_text, "created_at": r.created_at.isoformat()} for r in last],
            "outbox_pending": pending or 0,
            "window": window.to_json(),
        }

    def iframe_url(self, info: dict, agent) -> str:
        ctx = outbound(self.helpdesk, self.state)
        if ctx.client is None:
            raise Problem(503, "wazzup_not_configured", "Wazzup24 is not configured (WAZZUP24_API_KEY is not set).")
        chat_id = info["wazzup_chat_id"] or "".join(c for c in (info["phone"] or "") if c.isdigit())
        if not chat_id:
            raise Problem(409, "no_wazzup_identity", "This chat has no Wazzup chat id or phone to open.")
        chat_type = info["chat_type"] or "whatsapp"
        body = {"user": {"id": str(agent.id), "name": agent.display_name or agent.username}, "scope": "card",
                "filter": [{"chatType": chat_type, **recipient_fields(chat_id),
                            "name": info["contact"]["name"] or chat_id}]}
        # A chat started by phone or username has no Wazzup id yet (addresses.py): the filter names it as
        # the send does, and no chat is opened by id.
        if info["channel"] and address_of(chat_id) is None:
            body["activeChat"] = {"channelId": info["channel"]["channel_id"], "chatType": chat_type, "chatId": chat_id}
        try:
            url = ctx.client.iframe(body)
        except WazzupError as exc:
            log.warning("Wazzup24 iframe request failed: %s", exc.message,
                        extra={"context": {"chat_id": info["chat_id"]}})
            if isinstance(exc, WazzupAuthError) and exc.http_status == 403:
                # A valid key that may not use this route (reference §1, §7): a Sidecar key, say.
                reason = ("Wazzup does not allow the helpdesk's API key to open its chat window (403): the key "
                          "is valid but limited (a Sidecar key?); a full API key is needed for the chat window.")
            elif isinstance(exc, WazzupAuthError):
                reason = "Wazzup refused the helpdesk's API key (401): an administrator must check WAZZUP24_API_KEY."
            else:
                reason = f"Wazzup could not open its chat window: {exc.message}"
            raise Problem(502, "wazzup_iframe_failed", reason) from None
        log.info("Wazzup24 chat window opened", extra={"context": {"chat_id": info["chat_id"], "agent_id": agent.id}})
        return url
