"""What every API page shares: its base query, and its rows with the change counter they cover."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from host_stub.models import sqlite_stamp_isoformat, sqlite_stamp_value
from host_stub.serializer import StoredText

# The counter comes with the page, read in the same snapshot: every change at or below it is
# committed and in the result (a page without rows reads it on its own).
PAGE_SEQ = "page_change_seq"

# SQLite keeps a UTCDateTime as text; a page reads it as that text and the answer's ISO string is
# made from it directly (``models.sqlite_stamp_isoformat``), with no datetime in between.
SQLITE_STAMPS = StoredText(isoformat=sqlite_stamp_isoformat, value=sqlite_stamp_value)


def _stored(helpdesk) -> StoredText | None:
    return SQLITE_STAMPS if helpdesk.db.dialect == "sqlite" else None


def page_select(helpdesk, entity: str, table: sa.Table) -> sa.Select:
    """``SELECT`` of ``table`` with the plugins' joinable fields of ``entity`` and the change counter."""
    return helpdesk.db.with_change_seq(helpdesk.serializer.select(entity, table, _stored(helpdesk)), PAGE_SEQ)


@dataclass
class Page:
    """A page's rows as fetched (sequences in the order of ``keys``) and the counter they cover."""

    entity: str
    keys: tuple[str, ...]
    rows: list
    change_seq: int
    stored: dict[str, StoredText]

    def value(self, row, key: str):
        """One value of one row, as the column's type reads it (a stored stamp as a datetime).

        A key the select names twice reads its last column, as a dict of the row would."""
        value = row[len(self.keys) - 1 - self.keys[::-1].index(key)]
        how = self.stored.get(key)
        return how.value(value) if how is not None else value

    def items(self, helpdesk, conn, rows) -> list[dict]:
        """``rows`` (some of this page's) as the API serves them."""
        return helpdesk.serializer.page(self.entity, conn, self.keys, rows, self.stored)


def page_rows(helpdesk, conn, entity: str, table: sa.Table, stmt, params) -> Page:
    """A page of ``stmt`` (built on :func:`page_select`) and the change counter it is complete up to.

    A page with rows carries the counter in its own query (one snapshot). An empty page reads the
    counter first and then the page again: on PostgreSQL every statement has its own snapshot, so a
    counter read after an empty page could cover a change committed in between that the page never
    showed, and a poller would skip it."""
    stored = helpdesk.serializer.stored_columns(table, _stored(helpdesk))
    result = conn.execute(stmt, params)
    keys = tuple(result.keys())
    rows = result.all()  # one fetchall(); iterating fetches a row at a time
    if rows:
        return Page(entity, keys, rows, rows[0][keys.index(PAGE_SEQ)] or 0, stored)
    seq = helpdesk.db.current_change_seq_in(conn)
    rows = conn.execute(stmt, params).all()
    return Page(entity, keys, rows, rows[0][keys.index(PAGE_SEQ)] or 0 if rows else seq, stored)
