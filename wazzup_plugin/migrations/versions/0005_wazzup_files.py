"""uploaded files agents send (wazzup_files)

Revision ID: 0005_wazzup
Revises: 0004_wazzup
Create Date: 2026-11-28 11:00:00

Files an agent attaches from their computer are kept in the database (backups hold them, no
directory to configure) until Wazzup downloads them by their token's public URL. A new table:
created unless the live schema already has it, as the earlier revisions look first.
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_wazzup'
down_revision = '0004_wazzup'
branch_labels = None
depends_on = None


def upgrade():
    if 'wazzup_files' in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table('wazzup_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('chat_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('content_type', sa.String(length=200), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_wazzup_files_chat_id_chats'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploaded_by'], ['agents.id'], name=op.f('fk_wazzup_files_uploaded_by_agents'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wazzup_files')),
    sa.UniqueConstraint('token', name=op.f('uq_wazzup_files_token'))
    )
    with op.batch_alter_table('wazzup_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wazzup_files_chat_id'), ['chat_id'], unique=False)


def downgrade():
    with op.batch_alter_table('wazzup_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wazzup_files_chat_id'))
    op.drop_table('wazzup_files')
