"""resend bookkeeping on wazzup_messages, not the outbox (a59d048)

Revision ID: 0002_wazzup
Revises: 0001_wazzup
Create Date: 2026-11-28 10:00:00

wazzup_outbox.resent_as moves to wazzup_messages.resent_as, with its values: a message resent
before this upgrade stays resent (its Resend offer does not come back). A message whose outbox
row held the claim but which has no Wazzup row gets one, as the resend itself now does.

Databases made while 0001_wazzup was edited in place already have the new column and lack the
old one: each step looks at the live schema first.
"""
from alembic import op
import sqlalchemy as sa


revision = '0002_wazzup'
down_revision = '0001_wazzup'
branch_labels = None
depends_on = None


def _columns(table):
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade():
    if 'resent_as' not in _columns('wazzup_messages'):
        with op.batch_alter_table('wazzup_messages', schema=None) as batch_op:
            batch_op.add_column(sa.Column('resent_as', sa.Integer(), nullable=True))
            batch_op.create_foreign_key(batch_op.f('fk_wazzup_messages_resent_as_messages'), 'messages',
                                        ['resent_as'], ['id'], ondelete='SET NULL')
    if 'resent_as' in _columns('wazzup_outbox'):
        op.execute(sa.text(
            "UPDATE wazzup_messages SET resent_as = (SELECT o.resent_as FROM wazzup_outbox o"
            " WHERE o.message_id = wazzup_messages.message_id)"
            " WHERE resent_as IS NULL AND EXISTS (SELECT 1 FROM wazzup_outbox o"
            " WHERE o.message_id = wazzup_messages.message_id AND o.resent_as IS NOT NULL)"))
        op.execute(sa.text(
            "INSERT INTO wazzup_messages (message_id, chat_id, is_echo, resent_as)"
            " SELECT o.message_id, o.chat_id, :no, o.resent_as FROM wazzup_outbox o"
            " WHERE o.resent_as IS NOT NULL AND NOT EXISTS (SELECT 1 FROM wazzup_messages w"
            " WHERE w.message_id = o.message_id)").bindparams(sa.bindparam('no', False, type_=sa.Boolean())))
        with op.batch_alter_table('wazzup_outbox', schema=None) as batch_op:
            batch_op.drop_constraint('fk_wazzup_outbox_resent_as_messages', type_='foreignkey')
            batch_op.drop_column('resent_as')


def downgrade():
    with op.batch_alter_table('wazzup_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resent_as', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_wazzup_outbox_resent_as_messages'), 'messages',
                                    ['resent_as'], ['id'], ondelete='SET NULL')
    # A claim whose message has no outbox row (never sent through Wazzup) is dropped: the old
    # schema kept it on a placeholder outbox row, which a downgrade does not invent.
    op.execute(sa.text(
        "UPDATE wazzup_outbox SET resent_as = (SELECT w.resent_as FROM wazzup_messages w"
        " WHERE w.message_id = wazzup_outbox.message_id)"))
    with op.batch_alter_table('wazzup_messages', schema=None) as batch_op:
        batch_op.drop_constraint('fk_wazzup_messages_resent_as_messages', type_='foreignkey')
        batch_op.drop_column('resent_as')
