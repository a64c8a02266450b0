"""Tables of the inbound flow: parked items and quarantined items."""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.types import UTCDateTime


def define_inbound_tables(metadata, table) -> dict:
    return {
        # A status or echo that arrived before we knew its message (e.g. before the send call
        # returned). Applied by ``apply_parked`` when the id becomes known; expires after a day.
        "parked": table(metadata, "wazzup_parked",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),            # "status" or "echo"
            sa.Column("wazzup_message_id", sa.String(64), nullable=False, index=True),
            # The host chat of a parked echo (a send was in flight there), else NULL.
            sa.Column("chat_id", sa.Integer, index=True),
            # Makes a redelivered status or echo park once: kind, message id and what it says.
            sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
            sa.Column("item", sa.Text, nullable=False),                  # the item's JSON as received
            sa.Column("received_at", UTCDateTime(), nullable=False, index=True),
        ),
        # Items that did not fit the documented shape: kept with the reason, never silently lost.
        "quarantine": table(metadata, "wazzup_quarantine",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("section", sa.String(32), nullable=False),         # messages, statuses, ...
            sa.Column("wazzup_message_id", sa.String(64)),               # when the item had a usable one
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("item", sa.Text, nullable=False),
            # SHA-256 of the section and the item as stored: a redelivered odd item is kept once.
            # NULL on rows from before it (``0012_wazzup``) that repeat an older row.
            sa.Column("item_digest", sa.String(64), unique=True),
            sa.Column("received_at", UTCDateTime(), nullable=False, index=True),
        ),
    }
