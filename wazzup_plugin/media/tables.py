"""The table of incoming media kept by the helpdesk (``wazzup_media``): one row per message with a link."""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.types import UTCDateTime

# pending → stored, or → failed / too_big / refused_host. Only failed rows are retried by an agent.
# stored → expired: WAZZUP24_MEDIA_RETENTION_DAYS dropped the bytes (``housekeeping``); the row stays.
PENDING, STORED, FAILED, TOO_BIG, REFUSED_HOST, EXPIRED = (
    "pending", "stored", "failed", "too_big", "refused_host", "expired")
STATES = (PENDING, STORED, FAILED, TOO_BIG, REFUSED_HOST, EXPIRED)


def define_media_table(metadata, table) -> sa.Table:
    return table(metadata, "wazzup_media",
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
        # No foreign key (nor index) of its own: the message's row goes with its chat, and this row
        # with the message; an index here would cost every media delivery one more write.
        sa.Column("chat_id", sa.Integer, nullable=False),
        # The link Wazzup gave (its store), as the message had it when the row was (re)queued.
        sa.Column("source_uri", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        # A worker's claim: two workers never download the same row (as the outbox's lease).
        sa.Column("lease_owner", sa.String(80)),
        sa.Column("lease_until", UTCDateTime()),
        # Why the last attempt failed, in our words (never a response body or a header).
        sa.Column("last_error", sa.String(500)),
        sa.Column("name", sa.String(500)),
        # The copy's URL (``urls.media_url``), set once stored: a column, so that the host joins it
        # into its page queries (``fields``); its %-encoded name cannot be built in SQL.
        sa.Column("url", sa.String(500)),
        sa.Column("content_type", sa.String(200)),
        sa.Column("size", sa.Integer),
        sa.Column("sha256", sa.String(64)),
        sa.Column("data", sa.LargeBinary),               # NULL until stored
        # The only key to the copy's URL (/wazzup24/media/{token}/{name}): unguessable.
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("stored_at", UTCDateTime()),
        # Pending rows only, in claiming order: the stored ones (nearly all) stay out of it.
        sa.Index("ix_wazzup_media_due", "next_attempt_at", "message_id",
                 postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'")),
        # The stored copies, by age, with their sizes: retention finds the oldest, and the status check
        # sums what they take, from this index alone. A table scan would read every copy's bytes on
        # SQLite (``data`` lies before ``stored_at`` in the row). ``state``, the same in every entry, is
        # there for SQLite (3.40), which reads the row to check a partial index's condition otherwise.
        sa.Index("ix_wazzup_media_stored", "stored_at", "size", "state",
                 postgresql_where=sa.text("state = 'stored'"), sqlite_where=sa.text("state = 'stored'")),
    )
