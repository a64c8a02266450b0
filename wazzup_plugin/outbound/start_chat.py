"""``POST /api/wazzup24/chats``: an agent or an integrator starts a chat with a phone number (WhatsApp,
Telegram, MAX) or a Telegram username.

Until the customer wrote, there was no chat to send to, so a helpdesk could answer but never write
first (an order confirmation, a call back, a reminder). The chat is found or created under the key
the webhook uses, (channel, ``whatsapp``, the number's digits), with the row and the race rules of a
customer's first message (``Writer.ensure_chat``): the customer's answer lands in this chat, and two
starts for one number, or a start racing the customer's own first message, make one chat. Messages
then go through the chat's send route like any other (on a WhatsApp Business channel, a template
until the customer writes: the 24-hour window is closed).

On a Telegram (personal account) or MAX channel the chat's Wazzup id is not the number: Wazzup names
it in its answer to the first message, so the chat is kept under the address until then
(``addresses.py``). A chat of that channel the helpdesk already has with that number is found, not
started again.
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from wazzup_plugin.client import WazzupAuthError, WazzupError
from wazzup_plugin.inbound.store import Writer
from wazzup_plugin.outbound.addresses import WRITE_FIRST, provisional_chat_id, telegram_username
from wazzup_plugin.outbound.channels import (TRANSPORT_NAMES, WHATSAPP_TRANSPORTS, ChannelSelectionError, describe,
                                             is_active, needs_a_person, remember_channels, select_channel,
                                             what_to_do)
from wazzup_plugin.outbound.context import outbound
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response, load_body
from wazzup_plugin.outbound.send import BODY_ERRORS

log = logging.getLogger(__name__)

# Channel transport -> the addresses a chat can be started with on it.
_ADDRESSES = {**{t: ("phone",) for t in WHATSAPP_TRANSPORTS}, **{t: kinds for t, (_, kinds) in WRITE_FIRST.items()}}

# What people type around a number: "+7 (916) 123-45-67", "8 916 123 45 67", "+44.20.7946.0958".
# ASCII digits only: ``\d`` would take other scripts' digits too, which no number is dialled with.
_WRITTEN_NUMBER = re.compile(r"\+?[0-9 ().\-\u00a0]+")
# E.164: at most 15 digits with the country code; the shortest numbers in use have 7.
MIN_DIGITS, MAX_DIGITS = 7, 15


def whatsapp_number(written: str) -> str:
    """The digits Wazzup takes as a WhatsApp ``chatId`` (country code first, no +), from a number as
    people write it. Raises ValueError saying what is wrong.

    Russia and Kazakhstan write their numbers at home with 8 for +7: "8 916 …" (a Russian mobile) and
    "8 7xx …" (a Kazakh one) become 7…. Any other 11 digits beginning with 8 could as well be another
    country's number (+84 Vietnam, +82 Korea, +81 Japan): refused rather than guessed, since a wrong
    guess writes to a stranger."""
    text = written.strip()
    if not _WRITTEN_NUMBER.fullmatch(text):
        raise ValueError("write a phone number: digits, with the country code (+ and spaces, dashes or brackets "
                         "are fine)")
    digits = re.sub(r"[^0-9]", "", text)
    if not text.startswith("+") and len(digits) == 11 and digits.startswith("8"):
        if digits[1] not in "79":
            raise ValueError("write it with + and the country code: a number beginning with 8 may be a Russian "
                             "one written with 8 for +7, or another country's")
        digits = "7" + digits[1:]
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise ValueError(f"a phone number has {MIN_DIGITS}-{MAX_DIGITS} digits with its country code; "
                         f"this one has {len(digits)}")
    return digits


def _phone(value: str) -> None:
    try:
        whatsapp_number(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _username(value: str) -> None:
    try:
        telegram_username(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


# The shape ``whatsapp_number`` reads, for the OpenAPI document (7-15 digits, separators between them);
# its own checks say what is wrong with a number that does not fit.
DOCUMENTED_PATTERN = r"^ *\+?[ (]*[0-9](?:[ ().\-]*[0-9]){6,14}[ )]* *$"
# The shape ``telegram_username`` reads: a t.me link and an @ in front of 5-32 letters, digits, underscores.
USERNAME_PATTERN = (r"^ *(?:(?:[Hh][Tt][Tt][Pp][Ss]?://)?(?:[Tt]|[Tt][Ee][Ll][Ee][Gg][Rr][Aa][Mm])\.[Mm][Ee]/)?@?"
                    r"[A-Za-z][A-Za-z0-9_]{4,31} *$")


class StartChatSchema(Schema):
    phone = fields.String(validate=[validate.Length(min=1, max=40), _phone], metadata={
        "pattern": DOCUMENTED_PATTERN,
        "description": "the customer's number with its country code, written as people write it "
                       "(\"+7 916 123-45-67\"; \"8 916 …\" is read as +7): on a WhatsApp, Telegram or MAX "
                       "channel. Exactly one of phone and username"})
    username = fields.String(validate=[validate.Length(min=1, max=60), _username], metadata={
        "pattern": USERNAME_PATTERN,
        "description": "the customer's Telegram username (\"@ivan_petrov\", or a t.me link): on a Telegram "
                       "channel (a personal account; a bot cannot write first). Exactly one of phone and username"})
    name = fields.String(validate=validate.Length(min=1, max=300), metadata={
        "description": "the chat's title until the customer's name arrives with their first message "
                       "(default: the number, or the @username)"})
    channel_id = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "the channel to write from (default, with a phone: WAZZUP24_CHANNEL_ID, else the "
                       "account's only active WhatsApp channel; with a username: the only active Telegram "
                       "channel)"})

    @validates_schema
    def exactly_one_address(self, data, **kwargs):
        if ("phone" in data) == ("username" in data):
            raise ValidationError("give exactly one of phone and username", field_name="phone")


class StartChatResource:
    openapi = {"post": {
        "summary": "Start a chat with a phone number (WhatsApp, Telegram, MAX) or a Telegram username",
        "description": "Finds or creates the chat with this number on the channel (the one the customer's answers "
                       "will come to), and answers with it: 201 when created, 200 when it was there. Nothing is "
                       "sent: send to it with `POST /api/chats/{id}/wazzup24/send` (on a WhatsApp Business "
                       "channel, a template until the customer writes). A Telegram or MAX chat has no Wazzup id "
                       "until Wazzup accepts its first message: until then its `wazzup_chat_id` is "
                       "`phone:<digits>` or `username:<name>`, and its messages go out by that address.",
        # Exactly one of phone and username, which marshmallow's schema cannot say (the server checks it).
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"allOf": [
            StartChatSchema, {"oneOf": [{"required": [one], "not": {"required": [other]}}
                                        for one, other in (("phone", "username"), ("username", "phone"))]}]}}}},
        "responses": {
            "201": {"description": "the chat, created", "content": {"application/json": {"schema": "Chat"}}},
            "200": {"description": "the chat with this number on this channel, already there",
                    "content": {"application/json": {"schema": "Chat"}}},
            "409": error_response("`wazzup_channel_not_selected`: no channel given and none can be chosen (several "
                                  "or no active WhatsApp channels); `wazzup_channel_needs_attention`: the channel "
                                  "needs a person (signed out, switched off, unpaid…)"),
            "422": error_response("`invalid_body`: a field is not valid (`fields` says which and why)"),
            **BODY_ERRORS,
            "502": error_response("`wazzup_channels_failed`: Wazzup's channel list could not be read"),
            "503": error_response("`wazzup_not_configured`: WAZZUP24_API_KEY is not set"),
        },
    }}

    def __init__(self, helpdesk, state):
        self.helpdesk = helpdesk
        self.state = state

    @answers_problems
    def on_post(self, req, resp):
        data = load_body(StartChatSchema(), req)
        kind = "phone" if "phone" in data else "username"
        address = whatsapp_number(data["phone"]) if kind == "phone" else telegram_username(data["username"])
        channel_id, transport = self._channel(data.get("channel_id"), kind)
        if transport in WRITE_FIRST:
            chat_type = WRITE_FIRST[transport][0]
            key, phone = provisional_chat_id(kind, address), address if kind == "phone" else None
            title = data.get("name") or ("+" + address if kind == "phone" else "@" + address)
        else:
            chat_type, key, phone, title = "whatsapp", address, None, data.get("name")
        with self.helpdesk.db.write() as tx:
            writer = Writer(tx, self.state, self.helpdesk.clock())
            writer.lock()
            found = self._known_by_phone(tx.conn, channel_id, chat_type, phone) if phone else None
            if found is not None:
                chat_id, created = found, False
            else:
                chat_id, created = writer.ensure_chat(channel_id, chat_type, key, title, phone=phone)
            writer.finish()
            chats = self.helpdesk.tables.chats
            row = tx.conn.execute(sa.select(chats).where(chats.c.id == chat_id)).mappings().first()
            chat = self.helpdesk.serialize_chats(tx.conn, [row])[0]
        log.info("Wazzup24 chat %s (chat_id=%s)", "started" if created else "found", chat_id, extra={"context": {
            "chat_id": chat_id, "channel_id": channel_id, "created": created, "agent_id": req.context.agent.id}})
        resp.status = 201 if created else 200
        resp.media = chat

    def _known_by_phone(self, conn, channel_id: str, chat_type: str, phone: str) -> int | None:
        """A Telegram or MAX chat of this channel whose customer wrote with this number (the messenger
        showed it): the chat Wazzup would name, found before anything is sent."""
        chats, wc = self.helpdesk.tables.chats, self.state.tables["chats"]
        return conn.execute(sa.select(chats.c.id).select_from(chats.join(wc, wc.c.chat_id == chats.c.id))
                            .where(wc.c.channel_id == channel_id, wc.c.chat_type == chat_type, chats.c.phone == phone)
                            .order_by(chats.c.id).limit(1)).scalar()

    def _channel(self, wanted: str | None, kind: str) -> tuple[str, str]:
        """(channel id, transport) of the channel the chat is kept under: ``wanted`` once Wazzup's list
        shows it is a channel that can write first to this kind of address and works; else, for a phone,
        the one a send would choose for a chat without one, and for a username the only active Telegram
        channel."""
        ctx = outbound(self.helpdesk, self.state)
        if ctx.client is None:
            raise Problem(503, "wazzup_not_configured", "Wazzup24 is not configured (WAZZUP24_API_KEY is not set); "
                                                        "no chat was started.")
        try:
            if wanted is None and kind == "phone":
                selected = select_channel(None, ctx.settings.channel_id, self._listed(ctx))
                # WAZZUP24_CHANNEL_ID, taken without asking Wazzup, may name a Telegram or MAX channel:
                # its transport as the channel list last said it (else taken for WhatsApp, as before).
                transport = str(selected.transport or self._stored_transport(selected.channel_id)
                                or "whatsapp").lower()
                if kind not in _ADDRESSES.get(transport, ()):
                    raise ChannelSelectionError(f"WAZZUP24_CHANNEL_ID names {_cannot_start(transport, kind)}.")
                return selected.channel_id, transport
            channels = self._listed(ctx)()
            if wanted is None:
                wanted = self._only_telegram(channels)
        except ChannelSelectionError as exc:
            raise Problem(409, "wazzup_channel_not_selected", f"{exc} Or name one in channel_id.") from None
        except WazzupError as exc:
            reason = ("Wazzup refused the helpdesk's API key: an administrator must check WAZZUP24_API_KEY."
                      if isinstance(exc, WazzupAuthError) else f"Wazzup's channel list could not be read: {exc.message}")
            raise Problem(502, "wazzup_channels_failed", reason + " No chat was started.") from None
        found = next((c for c in channels if str(c.get("channelId")) == wanted), None)
        if found is None:
            raise Problem(422, "invalid_body", "The request body is not valid.", fields={"channel_id": [
                f"not a channel of this Wazzup account ({describe(channels)})"]})
        transport = str(found.get("transport") or "").lower()
        if kind not in _ADDRESSES.get(transport, ()):
            raise Problem(422, "invalid_body", "The request body is not valid.", fields={
                "channel_id" if kind == "phone" else "username": [_cannot_start(transport, kind)]})
        if needs_a_person(found.get("state")):
            raise Problem(409, "wazzup_channel_needs_attention",
                          what_to_do(wanted, transport, found.get("plainId"), str(found.get("state"))))
        return wanted, transport

    def _stored_transport(self, channel_id: str) -> str | None:
        ch = self.state.tables["channels"]
        with self.helpdesk.db.read() as conn:
            return conn.execute(sa.select(ch.c.transport).where(ch.c.channel_id == channel_id)).scalar()

    @staticmethod
    def _only_telegram(channels: list[dict]) -> str:
        telegram = [c for c in channels if str(c.get("transport") or "").lower() == "tgapi" and is_active(c)]
        if len(telegram) != 1:
            raise ChannelSelectionError(f"{len(telegram) or 'No'} active Telegram channels: a username needs the "
                                        "channel to write from.")
        return str(telegram[0]["channelId"])

    @staticmethod
    def _listed(ctx):
        """Wazzup's channel list (cached), kept in the database as it is read: a chat on a WhatsApp
        Business channel needs its transport known for the 24-hour window."""
        def list_channels():
            channels = ctx.list_channels()
            remember_channels(ctx, channels)
            return channels
        return list_channels


def _cannot_start(transport: str, kind: str) -> str:
    name = TRANSPORT_NAMES.get(transport, transport or "unknown")
    article = "an" if name[:1].lower() in "aeiou" else "a"   # "an Instagram channel", "a VK channel"
    if kind == "username":
        return f"{article} {name} channel: usernames are for Telegram channels (a personal account, transport tgapi)"
    if transport == "telegram":
        return "a Telegram bot channel: a bot cannot write first; the customer must write to it"
    return f"{article} {name} channel: chats start by phone number on WhatsApp, Telegram and MAX channels"
