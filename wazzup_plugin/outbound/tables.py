"""Tables of the outbound flow: the outbox, idempotency keys, uploaded files, the shared rate limiter
and the agents made Wazzup users."""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.types import UTCDateTime


def define_outbound_tables(metadata, table) -> dict:
    return {
        # One row per outgoing message that went through Wazzup: the durable retry state and the lease.
        "outbox": table(metadata, "wazzup_outbox",
            sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("chat_id", sa.Integer, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
            # pending → done. Done rows stay for the chat info and for audits.
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("crm_message_id", sa.String(64), nullable=False),
            # The channel and reply target are fixed at the first attempt, so a retry repeats it exactly.
            sa.Column("channel_id", sa.String(64)),
            sa.Column("chat_type", sa.String(32)),
            sa.Column("wazzup_chat_id", sa.String(200)),
            sa.Column("ref_message_id", sa.String(64)),
            # A WhatsApp Business template send: Wazzup's templateId and templateValues (a JSON list),
            # kept so that a retry or a resend sends the template again, not its filled-in text.
            sa.Column("template_id", sa.String(64)),
            sa.Column("template_values", sa.Text),
            sa.Column("attempts", sa.Integer, nullable=False, default=0),
            # First attempt with this crmMessageId: Wazzup's 60-s dedupe window is counted from it.
            sa.Column("first_attempt_at", UTCDateTime()),
            # Set before each call, cleared after: still set under an expired lease = the holder died mid-call.
            sa.Column("attempt_started_at", UTCDateTime()),
            # Some attempt may have reached Wazzup: later retries only inside the dedupe window.
            sa.Column("maybe_sent", sa.Boolean, nullable=False, default=False),
            sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
            # Claiming order before the due time (outbox.LANES): a maybe-sent retry, whose deadline is
            # Wazzup's dedupe window, then what agents send, then integrators' respond-async sends.
            sa.Column("lane", sa.SmallInteger, nullable=False, default=1, server_default="1"),
            sa.Column("lease_owner", sa.String(80)),
            sa.Column("lease_until", UTCDateTime()),
            sa.Column("last_error", sa.String(500)),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
            # Pending rows only, in claiming order: done rows, every message ever sent, stay out of
            # it, so it stays as small as the backlog and settling a send writes no entry into it.
            sa.Index("ix_wazzup_outbox_due", "lane", "next_attempt_at", "message_id",
                     postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'")),
            # A chat's pending rows in order: its first one, which holds the rest back (the claim).
            sa.Index("ix_wazzup_outbox_chat_pending", "chat_id", "message_id",
                     postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'")),
        ),
        # Idempotency-Key per agent: a repeated request returns the first result and sends nothing.
        "idempotency": table(metadata, "wazzup_idempotency_keys",
            sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("request_hash", sa.String(64), nullable=False),
            sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE")),
            sa.Column("response_status", sa.Integer),
            sa.Column("response_body", sa.Text),
            sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
        ),
        # Files agents upload to send (wazzup_plugin/outbound/files.py), kept in the database so that
        # backups hold them and no directory needs configuring. Wazzup downloads one by its token's URL.
        "files": table(metadata, "wazzup_files",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("token", sa.String(64), nullable=False, unique=True),
            sa.Column("chat_id", sa.Integer, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False,
                      index=True),
            sa.Column("name", sa.String(500), nullable=False),
            sa.Column("content_type", sa.String(200), nullable=False),
            sa.Column("size", sa.Integer, nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("uploaded_by", sa.Integer, sa.ForeignKey("agents.id", ondelete="SET NULL")),
            sa.Column("created_at", UTCDateTime(), nullable=False),
            # Set in the transaction that stores the first message using the file: never set = an
            # upload nobody sent, deleted after WAZZUP24_UNSENT_FILE_HOURS.
            sa.Column("sent_at", UTCDateTime()),
            # Retention emptied ``data`` (WAZZUP24_FILE_RETENTION_DAYS); the row stays so that the
            # public URL answers 410 Gone, not 404, and the quota no longer counts it.
            sa.Column("purged_at", UTCDateTime()),
            # The files still holding their bytes, as the housekeeping reads them (by age) and the upload
            # quota sums them: from this index alone, never reading a row (SQLite would read its bytes).
            sa.Index("ix_wazzup_files_live", "created_at", "sent_at", "size",
                     postgresql_where=sa.text("purged_at IS NULL"), sqlite_where=sa.text("purged_at IS NULL")),
        ),
        # One row per limiter: the current time slot and how many calls it has had; a 429 blocks all.
        "rate_limit": table(metadata, "wazzup_rate_limit",
            sa.Column("name", sa.String(32), primary_key=True),
            sa.Column("slot", sa.BigInteger, nullable=False),
            sa.Column("count", sa.Integer, nullable=False),
            sa.Column("blocked_until", UTCDateTime()),
        ),
        # The agents who sent through Wazzup, as Wazzup users (``users.py``): Wazzup shows a send's
        # crmUserId as its sender only once a user has that id. A send writes ``name`` when the agent is
        # new to its process or renamed; the outbox worker posts the rows whose ``synced_name`` differs,
        # and deletes the users of agents who left the helpdesk (``left_at`` set, ``removed_at`` not yet).
        # A few rows (one per agent): the worker reads them all, no index needed.
        "users": table(metadata, "wazzup_users",
            sa.Column("agent_id", sa.Integer, sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),       # Wazzup takes names of at most 200
            sa.Column("synced_name", sa.String(200)),                # the name Wazzup has; NULL: none
            sa.Column("synced_at", UTCDateTime()),
            sa.Column("next_try_at", UTCDateTime()),                 # after a failure: not before then
            sa.Column("last_error", sa.String(500)),                 # why the last call failed, in our words
            sa.Column("left_at", UTCDateTime()),                     # deactivated; NULL: active
            sa.Column("removed_at", UTCDateTime()),                  # when Wazzup no longer had them as a user
        ),
    }
