"""agents who left the helpdesk stop being Wazzup users (wazzup_users.left_at, removed_at)

Revision ID: 0015_wazzup
Revises: 0014_wazzup
Create Date: 2026-12-01 10:00:00

The host tells the plugin when an agent is deactivated (the agents_access_changed hook): their
row gets left_at, and the outbox worker deletes the Wazzup user (DELETE /v3/users/:id), recording
removed_at; reactivation clears both, and the agent is posted again. Existing rows are active
agents: both stay NULL. Each column is added unless the live schema already has it (a database
made by `create_all` of a newer release).
"""
from alembic import op
import sqlalchemy as sa


revision = '0015_wazzup'
down_revision = '0014_wazzup'
branch_labels = None
depends_on = None

COLUMNS = (('left_at', sa.DateTime(timezone=True)), ('removed_at', sa.DateTime(timezone=True)))


def upgrade():
    present = {c['name'] for c in sa.inspect(op.get_bind()).get_columns('wazzup_users')}
    missing = [(name, type_) for name, type_ in COLUMNS if name not in present]
    if missing:
        with op.batch_alter_table('wazzup_users', schema=None) as batch_op:
            for name, type_ in missing:
                batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade():
    with op.batch_alter_table('wazzup_users', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
