"""``POST /api/wazzup24/chats``: an agent or an integrator starts a WhatsApp chat with a phone number.

Until the customer wrote, there was no chat to send to, so a helpdesk could answer but never write
first (an order confirmation, a call back, a reminder). The chat is found or created under the key
the webhook uses, (channel, ``whatsapp``, the number's digits), with the row and the race rules of a
customer's first message (``Writer.ensure_chat``): the customer's answer lands in this chat, and two
starts for one number, or a start racing the customer's own first message, make one chat. Messages
then go through the chat's send route like any other (on a WhatsApp Business channel, a template
until the customer writes: the 24-hour window is closed).
"""

from __future__ import annotations

import logging
import re

import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, validate

from wazzup_plugin.client import WazzupAuthError, WazzupError
from wazzup_plugin.inbound.store import Writer
from wazzup_plugin.outbound.channels import (WHATSAPP_TRANSPORTS, ChannelSelectionError, describe, needs_a_person,
                                             remember_channels, select_channel, what_to_do)
from wazzup_plugin.outbound.context import outbound
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response, load_body
from wazzup_plugin.outbound.send import BODY_ERRORS

log = logging.getLogger(__name__)

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


# The shape ``whatsapp_number`` reads, for the OpenAPI document (7-15 digits, separators between them);
# its own checks say what is wrong with a number that does not fit.
DOCUMENTED_PATTERN = r"^ *\+?[ (]*[0-9](?:[ ().\-]*[0-9]){6,14}[ )]* *$"


class StartChatSchema(Schema):
    phone = fields.String(required=True, validate=[validate.Length(min=1, max=40), _phone], metadata={
        "pattern": DOCUMENTED_PATTERN,
        "description": "the customer's WhatsApp number with its country code, written as people write it "
                       "(\"+7 916 123-45-67\"; \"8 916 …\" is read as +7)"})
    name = fields.String(validate=validate.Length(min=1, max=300), metadata={
        "description": "the chat's title until the customer's WhatsApp name arrives with their first message "
                       "(default: the number)"})
    channel_id = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "the WhatsApp channel to write from (default: WAZZUP24_CHANNEL_ID, else the account's only "
                       "active WhatsApp channel)"})


class StartChatResource:
    openapi = {"post": {
        "summary": "Start a WhatsApp chat with a phone number",
        "description": "Finds or creates the chat with this number on the channel (the one the customer's answers "
                       "will come to), and answers with it: 201 when created, 200 when it was there. Nothing is "
                       "sent: send to it with `POST /api/chats/{id}/wazzup24/send` (on a WhatsApp Business "
                       "channel, a template until the customer writes).",
        "requestBody": {"required": True, "content": {"application/json": {"schema": StartChatSchema}}},
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
        number = whatsapp_number(data["phone"])
        channel_id = self._channel(data.get("channel_id"))
        with self.helpdesk.db.write() as tx:
            writer = Writer(tx, self.state, self.helpdesk.clock())
            writer.lock()
            chat_id, created = writer.ensure_chat(channel_id, "whatsapp", number, data.get("name"))
            writer.finish()
            chats = self.helpdesk.tables.chats
            row = tx.conn.execute(sa.select(chats).where(chats.c.id == chat_id)).mappings().first()
            chat = self.helpdesk.serialize_chats(tx.conn, [row])[0]
        log.info("Wazzup24 chat %s (chat_id=%s)", "started" if created else "found", chat_id, extra={"context": {
            "chat_id": chat_id, "channel_id": channel_id, "created": created, "agent_id": req.context.agent.id}})
        resp.status = 201 if created else 200
        resp.media = chat

    def _channel(self, wanted: str | None) -> str:
        """The channel the chat is kept under: ``wanted`` once Wazzup's list shows it is a WhatsApp channel
        that works, else the one a send would choose for a chat without one."""
        ctx = outbound(self.helpdesk, self.state)
        if ctx.client is None:
            raise Problem(503, "wazzup_not_configured", "Wazzup24 is not configured (WAZZUP24_API_KEY is not set); "
                                                        "no chat was started.")
        try:
            if wanted is None:
                return select_channel(None, ctx.settings.channel_id, self._listed(ctx)).channel_id
            channels = self._listed(ctx)()
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
        if transport not in WHATSAPP_TRANSPORTS:
            raise Problem(422, "invalid_body", "The request body is not valid.", fields={"channel_id": [
                f"a {transport or 'non-WhatsApp'} channel: chats start by phone number on WhatsApp channels"]})
        if needs_a_person(found.get("state")):
            raise Problem(409, "wazzup_channel_needs_attention",
                          what_to_do(wanted, transport, found.get("plainId"), str(found.get("state"))))
        return wanted

    @staticmethod
    def _listed(ctx):
        """Wazzup's channel list (cached), kept in the database as it is read: a chat on a WhatsApp
        Business channel needs its transport known for the 24-hour window."""
        def list_channels():
            channels = ctx.list_channels()
            remember_channels(ctx, channels)
            return channels
        return list_channels
