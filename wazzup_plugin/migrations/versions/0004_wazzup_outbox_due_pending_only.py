"""the outbox's due index holds pending rows only (51c7580)

Revision ID: 0004_wazzup
Revises: 0003_wazzup
Create Date: 2026-11-28 10:00:02

ix_wazzup_outbox_due was (state, next_attempt_at) over every row; it becomes (next_attempt_at,
message_id) WHERE state = 'pending'. Rebuilt unconditionally: a database made while 0001_wazzup
was edited in place may have either definition under the same name, and the index is as small
as the backlog.
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_wazzup'
down_revision = '0003_wazzup'
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade():
    op.execute(sa.text("DROP INDEX IF EXISTS ix_wazzup_outbox_due"))
    op.create_index('ix_wazzup_outbox_due', 'wazzup_outbox', ['next_attempt_at', 'message_id'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade():
    op.drop_index('ix_wazzup_outbox_due', table_name='wazzup_outbox')
    op.create_index('ix_wazzup_outbox_due', 'wazzup_outbox', ['state', 'next_attempt_at'], unique=False)
