"""crm_message_id unique where set (df533ec)

Revision ID: 0003_wazzup
Revises: 0002_wazzup
Create Date: 2026-11-28 10:00:01

The unique constraint on wazzup_messages.crm_message_id becomes a partial unique index of the
same name (WHERE crm_message_id IS NOT NULL): incoming messages, nearly every row, carry none.
Databases made while 0001_wazzup was edited in place already have the index: left as they are.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_wazzup'
down_revision = '0002_wazzup'
branch_labels = None
depends_on = None

NAME = 'uq_wazzup_messages_crm_message_id'
WHERE = sa.text('crm_message_id IS NOT NULL')


def upgrade():
    constraints = {c['name'] for c in sa.inspect(op.get_bind()).get_unique_constraints('wazzup_messages')}
    if NAME not in constraints:
        return
    with op.batch_alter_table('wazzup_messages', schema=None) as batch_op:
        batch_op.drop_constraint(NAME, type_='unique')
    with op.batch_alter_table('wazzup_messages', schema=None) as batch_op:
        batch_op.create_index(NAME, ['crm_message_id'], unique=True, postgresql_where=WHERE, sqlite_where=WHERE)


def downgrade():
    with op.batch_alter_table('wazzup_messages', schema=None) as batch_op:
        batch_op.drop_index(NAME)
    with op.batch_alter_table('wazzup_messages', schema=None) as batch_op:
        batch_op.create_unique_constraint(NAME, ['crm_message_id'])
