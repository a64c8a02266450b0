"""The plugin's fields on the host's chat and message JSON, loaded once per page.

Each lookup's statement is built once per app (with the page's ids as an expanding parameter):
building a statement costs about as much as running such a small one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from marshmallow import fields

from wazzup_plugin.error_texts import resendable


@dataclass(frozen=True)
class FieldSet:
    entity: str
    fields: dict
    load: Callable
    # The same fields as columns of a table with one row per chat/message: the host joins them
    # into its page queries (one query fewer per page) and calls ``load`` only elsewhere.
    table: sa.Table | None = None
    key: sa.Column | None = None
    columns: dict | None = None


def chat_fields(tables) -> FieldSet:
    t = tables["chats"]
    stmt = (sa.select(t.c.chat_id, t.c.wazzup_chat_id, t.c.chat_type, t.c.channel_id)
            .where(t.c.chat_id.in_(sa.bindparam("b_ids", expanding=True))))

    def load(conn, ids):
        return {chat_id: {"wazzup_chat_id": wazzup_chat_id, "wazzup_chat_type": chat_type,
                          "wazzup_channel_id": channel_id}
                for chat_id, wazzup_chat_id, chat_type, channel_id in conn.execute(stmt, {"b_ids": ids})}

    return FieldSet("chat", {
        "wazzup_chat_id": fields.String(metadata={"description": "the chat's id in Wazzup24 (digits for WhatsApp); "
                                                  "`phone:<digits>` or `username:<name>` for a Telegram or MAX chat "
                                                  "started by the helpdesk, until Wazzup names it"}),
        "wazzup_chat_type": fields.String(metadata={"description": "Wazzup chatType: whatsapp, whatsgroup, ..."}),
        "wazzup_channel_id": fields.String(metadata={"description": "the Wazzup channel the chat belongs to"}),
    }, load, table=t, key=t.c.chat_id, columns={
        "wazzup_chat_id": t.c.wazzup_chat_id, "wazzup_chat_type": t.c.chat_type, "wazzup_channel_id": t.c.channel_id})


def message_fields(tables, messages: sa.Table) -> FieldSet:
    """``messages``: the host's table, whose columns ``wazzup_resendable`` reads (the host joins ours to it)."""
    t = tables["messages"]
    columns = {"wazzup_message_id": t.c.wazzup_message_id, "wazzup_crm_message_id": t.c.crm_message_id,
               "wazzup_is_echo": t.c.is_echo, "wazzup_resent_as": t.c.resent_as, "wazzup_reply_to": t.c.ref_message_id,
               "wazzup_resendable": resendable(messages, t)}
    stmt = (sa.select(messages.c.id, *(c.label(name) for name, c in columns.items()))
            .select_from(messages.outerjoin(t, t.c.message_id == messages.c.id))
            .where(messages.c.id.in_(sa.bindparam("b_ids", expanding=True))))

    def load(conn, ids):
        return {row.id: {name: row._mapping[name] for name in columns} for row in conn.execute(stmt, {"b_ids": ids})}

    return FieldSet("message", {
        "wazzup_message_id": fields.String(metadata={"description": "the message's id in Wazzup24"}),
        "wazzup_crm_message_id": fields.String(metadata={"description": "our crmMessageId for sent messages"}),
        "wazzup_is_echo": fields.Boolean(metadata={"description": "sent from the phone or Wazzup's own window"}),
        "wazzup_resent_as": fields.Integer(allow_none=True, metadata={
            "description": "the id of the message that resent this failed one (a message is resent once)"}),
        "wazzup_reply_to": fields.String(allow_none=True, metadata={
            "description": "the Wazzup message id this message quotes (a customer's reply, or a send with "
                           "reply_to): the quoted message is the one whose wazzup_message_id it is"}),
        "wazzup_resendable": fields.Boolean(metadata={
            "description": "whether Resend can help: true only for an outgoing message that failed or may not "
                           "have gone out (status failed or unknown), not resent yet, whose error code does not "
                           "say that a second attempt meets the same refusal (BAD_CONTACT, a text too long, "
                           "Wazzup's plain HTTP_4xx ...), and which is not a location, contact card or other "
                           "message sent from the phone that the helpdesk knows only by its label; false otherwise"}),
    }, load, table=t, key=t.c.message_id, columns=columns)
