"""WhatsApp Business template sends keep their template on the outbox row

Revision ID: 0006_wazzup
Revises: 0005_wazzup
Create Date: 2026-11-28 12:00:00

wazzup_outbox gains template_id and template_values (a JSON list): a retry or a resend of a
template send repeats the template, not its filled-in text (which Wazzup would refuse outside the
24-hour window). Both nullable: every earlier row is a plain text or file send. Each step looks at
the live schema first, as the earlier revisions do.
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_wazzup'
down_revision = '0005_wazzup'
branch_labels = None
depends_on = None

COLUMNS = (('template_id', sa.String(length=64)), ('template_values', sa.Text()))


def _columns(table):
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade():
    missing = [(name, type_) for name, type_ in COLUMNS if name not in _columns('wazzup_outbox')]
    if missing:
        with op.batch_alter_table('wazzup_outbox', schema=None) as batch_op:
            for name, type_ in missing:
                batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade():
    with op.batch_alter_table('wazzup_outbox', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
