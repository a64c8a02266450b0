"""the outbox claims in lanes: maybe-sent retries, then agents' sends, then integrators' bulk

Revision ID: 0011_wazzup
Revises: 0010_wazzup
Create Date: 2026-11-29 08:40:00

wazzup_outbox gains ``lane`` (0: a retry that may have reached Wazzup, whose dedupe window is its
deadline; 1: what agents send; 2: a ``Prefer: respond-async`` send), and the due index, which the
claim reads a lane at a time, leads with it. Earlier rows go in the agents' lane (1): a respond-async
send still queued at the upgrade cannot be told from an agent's. Pending rows already marked maybe
sent move to 0.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_wazzup'
down_revision = '0010_wazzup'
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def _columns(table):
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade():
    if 'lane' not in _columns('wazzup_outbox'):
        with op.batch_alter_table('wazzup_outbox', schema=None) as batch_op:
            batch_op.add_column(sa.Column('lane', sa.SmallInteger(), nullable=False, server_default='1'))
    outbox = sa.table('wazzup_outbox', sa.column('lane', sa.SmallInteger()), sa.column('state', sa.String()),
                      sa.column('maybe_sent', sa.Boolean()))
    op.execute(outbox.update().where(outbox.c.state == 'pending', outbox.c.maybe_sent.is_(True)).values(lane=0))
    op.execute(sa.text("DROP INDEX IF EXISTS ix_wazzup_outbox_due"))
    op.create_index('ix_wazzup_outbox_due', 'wazzup_outbox', ['lane', 'next_attempt_at', 'message_id'],
                    unique=False, postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade():
    op.drop_index('ix_wazzup_outbox_due', table_name='wazzup_outbox')
    op.create_index('ix_wazzup_outbox_due', 'wazzup_outbox', ['next_attempt_at', 'message_id'], unique=False,
                    postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table('wazzup_outbox', schema=None) as batch_op:
        batch_op.drop_column('lane')
