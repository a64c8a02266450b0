"""customers' media get a retention (ix_wazzup_media_stored)

Revision ID: 0013_wazzup
Revises: 0012_wazzup
Create Date: 2026-11-29 22:45:00

WAZZUP24_MEDIA_RETENTION_DAYS drops a kept copy's bytes that many days after it was downloaded: the
housekeeping finds the oldest stored copies through this index, and the status check sums their sizes
from it, neither reading a row (on SQLite a table scan would read every copy's bytes). Stored rows
only; a copy leaves it when retention empties it (state ``expired``). ``state`` is in it for SQLite,
which otherwise reads the row to check the index's condition.
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_wazzup'
down_revision = '0012_wazzup'
branch_labels = None
depends_on = None

STORED = sa.text("state = 'stored'")


def upgrade():
    op.create_index('ix_wazzup_media_stored', 'wazzup_media', ['stored_at', 'size', 'state'], unique=False,
                    postgresql_where=STORED, sqlite_where=STORED)


def downgrade():
    op.drop_index('ix_wazzup_media_stored', table_name='wazzup_media')
