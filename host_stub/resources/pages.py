"""What every API page shares: its base query, and its rows with the change counter they cover."""

from __future__ import annotations

import sqlalchemy as sa

# The counter comes with the page, read in the same snapshot: every change at or below it is
# committed and in the result (a page without rows reads it on its own).
PAGE_SEQ = "page_change_seq"


def page_select(helpdesk, entity: str, table: sa.Table) -> sa.Select:
    """``SELECT`` of ``table`` with the plugins' joinable fields of ``entity`` and the change counter."""
    return helpdesk.db.with_change_seq(helpdesk.serializer.select(entity, table), PAGE_SEQ)


def page_rows(db, conn, stmt, params) -> tuple[list[dict], int]:
    """A page's rows and the change counter they are complete up to.

    A page with rows carries the counter in its own query (one snapshot). An empty page reads the
    counter first and then the page again: on PostgreSQL every statement has its own snapshot, so a
    counter read after an empty page could cover a change committed in between that the page never
    showed, and a poller would skip it."""
    rows = row_dicts(conn.execute(stmt, params))
    if not rows:
        seq = db.current_change_seq_in(conn)
        rows = row_dicts(conn.execute(stmt, params))
        if not rows:
            return rows, seq
    return rows, rows[0][PAGE_SEQ] or 0


def row_dicts(result) -> list[dict]:
    """A result's rows as plain dicts (much cheaper to make, and to read, than row mappings)."""
    keys = tuple(result.keys())
    # ``all()`` fetches with one fetchall(); iterating fetches a row at a time.
    return [dict(zip(keys, row)) for row in result.all()]
