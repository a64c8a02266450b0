"""a chat's pending outbox rows in order, for the claim (ix_wazzup_outbox_chat_pending)

Revision ID: 0010_wazzup
Revises: 0009_wazzup
Create Date: 2026-11-28 12:40:00

The claim reads only the chats whose first pending row is due, found through this index, instead of
sorting the whole backlog on every claim. Pending rows only, as the due index (0004): as small as
the backlog, and settling a send removes its entry.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_wazzup'
down_revision = '0009_wazzup'
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade():
    op.create_index('ix_wazzup_outbox_chat_pending', 'wazzup_outbox', ['chat_id', 'message_id'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade():
    op.drop_index('ix_wazzup_outbox_chat_pending', table_name='wazzup_outbox')
