"""a redelivered odd item is quarantined once

Revision ID: 0012_wazzup
Revises: 0011_wazzup
Create Date: 2026-11-29 19:45:00

wazzup_quarantine gains ``item_digest``: SHA-256 of the section and the item as stored, unique, so
that the webhook keeps an item Wazzup delivers again as the row already there. Rows stored before
get their digest here, oldest first; a row that repeats an older one keeps NULL (NULLs never
conflict) and stays, for an operator to replay or leave: nothing quarantined is deleted by an upgrade.
The digest is ``wazzup_plugin.inbound.parse.quarantine_digest``, written out again here because a
migration must keep doing what it did when it was written.
"""
import hashlib

from alembic import op
import sqlalchemy as sa


revision = '0012_wazzup'
down_revision = '0011_wazzup'
branch_labels = None
depends_on = None

BATCH = 1000


def _digest(section, item):
    return hashlib.sha256(f"{section}\n{item}".encode("utf-8", "surrogatepass")).hexdigest()


def _columns(table):
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade():
    if 'item_digest' in _columns('wazzup_quarantine'):
        return
    with op.batch_alter_table('wazzup_quarantine', schema=None) as batch_op:
        batch_op.add_column(sa.Column('item_digest', sa.String(length=64), nullable=True))
    quarantine = sa.table('wazzup_quarantine', sa.column('id', sa.Integer()), sa.column('section', sa.String()),
                          sa.column('item', sa.Text()), sa.column('item_digest', sa.String()))
    conn = op.get_bind()
    seen, after = set(), 0
    while True:
        rows = conn.execute(sa.select(quarantine.c.id, quarantine.c.section, quarantine.c.item)
                            .where(quarantine.c.id > after).order_by(quarantine.c.id).limit(BATCH)).all()
        if not rows:
            break
        after = rows[-1].id
        firsts = []
        for row in rows:
            digest = _digest(row.section, row.item)
            if digest not in seen:
                seen.add(digest)
                firsts.append({"b_id": row.id, "b_digest": digest})
        if firsts:
            conn.execute(quarantine.update().where(quarantine.c.id == sa.bindparam("b_id"))
                         .values(item_digest=sa.bindparam("b_digest")), firsts)
    with op.batch_alter_table('wazzup_quarantine', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_wazzup_quarantine_item_digest'), ['item_digest'])


def downgrade():
    with op.batch_alter_table('wazzup_quarantine', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_wazzup_quarantine_item_digest'), type_='unique')
        batch_op.drop_column('item_digest')
