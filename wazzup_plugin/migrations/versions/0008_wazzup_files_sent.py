"""wazzup_files learn when they were sent and when retention purged them

Revision ID: 0008_wazzup
Revises: 0007_wazzup
Create Date: 2026-11-28 13:00:00

wazzup_files gains sent_at (set in the transaction that stores the first message using the
file) and purged_at (retention emptied its data; the row stays so that the public URL answers
410 Gone rather than 404), and ix_wazzup_files_live: (created_at, sent_at, size) of the files
still holding their bytes, which the outbox worker's housekeeping reads by age and the upload
quota sums, without reading a row and its bytes. Each step looks at the live schema first: a
database made by `create_all` of a newer release already has them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_wazzup'
down_revision = '0007_wazzup'
branch_labels = None
depends_on = None

COLUMNS = (('sent_at', sa.DateTime(timezone=True)), ('purged_at', sa.DateTime(timezone=True)))
INDEX = 'ix_wazzup_files_live'
LIVE = sa.text('purged_at IS NULL')


def _inspector():
    return sa.inspect(op.get_bind())


def upgrade():
    present = {c['name'] for c in _inspector().get_columns('wazzup_files')}
    missing = [(name, type_) for name, type_ in COLUMNS if name not in present]
    if missing:
        with op.batch_alter_table('wazzup_files', schema=None) as batch_op:
            for name, type_ in missing:
                batch_op.add_column(sa.Column(name, type_, nullable=True))
    if INDEX not in {i['name'] for i in _inspector().get_indexes('wazzup_files')}:
        op.create_index(INDEX, 'wazzup_files', ['created_at', 'sent_at', 'size'], unique=False,
                        postgresql_where=LIVE, sqlite_where=LIVE)


def downgrade():
    op.drop_index(INDEX, table_name='wazzup_files')
    with op.batch_alter_table('wazzup_files', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
