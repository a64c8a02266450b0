"""no index on chats.phone (df533ec)

Revision ID: 0002_host
Revises: 0001_host
Create Date: 2026-11-28 10:00:00

No query can use ix_chats_phone (search matches the number with LIKE '%digits%'), and every chat
update wrote an entry into it. 0001_host once created it; databases made while 0001_host was
edited in place (df533ec .. this revision) never had it, hence IF EXISTS.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_host'
down_revision = '0001_host'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(sa.text("DROP INDEX IF EXISTS ix_chats_phone"))


def downgrade():
    op.create_index('ix_chats_phone', 'chats', ['phone'], unique=False)
