"""Heartbeats: when the webhook last received, when the outbox worker last ran (``wazzup_heartbeats``).

``helpdesk-stub wazzup24 status`` reads them to say whether Wazzup still reaches us and whether a
worker is alive. Each writer records its beat at most once every ``every`` per process: the
webhook's hot path pays an in-memory time check per request, and a write only when one is due.
One row per name (the newest beat of any process), so the table never grows.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.store_common import upsert
from wazzup_plugin.types import UTCDateTime

log = logging.getLogger(__name__)

WEBHOOK = "webhook"                                   # an authorised delivery (or Wazzup's test request)
WEBHOOK_PREVIOUS_SECRET = "webhook_previous_secret"   # a delivery let in by WAZZUP24_WEBHOOK_SECRET_PREVIOUS
WORKER = "worker"                                     # an outbox worker's loop

WEBHOOK_EVERY = timedelta(seconds=30)  # a day without deliveries is what matters: 30 s of lag is nothing
WORKER_EVERY = timedelta(seconds=10)


def define_heartbeats_table(metadata, table) -> sa.Table:
    return table(metadata, "wazzup_heartbeats",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        # How often its writer beats: a worker looks alive while its beat is younger than 3 times this.
        sa.Column("every_seconds", sa.Float),
        sa.Column("detail", sa.String(200)),            # e.g. which worker (host:pid)
    )


def due(extras: dict, name: str, now, every: timedelta) -> bool:
    """Whether ``name``'s periodic work is due in this process (then it counts as done now)."""
    key = f"due.{name}"
    last = extras.get(key)
    if last is not None and now - last < every:
        return False
    extras[key] = now
    return True


def beat(db, table: sa.Table, name: str, now, *, every: timedelta, detail: str | None = None) -> None:
    """Record ``name``'s beat (never raises: a heartbeat must not fail the work it reports on)."""
    row = {"name": name, "at": now, "every_seconds": every.total_seconds(), "detail": detail}
    try:
        with db.write() as tx:
            upsert(tx.conn, table, [row], key=["name"], update=["at", "every_seconds", "detail"])
    except sa.exc.SQLAlchemyError:
        log.warning("Wazzup24 could not record the %s heartbeat", name, exc_info=True)


def beat_if_due(helpdesk, state, name: str, *, every: timedelta, detail: str | None = None) -> None:
    """:func:`beat` when this process has not recorded ``name`` for ``every``: an in-memory check otherwise."""
    now = helpdesk.clock()
    if due(state.extras, f"heartbeat.{name}", now, every):
        beat(helpdesk.db, state.tables["heartbeats"], name, now, every=every, detail=detail)


def read_heartbeats(conn, table: sa.Table) -> dict:
    """Every recorded beat by name (a handful of rows)."""
    return {r.name: r for r in conn.execute(sa.select(table))}
