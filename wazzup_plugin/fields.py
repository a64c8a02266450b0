"""The plugin's fields on the host's chat and message JSON, loaded once per page.

Each lookup's statement is built once per app (with the page's ids as an expanding parameter):
building a statement costs about as much as running such a small one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from marshmallow import fields


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
        "wazzup_chat_id": fields.String(metadata={"description": "the chat's id in Wazzup24 (digits for WhatsApp)"}),
        "wazzup_chat_type": fields.String(metadata={"description": "Wazzup chatType: whatsapp, whatsgroup, ..."}),
        "wazzup_channel_id": fields.String(metadata={"description": "the Wazzup channel the chat belongs to"}),
    }, load, table=t, key=t.c.chat_id, columns={
        "wazzup_chat_id": t.c.wazzup_chat_id, "wazzup_chat_type": t.c.chat_type, "wazzup_channel_id": t.c.channel_id})


def message_fields(tables) -> FieldSet:
    t = tables["messages"]
    stmt = (sa.select(t.c.message_id, t.c.wazzup_message_id, t.c.crm_message_id, t.c.is_echo, t.c.resent_as,
                      t.c.ref_message_id)
            .where(t.c.message_id.in_(sa.bindparam("b_ids", expanding=True))))

    def load(conn, ids):
        return {message_id: {"wazzup_message_id": wazzup_message_id, "wazzup_crm_message_id": crm_message_id,
                             "wazzup_is_echo": is_echo, "wazzup_resent_as": resent_as,
                             "wazzup_reply_to": ref_message_id}
                for message_id, wazzup_message_id, crm_message_id, is_echo, resent_as, ref_message_id
                in conn.execute(stmt, {"b_ids": ids})}

    return FieldSet("message", {
        "wazzup_message_id": fields.String(metadata={"description": "the message's id in Wazzup24"}),
        "wazzup_crm_message_id": fields.String(metadata={"description": "our crmMessageId for sent messages"}),
        "wazzup_is_echo": fields.Boolean(metadata={"description": "sent from the phone or Wazzup's own window"}),
        "wazzup_resent_as": fields.Integer(allow_none=True, metadata={
            "description": "the id of the message that resent this failed one (a message is resent once)"}),
        "wazzup_reply_to": fields.String(allow_none=True, metadata={
            "description": "the Wazzup message id this message quotes (a customer's reply, or a send with "
                           "reply_to): the quoted message is the one whose wazzup_message_id it is"}),
    }, load, table=t, key=t.c.message_id, columns={
        "wazzup_message_id": t.c.wazzup_message_id, "wazzup_crm_message_id": t.c.crm_message_id,
        "wazzup_is_echo": t.c.is_echo, "wazzup_resent_as": t.c.resent_as, "wazzup_reply_to": t.c.ref_message_id})

