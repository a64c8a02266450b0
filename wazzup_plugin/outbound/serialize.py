"""A message as JSON, exactly as the host serves it (with every plugin's fields)."""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.store_common import built


def message_json(conn, helpdesk, message_id: int) -> dict | None:
    m = helpdesk.tables.messages
    # Built once (every send answers with it): building the statement cost about as much as running it.
    stmt = built(m, "message_json", lambda: sa.select(m).where(m.c.id == sa.bindparam("b_id", type_=m.c.id.type)))
    row = conn.execute(stmt, {"b_id": message_id}).mappings().first()
    if row is None:
        return None
    return helpdesk.serialize_messages(conn, [row])[0]
