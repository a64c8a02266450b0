"""A message as JSON, the way the host serves it, plus this plugin's fields.

The plugin cannot reach the host's serializer (hooks hand it none), so it mirrors the host's
message fields here; the OpenAPI document points these answers at the host's ``Message`` schema.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

HOST_MESSAGE_FIELDS = (
    "id", "chat_id", "direction", "status", "type", "text", "content_uri", "content_name", "content_type",
    "author_name", "messenger_at", "created_at", "queued_at", "accepted_at", "sent_at", "delivered_at", "read_at",
    "failed_at", "unknown_at", "error_code", "error_text", "edited_at", "deleted_at", "previous_text", "change_seq",
)


def _json_value(value):
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def message_json(conn, helpdesk, state, message_id: int) -> dict | None:
    m, w = helpdesk.tables.messages, state.tables["messages"]
    row = conn.execute(
        sa.select(m, w.c.wazzup_message_id, w.c.crm_message_id, w.c.is_echo)
        .select_from(m.outerjoin(w, w.c.message_id == m.c.id)).where(m.c.id == message_id)
    ).mappings().first()
    if row is None:
        return None
    item = {name: _json_value(row.get(name)) for name in HOST_MESSAGE_FIELDS}
    item["wazzup_message_id"] = row["wazzup_message_id"]
    item["wazzup_crm_message_id"] = row["crm_message_id"]
    item["wazzup_is_echo"] = bool(row["is_echo"]) if row["is_echo"] is not None else None
    return item
