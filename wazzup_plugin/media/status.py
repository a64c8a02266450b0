"""Customers' media for ``helpdesk-stub wazzup24 status``: the download backlog, and what the kept copies take.

Each is read from a partial index (pending rows, stored rows). Counting failed rows would read the
whole table (on SQLite, each row's bytes with it), so they are not counted; each failure is logged by
the worker as it happens.
"""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.media.tables import PENDING, STORED


def media_backlog(conn, state) -> tuple[int, object]:
    """``(pending downloads, when the oldest was queued, or None)``: the pending rows through the partial
    due index, then only theirs read."""
    t = state.tables["media"]
    return tuple(conn.execute(sa.select(sa.func.count(), sa.func.min(t.c.created_at))
                              .where(t.c.state == sa.literal_column(f"'{PENDING}'"))).one())


def media_kept(conn, state) -> tuple[int, int]:
    """``(copies kept, their bytes)``, summed from the partial index ix_wazzup_media_stored alone."""
    t = state.tables["media"]
    return tuple(conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.size), 0))
                              .where(t.c.state == sa.literal_column(f"'{STORED}'"))).one())
