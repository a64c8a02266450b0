"""The media download backlog for ``helpdesk-stub wazzup24 status``: the pending rows only.

Counting failed rows would read the whole table (on SQLite, each row's bytes with it), so only the
pending ones are counted; each failure is logged by the worker as it happens.
"""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.media.tables import PENDING


def media_backlog(conn, state) -> tuple[int, object]:
    """``(pending downloads, when the oldest was queued, or None)``: the pending rows through the partial
    due index, then only theirs read."""
    t = state.tables["media"]
    return tuple(conn.execute(sa.select(sa.func.count(), sa.func.min(t.c.created_at))
                              .where(t.c.state == sa.literal_column(f"'{PENDING}'"))).one())
