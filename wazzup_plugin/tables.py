"""The plugin's tables (``wazzup_*``), linked 1:1 to host rows; the plugin adds no host columns.

Tables are defined on the host's ``MetaData`` at startup (``register_schema``), idempotently.
"""

from __future__ import annotations

import sqlalchemy as sa

from wazzup_plugin.types import UTCDateTime

PREFIX = "wazzup_"


def define_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    from wazzup_plugin.heartbeats import define_heartbeats_table
    from wazzup_plugin.inbound.tables import define_inbound_tables
    from wazzup_plugin.media.tables import define_media_table
    from wazzup_plugin.outbound.tables import define_outbound_tables

    tables = {
        "chats": _table(metadata, "wazzup_chats",
            sa.Column("chat_id", sa.Integer, sa.ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("channel_id", sa.String(64), nullable=False),
            sa.Column("chat_type", sa.String(32), nullable=False),
            sa.Column("wazzup_chat_id", sa.String(200), nullable=False),
            sa.Column("contact_name", sa.String(300)),
            # One chat per (channel, chat type, chat id): two first messages arriving at once make one chat.
            sa.UniqueConstraint("channel_id", "chat_type", "wazzup_chat_id",
                                name="uq_wazzup_chats_channel_type_chat"),
        ),
        "messages": _table(metadata, "wazzup_messages",
            sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("chat_id", sa.Integer, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False,
                      index=True),
            # Wazzup's id: the key that makes redeliveries harmless. NULL while a send is in flight.
            sa.Column("wazzup_message_id", sa.String(64), unique=True),
            # Our id sent as crmMessageId: Wazzup rejects a repeat within 60 s, so retries never duplicate.
            # Unique where set (index below): incoming messages, nearly all rows, have none.
            sa.Column("crm_message_id", sa.String(64)),
            sa.Column("is_echo", sa.Boolean, nullable=False, default=False),
            sa.Column("sent_from_app", sa.Boolean),
            sa.Column("author_id", sa.String(200)),
            sa.Column("ref_message_id", sa.String(64)),
            # The messenger time of the newest copy applied: an older copy never undoes a newer edit.
            sa.Column("version_at", UTCDateTime()),
            # The message that resent this failed one (set once: a message is resent at most once).
            sa.Column("resent_as", sa.Integer, sa.ForeignKey("messages.id", ondelete="SET NULL")),
            # Partial: a NULL entry per incoming message would cost every delivery an index write and
            # the table an index as big as its key's, for rows nothing ever looks up by this column.
            sa.Index("uq_wazzup_messages_crm_message_id", "crm_message_id", unique=True,
                     postgresql_where=sa.text("crm_message_id IS NOT NULL"),
                     sqlite_where=sa.text("crm_message_id IS NOT NULL")),
        ),
        "channels": _table(metadata, "wazzup_channels",
            sa.Column("channel_id", sa.String(64), primary_key=True),
            sa.Column("transport", sa.String(32)),
            sa.Column("plain_id", sa.String(200)),
            sa.Column("state", sa.String(64), nullable=False),
            sa.Column("tier", sa.String(32)),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
        ),
    }
    tables.update(define_inbound_tables(metadata, _table))
    tables.update(define_outbound_tables(metadata, _table))
    tables["heartbeats"] = define_heartbeats_table(metadata, _table)
    tables["media"] = define_media_table(metadata, _table)
    return tables


def _table(metadata: sa.MetaData, name: str, *columns) -> sa.Table:
    assert name.startswith(PREFIX), name
    if name in metadata.tables:
        return metadata.tables[name]
    return sa.Table(name, metadata, *columns)
