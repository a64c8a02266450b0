"""``POST /api/chats/{chat_id}/wazzup24/send`` and ``.../messages/{message_id}/resend``.

The message is stored and committed first, then this request makes the first attempt itself
(holding the outbox lease). Answers: 201 accepted by Wazzup; 202 stored and waiting for a retry
by the worker; 4xx when Wazzup refused it for good (the message stays ``failed`` with the reason);
502 when Wazzup refused our API key; 503 when no API key is configured (nothing is stored then:
the agent keeps the text and nothing is silently lost).

With ``Prefer: respond-async`` (RFC 7240) the answer is 202 as soon as the message is stored, and the
outbox worker sends it, at the rate limit, in the chat's order: for an integrator sending in bulk, who
follows the message's status instead of holding a web worker while Wazzup answers each message. The
agents' UI keeps the default, so that a refusal is said at once where the agent typed.
"""

from __future__ import annotations

import math
import re

import hashlib
import json
import logging
import posixpath
import uuid
from urllib.parse import unquote, urlsplit

import falcon
import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from wazzup_plugin.chat_type import CHAT_TYPE
from wazzup_plugin.inbound.message_rows import is_placeholder
from wazzup_plugin.outbound import outbox, users
from wazzup_plugin.outbound.channels import ChannelNeedsAPerson
from wazzup_plugin.outbound.context import outbound
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response, load_body, prefers_async
from wazzup_plugin.outbound.serialize import message_json
from wazzup_plugin.outbound.stored_files import (
    StoredFile, expired_here, file_at_url, file_for_send, mark_sent, not_configured, public_url, served_here)
from wazzup_plugin.outbound.templates import MAX_VALUE as MAX_TEMPLATE_VALUE
from wazzup_plugin.outbound.templates import chosen_template, not_waba, stored_template
from wazzup_plugin.outbound.window import ChatChannel, Window, chat_channel, chat_window
from wazzup_plugin.store_common import built
from wazzup_plugin.text_limits import BY_CHAT_TYPE, LONGEST, WABA, text_limit, too_long_reason

log = logging.getLogger(__name__)

# The longest text any chat takes, in Unicode code points (len() of a str), as the UI counts; each
# chat's own limit (its messenger's: wazzup_plugin/text_limits.py) is checked once the chat is read.
MAX_TEXT = LONGEST
_ALL_LIMITS = (*BY_CHAT_TYPE.values(), WABA)
MAX_KEY = 200
_EXTENSIONS = {
    "image": ("jpg", "jpeg", "png", "gif", "webp", "bmp", "heic"),
    "video": ("mp4", "mov", "3gp", "avi", "mkv", "webm", "m4v"),
    "audio": ("mp3", "ogg", "oga", "opus", "m4a", "aac", "wav", "amr"),
}


# Blank characters, spelt out: regex engines disagree about \s (Python, ECMAScript and Rust each
# have their own set), so the OpenAPI patterns and the server use this one list literally.
_BLANK = "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" \
         "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_NOT_BLANK = f"[^{_BLANK}]"
_URL_CHAR = f"[^{_BLANK}\x00-\x1f\x7f-\x9f]"  # no blanks or controls: urlsplit would drop some silently
_HTTP_URL = re.compile(f"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#{_BLANK}\x00-\x1f\x7f-\x9f]+{_URL_CHAR}*$")


def _http_url(value: str) -> None:
    try:
        netloc = urlsplit(value).netloc
    except ValueError:  # e.g. an unclosed IPv6 bracket
        netloc = ""
    if not _HTTP_URL.fullmatch(value) or not netloc:
        raise ValidationError("must be an http(s) URL")


WEB_OWNER = "web:"  # the lease a send request holds on its message while it makes the first attempt

# The host's message ids are INTEGER columns (four bytes on PostgreSQL): a larger id names no message,
# and binding one fails the statement.
MAX_MESSAGE_ID = 2**31 - 1


# What a send carries: exactly one of these (each is a kind of message).
ALTERNATIVES = ("text", "content_uri", "template_id", "file_id")
MAX_TEMPLATE_VALUES = 100


class SendSchema(Schema):
    text = fields.String(validate=validate.Length(max=MAX_TEXT),
                         metadata={"description": f"message text, at most {MAX_TEXT} characters (code points), "
                                                         "and at most what the chat's messenger takes"})
    content_uri = fields.String(validate=[validate.Length(max=2000), _http_url],
                                metadata={"description": "public http(s) URL of a file Wazzup downloads"})
    content_name = fields.String(validate=validate.Length(max=500),
                                 metadata={"description": "file name shown in the helpdesk (default: the uploaded file's, or from the URL)"})
    reply_to = fields.Integer(strict=True, validate=validate.Range(1, MAX_MESSAGE_ID),
                              metadata={"description": "id of a message in this chat to quote"})
    file_id = fields.Integer(strict=True, validate=validate.Range(1, MAX_MESSAGE_ID),
                             metadata={"description": "id of a file uploaded to this chat (POST .../wazzup24/files)"})
    template_id = fields.String(validate=validate.Length(1, 64),
                                metadata={"description": "a WhatsApp Business template's id (the chat's templates "
                                                         "route lists them)"})
    template_values = fields.List(fields.String(validate=validate.Length(max=MAX_TEMPLATE_VALUE)),
                                  validate=validate.Length(max=MAX_TEMPLATE_VALUES),
                                  metadata={"description": "the template's variables {{1}}, {{2}}... in order"})

    @validates_schema
    def exactly_one(self, data, **kwargs):
        text = data.get("text")
        if text is not None and not text.strip(_BLANK):
            raise ValidationError("must not be blank", field_name="text")
        if sum(data.get(name) is not None for name in ALTERNATIVES) != 1:
            raise ValidationError(f"send exactly one of {', '.join(ALTERNATIVES)}", field_name="_schema")
        if data.get("template_values") is not None and data.get("template_id") is None:
            raise ValidationError("only with template_id", field_name="template_values")
        values = data.get("template_values") or ()
        wrong = [why for n, v in enumerate(values, 1) if (why := _template_value_problem(n, v))]
        if wrong:
            raise ValidationError(wrong, field_name="template_values")


# WhatsApp (Meta) refuses a template whose values hold a line break or a tab, or more than four spaces
# in a row (its error 132018); Wazzup would accept the send and report the refusal later, after the
# agent was told it went out.
_LINE_BREAK_OR_TAB = re.compile(r"[\n\r\t\v\f\u2028\u2029\x85]")
_FIVE_SPACES = re.compile(r" {5}")


def _template_value_problem(n: int, value: str) -> str | None:
    """Why the ``n``-th template value cannot go (None: it can)."""
    if not value.strip(_BLANK):
        return f"value {n} is blank"
    if _LINE_BREAK_OR_TAB.search(value):
        return f"value {n} has a line break or a tab: WhatsApp takes a template's values on one line"
    if _FIVE_SPACES.search(value):
        return f"value {n} has more than 4 spaces in a row, which WhatsApp refuses in a template's values"
    return None


def _only(name: str) -> dict:
    """One alternative of the body, as the server checks it: ``name`` and none of the others (and
    ``template_values`` only with ``template_id``)."""
    others = [o for o in ALTERNATIVES if o != name] + ([] if name == "template_id" else ["template_values"])
    return {"required": [name], "not": {"anyOf": [{"required": [o]} for o in others]}}


# The request body as the OpenAPI document states it (marshmallow cannot express "exactly one of").
SEND_BODY_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": _NOT_BLANK,
                 "description": f"message text, at most {MAX_TEXT} characters (code points) and at most "
                                "what the chat's messenger takes (Telegram 4096, Instagram 1000, ...: "
                                "the connection report's text_limits); not blank"},
        "content_uri": {"type": "string", "maxLength": 2000, "pattern": _HTTP_URL.pattern,
                        "description": "public http(s) URL of a file Wazzup downloads"},
        "content_name": {"type": "string", "maxLength": 500,
                         "description": "file name shown in the helpdesk (default: the uploaded file's, or from the URL)"},
        "reply_to": {"type": "integer", "minimum": 1, "maximum": MAX_MESSAGE_ID,
                     "description": "id of a message in this chat to quote"},
        "file_id": {"type": "integer", "minimum": 1, "maximum": MAX_MESSAGE_ID,
                    "description": "id of a file uploaded to this chat (POST .../wazzup24/files): sent as its "
                                   "public URL, with its name and type"},
        "template_id": {"type": "string", "minLength": 1, "maxLength": 64,
                        "description": "a WhatsApp Business template's id (GET .../wazzup24/templates lists the "
                                       "chat's approved ones); the only kind of message a WABA chat takes once its "
                                       "24-hour window is closed"},
        "template_values": {"type": "array", "maxItems": MAX_TEMPLATE_VALUES,
                            "items": {"type": "string", "minLength": 1, "maxLength": MAX_TEMPLATE_VALUE,
                                      "pattern": _NOT_BLANK},
                            "description": "the template's variables {{1}}, {{2}}... in order, as many as it has"},
    },
    "oneOf": [_only(name) for name in ALTERNATIVES],
}


_SEND = SendSchema()


def guess_type(uri: str) -> tuple[str, str]:
    """The message type and file name a content URI suggests (Wazzup decides the real type)."""
    name = unquote(posixpath.basename(urlsplit(uri).path)).replace("\x00", "") or "file"  # %00 decodes to NUL
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    for kind, extensions in _EXTENSIONS.items():
        if ext in extensions:
            return kind, name[:500]
    return "document", name[:500]


OPENAPI_ERRORS = {
    "202": {"description": "stored; Wazzup could not be reached, the worker retries it; always for a file "
                           "uploaded here (file_id): the outbox worker sends it, as Wazzup downloads it from us; "
                           "and with `Prefer: respond-async`: the outbox worker sends it (`Preference-Applied`)",
            "content": {"application/json": {"schema": "Message"}}},
    "404": error_response("`chat_not_found`: no such chat; `message_not_found` (resend): no such message in it"),
    "409": error_response("not a Wazzup chat, a channel problem, or an Idempotency-Key still in progress; "
                          "`wazzup_window_closed`: a WhatsApp Business chat's 24-hour window is closed (only a "
                          "template goes, nothing was stored); `not_waba_chat`: a template to another chat"),
    "422": error_response("bad body (`wazzup_file_expired`: the file_id's file was deleted by retention), or "
                          "Wazzup refused the message (code in wazzup_code)"),
    "429": error_response("`wazzup_outbox_full`: `Prefer: respond-async` while WAZZUP24_ASYNC_BACKLOG messages "
                          "wait in the outbox (`Retry-After` says when to repeat); nothing was stored"),
    "502": error_response("Wazzup refused our API key"),
    "503": error_response("Wazzup24 is not configured (WAZZUP24_API_KEY)"),
}
# What an operation that reads a JSON body adds (nothing is stored or sent on these).
BODY_ERRORS = {
    "400": error_response("the body is not a JSON object"),
    "413": error_response("the body is over the size limit (`payload_too_large`)"),
    "415": error_response("the body is not `application/json` in UTF-8 (`unsupported_media_type`)"),
}
IDEMPOTENCY_PARAM = {"in": "header", "name": "Idempotency-Key", "required": False,
                     "schema": {"type": "string", "maxLength": MAX_KEY},
                     "description": "repeat a request safely: a repeat returns the first result and sends nothing"}
PREFER_PARAM = {"in": "header", "name": "Prefer", "required": False, "schema": {"type": "string"},
                "example": "respond-async",
                "description": "`respond-async` (RFC 7240): answer 202 with the message as stored (`queued`), "
                               "with `Preference-Applied: respond-async`; the outbox worker sends it (at the rate "
                               "limit, in the chat's order), and Wazzup's verdict reaches the message (its status, "
                               "error_code and error_text) and the change feed. Refusals found before storing are "
                               "the same 4xx; a channel that needs a person is reported on the message."}


class _SendBase:
    def __init__(self, helpdesk, state):
        self.helpdesk = helpdesk
        self.state = state

    def _chat(self, conn, chat_id: int):
        chats = self.helpdesk.tables.chats
        chat = conn.execute(built(chats, "send_chat", lambda: sa.select(chats.c.id, chats.c.type).where(
            chats.c.id == sa.bindparam("b_id", type_=chats.c.id.type))), {"b_id": chat_id}).first()
        self._check_chat(chat_id, chat)
        return chat

    def _still_there(self, chat_id: int) -> None:
        """404 when the chat went after it was checked: a chat started by phone or username is removed once
        Wazzup names it after a chat the helpdesk has, its messages moved there (``addresses.py``)."""
        with self.helpdesk.db.read() as conn:
            self._chat(conn, chat_id)

    @staticmethod
    def _check_chat(chat_id: int, chat) -> None:
        """404 for no chat, 409 for a chat of another type (``chat``: a row with ``type``, or None)."""
        if chat is None:
            raise Problem(404, "chat_not_found", f"There is no chat {chat_id}.")
        if chat.type != CHAT_TYPE:
            raise Problem(409, "wrong_chat_type",
                          f"Chat {chat_id} is a {chat.type!r} chat; only {CHAT_TYPE!r} chats send through Wazzup24.")

    @staticmethod
    def _check_text(channel, text: str | None) -> None:
        """Refuse a text longer than the chat's messenger takes (422 on ``text``, nothing stored):
        Wazzup would refuse it (MESSAGES_TOO_LONG_TELEGRAM, ...) after the agent was told it was sent.
        ``channel``: the chat's :func:`chat_channel` row (None: not a chat Wazzup knows yet)."""
        if text is None or len(text) <= min(t.limit for t in _ALL_LIMITS):
            return
        limit = text_limit(*((channel.chat_type, channel.transport) if channel is not None else (None, None)))
        if len(text) > limit.limit:
            raise Problem(422, "invalid_body", "The request body is not valid.",
                          fields={"text": [too_long_reason(limit, len(text))]})

    def _uploaded(self, conn, chat_id: int, file_id: int | None) -> StoredFile | None:
        """The uploaded file a send names (``file_id``), of this chat only; None when it names none."""
        if file_id is None:
            return None
        if self.state.settings.public_url is None:
            raise not_configured()
        return file_for_send(conn, self.state, chat_id, file_id)

    @staticmethod
    def _check_window(window: Window, template: tuple | None) -> None:
        """Refuse a free text or a file to a WABA chat whose 24-hour window is closed (409, nothing stored):
        Wazzup would take it and report ``24_HOURS_EXCEEDED`` later, after the agent was told it was sent.
        A template goes at any time; the worker's retries of a stored message are not checked."""
        if template is None and window.applies and not window.open:
            raise Problem(409, "wazzup_window_closed", window.closed_reason(), window=window.to_json())

    def _template(self, chat_id: int, window: Window, template_id: str | None, values: list[str] | None):
        """(template id, values, the text filled in) of a template send, checked; None for any other send."""
        if template_id is None:
            return None
        if not window.applies:
            raise not_waba(chat_id)
        template = chosen_template(outbound(self.helpdesk, self.state), window.channel_id, template_id, values)
        values = values or []
        return template.id, values, template.render(values)

    def _send_chat(self, conn, chat_id: int, now, backlog: int | None = None) -> tuple:
        """What a send checks about its chat, in one read: the chat (:meth:`_check_chat`), its
        :func:`chat_channel` row (None: no Wazzup identity yet), whether a message of the chat is
        waiting in the outbox for the worker (queued or retried), and, given ``backlog``, whether at
        least that many messages wait in the outbox (:meth:`_outbox_full`).

        A message another send request is sending right now (a live ``web:`` lease) does not count as
        waiting: the two are as simultaneous as their agents' clicks, and queueing this one would only
        turn its 201 into a 202 without ordering anything (the worker could send it before that call ends)."""
        chats, wc, ch, o = (self.helpdesk.tables.chats, self.state.tables["chats"], self.state.tables["channels"],
                            self.state.tables["outbox"])

        def build():
            # 'pending' as a literal: the planner proves the partial index of pending rows (few) applies.
            pending = o.c.state == sa.literal_column("'pending'")
            waiting = sa.exists().where(
                pending, o.c.chat_id == chats.c.id,
                # OR, not NOT(AND): an unleased row has NULLs there, and NOT of NULL would hide it.
                sa.or_(o.c.lease_until.is_(None), o.c.lease_until <= sa.bindparam("b_now", type_=o.c.lease_until.type),
                       sa.not_(o.c.lease_owner.startswith(WEB_OWNER, autoescape=True))))
            # The backlog's nth row, if there is one: an index walk of n entries at most, not a count.
            full = (sa.exists(sa.select(o.c.message_id).where(pending)
                              .limit(1).offset(sa.bindparam("b_backlog", type_=sa.Integer()))) if backlog
                    else sa.false())
            return (sa.select(chats.c.type, wc.c.chat_id.label("wazzup_row"), wc.c.channel_id, wc.c.chat_type,
                              ch.c.transport, waiting.label("waiting"), full.label("full"))
                    .select_from(chats.outerjoin(wc, wc.c.chat_id == chats.c.id)
                                 .outerjoin(ch, ch.c.channel_id == wc.c.channel_id))
                    .where(chats.c.id == sa.bindparam("b_id", type_=chats.c.id.type)))

        params = {"b_id": chat_id, "b_now": now, **({"b_backlog": backlog - 1} if backlog else {})}
        row = conn.execute(built(chats, ("send_chat_checks", bool(backlog)), build), params).first()
        self._check_chat(chat_id, row)
        channel = None if row.wazzup_row is None else ChatChannel(row.channel_id, row.chat_type, row.transport)
        return channel, bool(row.waiting), bool(row.full)

    def _async_backlog(self, req) -> int | None:
        """The outbox's bound for a ``Prefer: respond-async`` request (None for any other)."""
        return self.state.settings.async_backlog if prefers_async(req) else None

    @staticmethod
    def _lane(req) -> int:
        """The outbox lane of what this request stores: an integrator's respond-async send waits behind
        what agents send (outbox.LANE_BULK)."""
        return outbox.LANE_BULK if prefers_async(req) else outbox.LANE_AGENTS

    def _outbox_full(self, full: bool) -> None:
        """429 for a respond-async send while the outbox holds WAZZUP24_ASYNC_BACKLOG messages: nothing
        stored. The default send is never refused so (it calls Wazzup itself, and an agent is waiting)."""
        if not full:
            return
        settings = self.state.settings
        per_second = settings.rate_limit / settings.rate_window
        wait = max(1, math.ceil(settings.async_backlog / per_second))
        raise Problem(429, "wazzup_outbox_full",
                      f"{settings.async_backlog} or more messages are waiting to be sent to Wazzup24 "
                      f"(WAZZUP24_ASYNC_BACKLOG); repeat in about {wait} s, or send without "
                      "Prefer: respond-async. Nothing was stored.", headers={"Retry-After": str(wait)})

    def _messenger(self, conn, chat_id: int) -> tuple[str | None, str | None]:
        """The chat's Wazzup chat type and its channel's transport (None where not known): its limits."""
        chat = chat_channel(conn, self.state, chat_id)
        return (chat.chat_type, chat.transport) if chat is not None else (None, None)

    def _run(self, req, resp, request_data: dict, store, *, inline: bool = True, outbox_full: bool = False):
        """Idempotency, storing (``store(tx, ctx, now, owner, written)`` → message id), the first attempt, the answer.

        ``outbox_full``: the outbox holds WAZZUP24_ASYNC_BACKLOG messages and this is a respond-async
        request (:meth:`_outbox_full`). ``inline=False`` (or ``Prefer: respond-async``): the outbox
        worker makes the first attempt, and the answer is 202. For a file
        this helpdesk serves: Wazzup downloads it before it answers the send, and a web worker waiting
        for that answer could be the one its download needs (with every worker sending a file, none is
        left to serve one, and each send fails with MESSAGE_DOWNLOAD_CONTENT_ERROR)."""
        ctx = outbound(self.helpdesk, self.state)
        agent = req.context.agent
        key = (req.get_header("Idempotency-Key") or "").strip() or None
        if key is not None and (len(key) > MAX_KEY or not key.isprintable()):
            raise Problem(422, "invalid_header", f"Idempotency-Key must be 1-{MAX_KEY} printable characters.",
                          fields={"Idempotency-Key": ["invalid"]})
        request_hash = hashlib.sha256(json.dumps({"path": req.path, "body": request_data}, sort_keys=True,
                                                 default=str).encode()).hexdigest()
        if ctx.client is None:
            raise Problem(503, "wazzup_not_configured",
                          "Wazzup24 is not configured (WAZZUP24_API_KEY is not set); nothing was stored or sent.")
        # Answered once stored (RFC 7240): the outbox worker sends it, and this request holds no web
        # worker while Wazzup answers (a bulk sender would otherwise take them from the agents' pages).
        asked_async = prefers_async(req)
        inline = inline and not asked_async
        owner = f"{WEB_OWNER}{uuid.uuid4().hex[:16]}" if inline else None
        idem = self.state.tables["idempotency"]
        for _ in range(2):  # a concurrent twin inserting the same key wins; then we replay its answer
            try:
                with self.helpdesk.db.write() as tx:
                    if key is not None:
                        first = tx.conn.execute(sa.select(idem).where(idem.c.agent_id == agent.id,
                                                                      idem.c.key == key)).first()
                        if first is not None:
                            return self._replay(resp, first, request_hash, tx.conn, ctx)
                    self._outbox_full(outbox_full)  # after a repeat's replay: that one was stored already
                    now = ctx.clock()
                    written = {}
                    message_id = store(tx, ctx, now, owner, written)
                    # Wazzup shows the agent as the sender once it has them as a user (users.py): the
                    # name goes with the message, written only when new to this process or changed.
                    # After the message's own writes: every send takes the same locks in one order.
                    noted = users.note_agent(tx.conn, ctx, agent)
                    # Left to the worker: the answer is the message as stored, read here, so that the key
                    # keeps it in this same commit (no second write for the key's answer).
                    answered = None if inline else self._answer(ctx, outbox.Outcome("retry", message_id), tx.conn)
                    if key is not None:
                        kept = {} if answered is None else {"response_status": answered[0],
                                                            "response_body": json.dumps(answered[1])}
                        tx.conn.execute(sa.insert(idem).values(agent_id=agent.id, key=key, request_hash=request_hash,
                                                               message_id=message_id, created_at=now, **kept))
                users.remember(ctx, agent.id, noted)  # committed
                break
            except sa.exc.IntegrityError:
                self._still_there(request_data["chat_id"])
                if key is None:
                    raise
        else:
            raise Problem(409, "idempotency_in_progress",
                          "A request with this Idempotency-Key is still being processed; repeat it shortly.")
        log.info("Wazzup24 message queued (chat_id=%s message_id=%s)", request_data.get("chat_id"), message_id,
                 extra={"context": {"chat_id": request_data.get("chat_id"), "message_id": message_id,
                                    "agent_id": agent.id, "status": "queued"}})
        if answered is not None:
            status, body = answered
        else:
            status, body = self._attempt_inline(ctx, message_id, owner, written.get("row"), agent, key)
        if asked_async:  # honoured whatever else made it 202 (a file, a message waiting before it)
            resp.set_header("Preference-Applied", "respond-async")
        self._write(resp, status, body)

    def _attempt_inline(self, ctx, message_id: int, owner: str, as_written, agent, key) -> tuple[int, dict]:
        """The first attempt under this request's lease, and its answer (kept for the key, if any)."""
        # The row as this request wrote it, under its own lease: no need to read it back.
        try:
            result = outbox.attempt(ctx, message_id, owner, as_written=as_written)
        except Exception:
            # Stored, and perhaps sent: a 500 would invite the agent to send it again by hand. The outbox
            # worker takes it up when this request's lease runs out, with the same crmMessageId.
            log.exception("Wazzup24 send attempt failed unexpectedly; the outbox worker will retry it",
                          extra={"context": {"message_id": message_id}})
            result = outbox.Outcome(kind="retry", message_id=message_id)
        status, body = self._answer(ctx, result)
        # A repeat of this request answers the same from now on; not "busy" (the request's lease ran out
        # and the worker has the message): a repeat then reads the message's fate.
        if key is not None and result.kind != "busy":
            idem = self.state.tables["idempotency"]
            with self.helpdesk.db.write() as tx:
                tx.conn.execute(sa.update(idem).where(idem.c.agent_id == agent.id, idem.c.key == key)
                                .values(response_status=status, response_body=json.dumps(body)))
        return status, body

    @staticmethod
    def _write(resp, status: int, body: dict) -> None:
        resp.status = falcon.code_to_http_status(status)
        resp.media = body

    def _replay(self, resp, first, request_hash: str, conn, ctx) -> None:
        if first.request_hash != request_hash:
            raise Problem(422, "idempotency_key_reused",
                          "This Idempotency-Key was already used for a different request.")
        if first.response_status is None:
            outcome = self._outcome_without_its_request(conn, ctx, first.message_id)
            if outcome is None:
                raise Problem(409, "idempotency_in_progress",
                              "A request with this Idempotency-Key is still being processed; repeat it shortly.")
            self._write(resp, *self._answer(ctx, outcome))
            return
        self._write(resp, first.response_status, json.loads(first.response_body))

    def _outcome_without_its_request(self, conn, ctx, message_id: int) -> outbox.Outcome | None:
        """The message's fate as it stands, when the request that stored it did not answer and never
        will (its process died: the lease it held has run out, or the worker settled the message).
        None while that request may still be running."""
        o, m = self.state.tables["outbox"], self.helpdesk.tables.messages
        row = conn.execute(sa.select(o.c.state, o.c.lease_owner, o.c.lease_until, m.c.status, m.c.error_code,
                                     m.c.error_text).join(m, m.c.id == o.c.message_id)
                           .where(o.c.message_id == message_id)).first()
        if row is None:
            return None
        if (row.state == "pending" and row.lease_owner is not None and row.lease_owner.startswith(WEB_OWNER)
                and row.lease_until is not None and row.lease_until > ctx.clock()):
            return None
        if row.status == "failed":
            code = row.error_code or "UNKNOWN"
            return outbox.Outcome("failed", message_id, error_code=code, error_text=row.error_text,
                                  auth_failure=code == "WAZZUP_AUTH",
                                  channel_problem=(outbox.normalize_code(code) in outbox.CHANNEL_CODES
                                                   or code == ChannelNeedsAPerson.code))
        kind = {"queued": "retry", "unknown": "unknown"}.get(row.status, "accepted")
        return outbox.Outcome(kind, message_id)

    def _answer(self, ctx, result: outbox.Outcome, conn=None) -> tuple[int, dict]:
        """The answer to ``result``: its status and body (the message, or the refusal with it). ``conn``:
        read in that connection (the storing transaction's), else in a read of its own."""
        if conn is None:
            with self.helpdesk.db.read() as conn:
                return self._answer(ctx, result, conn)
        message = message_json(conn, self.helpdesk, self.state, result.message_id)
        if result.kind == "failed":
            code = result.error_code or "UNKNOWN"
            if result.auth_failure:
                status, our_code = 502, "wazzup_auth_failed"
                text = ("Wazzup refused the helpdesk's API key, so the message was not sent; an administrator "
                        "must check WAZZUP24_API_KEY. The message is kept as failed and can be resent.")
            else:
                status = 409 if result.channel_problem else 422
                our_code = "wazzup_" + code.lower()
                reason = result.error_text or ""
                if code == ChannelNeedsAPerson.code:  # not sent to Wazzup at all: the reason says what to do
                    text = reason or "The chat's channel needs attention in Wazzup; nothing was sent."
                else:
                    # Wazzup's code once: a refusal without a description already names it in its text.
                    text = f"Wazzup did not send the message: {reason}" + ("" if code in reason else f" ({code})")
            return status, {"status": status, "code": our_code, "message": text, "message_id": result.message_id,
                            "wazzup_code": code, "data": {"message": message}}
        return (201 if result.kind in ("accepted", "done") else 202), message


class SendResource(_SendBase):
    openapi = {"post": {
        "summary": "Send a message to a Wazzup24 chat",
        "description": "Exactly one of text, content_uri, template_id and file_id (a file uploaded "
                       "with POST .../wazzup24/files). Stored first, then sent with our crmMessageId. "
                       "201: Wazzup accepted it; 202: stored and retried by the worker. A permanent refusal "
                       "keeps the message as failed and answers 4xx with Wazzup's code. 202 also when a message "
                       "of the chat is waiting in the outbox (this one queues behind it, to keep the order), "
                       "and with `Prefer: respond-async`, as soon as the message is stored.",
        "parameters": [IDEMPOTENCY_PARAM, PREFER_PARAM],
        "requestBody": {"required": True, "content": {"application/json": {"schema": SEND_BODY_SCHEMA}}},
        "responses": {"201": {"description": "accepted by Wazzup", "content": {"application/json": {"schema": "Message"}}},
                      **OPENAPI_ERRORS, **BODY_ERRORS},
    }}

    @answers_problems
    def on_post(self, req, resp, chat_id):
        data = load_body(_SEND, req)
        w = self.state.tables["messages"]
        m = self.helpdesk.tables.messages
        with self.helpdesk.db.read() as conn:
            # The chat's channel serves the text limit and the window both; behind: see the end.
            channel, behind, full = self._send_chat(conn, chat_id, self.helpdesk.clock(), self._async_backlog(req))
            self._check_text(channel, data.get("text"))
            window = chat_window(conn, self.helpdesk, self.state, chat_id, self.helpdesk.clock(), channel)
            ref = None
            if data.get("reply_to") is not None:
                quoted = conn.execute(sa.select(m.c.id, m.c.chat_id, w.c.wazzup_message_id)
                                      .select_from(m.outerjoin(w, w.c.message_id == m.c.id))
                                      .where(m.c.id == data["reply_to"])).first()
                if quoted is None or quoted.chat_id != chat_id:
                    raise Problem(422, "invalid_body", "The request body is not valid.",
                                  fields={"reply_to": ["no such message in this chat"]})
                if not quoted.wazzup_message_id:
                    raise Problem(422, "invalid_body", "The request body is not valid.",
                                  fields={"reply_to": ["this message has no Wazzup id yet, so it cannot be quoted"]})
                ref = quoted.wazzup_message_id
            uploaded = self._uploaded(conn, chat_id, data.get("file_id"))
            if served_here(self.state.settings, data.get("content_uri")):
                uploaded = file_at_url(conn, self.state, self.state.settings, data["content_uri"])
        template = self._template(chat_id, window, data.get("template_id"), data.get("template_values"))
        self._check_window(window, template)
        text = template[2] if template else data.get("text")
        agent = req.context.agent
        content_uri, content_type = data.get("content_uri"), None
        if uploaded is not None:
            message_type, name, content_type = uploaded.kind, uploaded.name, uploaded.content_type
            content_uri = public_url(self.state.settings, uploaded.token, uploaded.name)
            name = data.get("content_name") or name
        elif content_uri is not None:
            message_type, name = guess_type(content_uri)
            name = data.get("content_name") or name
        else:
            message_type, name = "text", None
        lane = self._lane(req)

        def store(tx, ctx, now, owner, written):
            if uploaded is not None:  # the file is kept from now on (file_housekeeping.py), or the send refused
                mark_sent(tx.conn, self.state, uploaded.id, now)
            return outbox.enqueue(tx, ctx, chat_id=chat_id, now=now, lease_owner=owner, text=text,
                                  content_uri=content_uri, content_name=name, content_type=content_type,
                                  message_type=message_type, ref_message_id=ref, author_agent_id=agent.id,
                                  author_name=agent.display_name or agent.username, written=written,
                                  template=template[:2] if template else None, lane=lane)

        # Behind a message of this chat still in the outbox (a file the worker sends, a retry), this
        # one queues too: the worker sends them in order, so the customer reads them as written.
        self._run(req, resp, {**data, "chat_id": chat_id}, store,
                  inline=not (behind or served_here(self.state.settings, content_uri)), outbox_full=full)


class ResendResource(_SendBase):
    openapi = {"post": {
        "summary": "Resend a failed or unknown message as a new attempt",
        "description": "Creates a new outgoing message with the same content and a new crmMessageId; "
                       "the original stays as it was. A message can be resent once.",
        "parameters": [IDEMPOTENCY_PARAM, PREFER_PARAM],
        "responses": {"201": {"description": "accepted by Wazzup", "content": {"application/json": {"schema": "Message"}}},
                      **OPENAPI_ERRORS,
                      "410": error_response("`wazzup_file_expired`: the message's uploaded file was deleted")},
    }}

    @answers_problems
    def on_post(self, req, resp, chat_id, message_id):
        m, w = self.helpdesk.tables.messages, self.state.tables["messages"]
        with self.helpdesk.db.read() as conn:
            channel, behind, full = self._send_chat(conn, chat_id, self.helpdesk.clock(), self._async_backlog(req))
            original = conn.execute(sa.select(m, w.c.ref_message_id, w.c.is_echo)
                                    .select_from(m.outerjoin(w, w.c.message_id == m.c.id))
                                    .where(m.c.id == message_id, m.c.chat_id == chat_id)).first()
        if original is None:
            raise Problem(404, "message_not_found", f"Message {message_id} is not in chat {chat_id}.")
        if original.direction != "out" or original.status not in ("failed", "unknown"):
            raise Problem(409, "not_resendable",
                          f"Only failed or unknown outgoing messages can be resent; this one is {original.status!r}.")
        if original.is_echo and not original.content_uri and is_placeholder(original.text, original.type):
            # Sent from the phone as a location, contact card...: its text is only our label for it,
            # which would reach the customer as a text ("[Location]").
            raise Problem(409, "not_resendable",
                          f"Message {message_id} was sent from the phone as a {original.type!r} message, which the "
                          "helpdesk knows only by its label; send it again from the phone. Nothing was sent.")
        with self.helpdesk.db.read() as conn:
            template = stored_template(conn, self.state, message_id)
            if original.text is not None and not original.content_uri and template is None:
                self._check_text(channel, original.text)
            self._check_window(chat_window(conn, self.helpdesk, self.state, chat_id, self.helpdesk.clock(), channel),
                               template)
            if expired_here(conn, self.state, self.state.settings, original.content_uri):
                raise Problem(410, "wazzup_file_expired",
                              f"The file of message {message_id} was deleted (WAZZUP24_FILE_RETENTION_DAYS); "
                              "upload it again and send it. Nothing was stored or sent.")
        agent = req.context.agent
        lane = self._lane(req)

        def store(tx, ctx, now, owner, written):
            new_id = outbox.enqueue(
                tx, ctx, chat_id=chat_id, now=now, lease_owner=owner, text=original.text,
                content_uri=original.content_uri, content_name=original.content_name,
                content_type=original.content_type, message_type=original.type,
                ref_message_id=original.ref_message_id, author_agent_id=agent.id,
                author_name=agent.display_name or agent.username, written=written, template=template, lane=lane)
            # The claim: only the first resend of a message sets resent_as (the UPDATE's row lock decides).
            claimed = tx.conn.execute(sa.update(w).where(w.c.message_id == message_id, w.c.resent_as.is_(None))
                                      .values(resent_as=new_id)).rowcount
            if not claimed:
                exists = tx.conn.execute(sa.select(w.c.resent_as).where(w.c.message_id == message_id)).first()
                if exists is None:  # a message with no Wazzup row (e.g. an old import): it gets one now
                    tx.conn.execute(sa.insert(w).values(message_id=message_id, chat_id=chat_id, is_echo=False,
                                                        resent_as=new_id))
                else:
                    raise Problem(409, "already_resent",
                                  f"Message {message_id} was already resent as message {exists.resent_as}.")
            # The original now shows what resent it (wazzup_resent_as): stamp it so pollers fetch it again.
            tx.conn.execute(sa.update(m).where(m.c.id == message_id).values(change_seq=tx.change_seq))
            tx.touched(chat_ids=[chat_id], message_ids=[message_id])
            return new_id

        # Behind a message of the chat still in the outbox, the resend queues too, as a send does.
        self._run(req, resp, {"resend": message_id, "chat_id": chat_id}, store,
                  inline=not (behind or served_here(self.state.settings, original.content_uri)), outbox_full=full)
