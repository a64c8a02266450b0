"""A message as JSON, exactly as the host serves it (with every plugin's fields)."""

from __future__ import annotations

import sqlalchemy as sa


def message_json(conn, helpdesk, message_id: int) -> dict | None:
    m = helpdesk.tables.messages
    row = conn.execute(sa.select(m).where(m.c.id == message_id)).mappings().first()
    if row is None:
        return None
    return helpdesk.serialize_messages(conn, [row])[0]
