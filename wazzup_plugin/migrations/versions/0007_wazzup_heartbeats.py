"""wazzup_heartbeats: when the webhook last received and the outbox worker last ran

Revision ID: 0007_wazzup
Revises: 0006_wazzup
Create Date: 2026-11-28 10:00:05

One row per name (webhook, webhook_previous_secret, worker), read by `helpdesk-stub wazzup24
status`. Created only when missing: a database made by `create_all` of a newer release has it.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_wazzup'
down_revision = '0006_wazzup'
branch_labels = None
depends_on = None


def upgrade():
    if 'wazzup_heartbeats' in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table('wazzup_heartbeats',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('every_seconds', sa.Float(), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_wazzup_heartbeats'))
    )


def downgrade():
    op.drop_table('wazzup_heartbeats')
