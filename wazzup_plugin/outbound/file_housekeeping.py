"""Uploaded files' lifetime, kept by the outbox worker's housekeeping (``worker.HOUSEKEEPING_EVERY``).

- An upload nobody sent (``sent_at`` never set) is deleted WAZZUP24_UNSENT_FILE_HOURS after it was
  uploaded: no message names it, and only its uploader ever had its URL.
- A sent file is kept, by default for good: a message's link keeps working. With
  WAZZUP24_FILE_RETENTION_DAYS, its bytes are dropped that many days after its upload, and the row
  stays, emptied, with ``purged_at``: its public URL then answers 410 ``wazzup_file_expired`` instead
  of 404, so whoever follows a message's old link (Wazzup, a customer, an agent) learns that it
  expired, not that it was never there. The row is a few hundred bytes; the message keeps its text
  and link.

Both work in bounded batches, each in a short transaction of its own, so that a backlog (a quota
lowered, retention switched on) neither holds a write lock for long nor frees gigabytes in one commit.
Each batch's write repeats its condition: a file that a send marked sent after the batch read it
(on PostgreSQL the two run side by side) is not deleted.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.store_common import in_batches

log = logging.getLogger(__name__)

BATCH = 20         # files per transaction (at most 200 MB of bytes freed in one commit)
MAX_BATCHES = 50   # per housekeeping run; the rest waits for the next run


def purge_files(ctx, batch: int = BATCH, max_batches: int = MAX_BATCHES) -> tuple[int, int]:
    """Delete unsent uploads past their time and drop the bytes of sent files past retention;
    returns (deleted, purged)."""
    deleted = delete_unsent(ctx, batch, max_batches)
    purged = purge_expired(ctx, batch, max_batches)
    if deleted or purged:
        log.info("Wazzup24 housekeeping: %s unsent uploads deleted, %s sent files past retention emptied",
                 deleted, purged, extra={"context": {"files_deleted": deleted, "files_purged": purged}})
    return deleted, purged


def delete_unsent(ctx, batch: int = BATCH, max_batches: int = MAX_BATCHES) -> int:
    f = ctx.state.tables["files"]
    cutoff = ctx.clock() - timedelta(hours=ctx.state.settings.unsent_file_hours)
    unsent = sa.and_(f.c.purged_at.is_(None), f.c.sent_at.is_(None), f.c.created_at < cutoff)
    return in_batches(ctx, f.c.id, f.c.created_at, unsent, lambda ids: sa.delete(f).where(f.c.id.in_(ids), unsent),
                      batch, max_batches)


def purge_expired(ctx, batch: int = BATCH, max_batches: int = MAX_BATCHES) -> int:
    days = ctx.state.settings.file_retention_days
    if not days:
        return 0
    f = ctx.state.tables["files"]
    now = ctx.clock()
    expired = sa.and_(f.c.purged_at.is_(None), f.c.sent_at.is_not(None), f.c.created_at < now - timedelta(days=days))
    return in_batches(ctx, f.c.id, f.c.created_at, expired, lambda ids: sa.update(f).where(f.c.id.in_(ids), expired)
                      .values(data=b"", purged_at=now), batch, max_batches)
