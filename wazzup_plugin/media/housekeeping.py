"""Customers' media past WAZZUP24_MEDIA_RETENTION_DAYS, emptied by the outbox worker's housekeeping.

With the setting (0, the default: kept for good), a kept copy's bytes are dropped that many days
after it was downloaded. The row stays, ``expired``: its URL then answers 410
``wazzup_media_expired``, and the agents' page says the helpdesk no longer has the file, rather
than a link that answers nothing. The message keeps its text and Wazzup's link.

This is the bound on what customers' media take: they do not count in WAZZUP24_FILES_QUOTA_MB,
since a customer's file cannot be refused as an agent's upload can. ``helpdesk-stub wazzup24
status`` shows how much they take.

In bounded batches (a copy may be 25 MB), each in a short transaction whose write repeats its
condition: a copy an edit re-queued meanwhile is left to its new download. Each emptied copy's message
is stamped with the change counter, as a download's is: its new state reaches ``changed_since``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.media.download import touch_message
from wazzup_plugin.media.tables import EXPIRED, STORED
from wazzup_plugin.store_common import in_batches

log = logging.getLogger(__name__)

BATCH = 8          # copies per transaction: at most 200 MB freed in one commit
MAX_BATCHES = 50   # per housekeeping run; the rest waits for the next run
# And no new batch after this many seconds of a run: housekeeping runs in the outbox worker's loop, and
# retention switched on over a large store of videos must not hold its sends (nor its heartbeat) back.
RUN_SECONDS = 2.0


def purge_expired_media(ctx, batch: int = BATCH, max_batches: int = MAX_BATCHES,
                        seconds: float | None = RUN_SECONDS) -> int:
    """Empty the stored copies older than the retention; returns how many."""
    days = ctx.state.settings.media_retention_days
    if not days:
        return 0
    t = ctx.state.tables["media"]
    # A literal 'stored': the planner then proves that the partial index ix_wazzup_media_stored applies.
    past = sa.and_(t.c.state == sa.literal_column(f"'{STORED}'"), t.c.stored_at < ctx.clock() - timedelta(days=days))
    emptied = in_batches(ctx, t.c.message_id, t.c.stored_at, past,
                         lambda ids: sa.update(t).where(t.c.message_id.in_(ids), past)
                         .values(data=None, state=EXPIRED).returning(t.c.message_id),
                         batch, max_batches, written=lambda tx, seq, rows: _stamp(tx, ctx.state, seq, rows),
                         seconds=seconds)
    if emptied:
        log.info("Wazzup24 housekeeping: %s customers' media past retention emptied", emptied,
                 extra={"context": {"media_purged": emptied}})
    return emptied


def _stamp(tx, state, seq: int, rows) -> None:
    """The messages whose copies were emptied, as changed: ``wazzup_media_state`` is theirs, and the agents'
    pages and integrators follow messages by ``changed_since`` (a page showing the copy learns it is gone)."""
    for row in rows:  # a batch's few
        touch_message(tx, state, row.message_id, seq)
