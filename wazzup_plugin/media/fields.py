"""The message fields of kept media: ``wazzup_media_state`` and ``wazzup_media_url`` (when stored).

Columns of ``wazzup_media`` (one row per message at most), so the host joins them into its page
queries; ``url`` is set when the copy is stored (``download``).
"""

from __future__ import annotations

import sqlalchemy as sa
from marshmallow import fields

from wazzup_plugin.fields import FieldSet
from wazzup_plugin.media.tables import STATES


def media_fields(tables) -> FieldSet:
    t = tables["media"]
    columns = {"wazzup_media_state": t.c.state, "wazzup_media_url": t.c.url}
    stmt = (sa.select(t.c.message_id, *(c.label(name) for name, c in columns.items()))
            .where(t.c.message_id.in_(sa.bindparam("b_ids", expanding=True))))

    def load(conn, ids):
        return {row.message_id: {name: row._mapping[name] for name in columns}
                for row in conn.execute(stmt, {"b_ids": ids})}

    return FieldSet("message", {
        "wazzup_media_state": fields.String(allow_none=True, metadata={
            "description": "the helpdesk's copy of an incoming message's media: " + ", ".join(STATES)
                           + " (null: no media kept)"}),
        "wazzup_media_url": fields.String(allow_none=True, metadata={
            "description": "the helpdesk's copy of the media (a path on the helpdesk's origin), once stored"}),
    }, load, table=t, key=t.c.message_id, columns=columns)
