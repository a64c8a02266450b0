"""incoming media kept by the helpdesk (wazzup_media)

Revision ID: 0009_wazzup
Revises: 0008_wazzup
Create Date: 2026-11-28 14:00:00

An incoming message with a link into Wazzup's store gets a row here, in the transaction that stores
it; the outbox worker downloads the file into `data` in the background (with its SHA-256), and the
helpdesk serves that copy at /wazzup24/media/{token}/{name}. The due index holds pending rows only,
as the outbox's does (0004). A new table: created unless the live schema already has it.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_wazzup'
down_revision = '0008_wazzup'
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade():
    if 'wazzup_media' in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table('wazzup_media',
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.Integer(), nullable=False),
    sa.Column('source_uri', sa.String(length=2000), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=80), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('name', sa.String(length=500), nullable=True),
    sa.Column('url', sa.String(length=500), nullable=True),
    sa.Column('content_type', sa.String(length=200), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_wazzup_media_message_id_messages'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_wazzup_media')),
    sa.UniqueConstraint('token', name=op.f('uq_wazzup_media_token'))
    )
    op.create_index('ix_wazzup_media_due', 'wazzup_media', ['next_attempt_at', 'message_id'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade():
    op.drop_index('ix_wazzup_media_due', table_name='wazzup_media')
    op.drop_table('wazzup_media')
