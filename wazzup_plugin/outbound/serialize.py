"""A message as JSON, exactly as the host serves it (with every plugin's fields)."""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.fields import message_fields
from wazzup_plugin.media.fields import media_fields
from wazzup_plugin.store_common import built


def message_json(conn, helpdesk, state, message_id: int) -> dict | None:
    m = helpdesk.tables.messages

    def build():
        # The plugin's own fields joined in (the host then loads only other plugins' fields: the
        # contract's serialize_messages): one query where a lookup per field set would be three.
        source, columns = m, []
        for fs in (message_fields(state.tables, m), media_fields(state.tables)):
            source = source.outerjoin(fs.table, fs.key == m.c.id)
            columns.extend(column.label(name) for name, column in fs.columns.items())
        return sa.select(m, *columns).select_from(source).where(m.c.id == sa.bindparam("b_id", type_=m.c.id.type))

    # Built once (every send answers with it): building the statement cost about as much as running it.
    row = conn.execute(built(m, "message_json", build), {"b_id": message_id}).mappings().first()
    if row is None:
        return None
    return helpdesk.serialize_messages(conn, [row])[0]
