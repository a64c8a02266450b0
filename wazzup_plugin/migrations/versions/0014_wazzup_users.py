"""agents made Wazzup users (wazzup_users)

Revision ID: 0014_wazzup
Revises: 0013_wazzup
Create Date: 2026-11-30 10:00:00

Wazzup shows a send's crmUserId as its sender (in its chat window and mobile app) only when a user
with that id exists there. A send notes its agent's name here; the outbox worker posts the agents
whose name Wazzup does not have yet (POST /v3/users). A new table: created unless the live schema
already has it.
"""
from alembic import op
import sqlalchemy as sa


revision = '0014_wazzup'
down_revision = '0013_wazzup'
branch_labels = None
depends_on = None


def upgrade():
    if 'wazzup_users' in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table('wazzup_users',
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('synced_name', sa.String(length=200), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_try_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_wazzup_users_agent_id_agents'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_wazzup_users'))
    )


def downgrade():
    op.drop_table('wazzup_users')
