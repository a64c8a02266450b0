"""login_failures: failed sign-ins counted per username and per client address

Revision ID: 0003_host
Revises: 0002_host
Create Date: 2026-11-28 12:00:00

POST /api/session answers 429 with Retry-After, backing off more with every further failure,
once a name or an address has failed too often within the window (host_stub/auth.py
LoginThrottle). Keys are SHA-256 digests; a stale row is deleted as failures are written.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_host'
down_revision = '0002_host'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_failures',
    sa.Column('key_sha256', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key_sha256', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failures_last_failed_at'), ['last_failed_at'], unique=False)


def downgrade():
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_last_failed_at'))

    op.drop_table('login_failures')
