"""The download job: a thread of the outbox worker claims due media rows with a lease and downloads each.

Claimed like the outbox's rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock
serialises claimers), so two workers never download the same file; an outcome is recorded only
under the claim it was made with (a retry or an edit meanwhile clears it). Network errors and 5xx
are retried after 1 min, 5 min, 30 min, 2 h and 12 h, then the row fails; 404/410 fail at once. An
agent may retry a failed row (``resources.RetryResource``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin.media.fetch import (MIN_RATE, STOPPED, Fetched, fetch, longest_seconds, served_type,
                                       sniffed_type)
from wazzup_plugin.media.tables import FAILED, PENDING, STORED
from wazzup_plugin.media.urls import media_url
from wazzup_plugin.store_common import built, host_tables

log = logging.getLogger(__name__)

RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                timedelta(hours=12))
BATCH = 5                  # downloads per claim of the worker's media thread (outbound/worker.py)
LEASE_MARGIN = 30.0        # seconds of a claim beyond the download's own budget (its database writes)


def budget_seconds(settings) -> float:
    """What one download may take however slowly it comes: a few reads' timeouts (a large file is many
    reads). A file that keeps coming at ``fetch.MIN_RATE`` is given more (:func:`lease_seconds`)."""
    return settings.connect_timeout + 3 * settings.read_timeout


def lease_seconds(settings) -> float:
    """A row's claim: the longest download (the largest file kept, at ``fetch.MIN_RATE``) and its writes."""
    return longest_seconds(budget_seconds(settings), settings.media_max_bytes) + LEASE_MARGIN


def claim_due(db, table: sa.Table, owner: str, now, limit: int, lease: timedelta) -> list:
    """Lease up to ``limit`` due pending rows to ``owner``: ``(message_id, source_uri, name, token)`` each."""
    t = table
    with db.write() as tx:
        rows = tx.conn.execute(
            _due(t, now, t.c.message_id, t.c.source_uri, t.c.name, t.c.token)
            .order_by(t.c.next_attempt_at, t.c.message_id).limit(limit)
            .with_for_update(skip_locked=True)).all()
        if rows:
            tx.conn.execute(sa.update(t).where(t.c.message_id.in_([r.message_id for r in rows]))
                            .values(lease_owner=owner, lease_until=now + lease))
    return rows


def _due(t: sa.Table, now, *columns) -> sa.Select:
    """``columns`` of the due pending rows that nobody holds."""
    # A literal 'pending': the planner then proves the partial due index applies.
    return sa.select(*columns).where(t.c.state == sa.literal_column(f"'{PENDING}'"), t.c.next_attempt_at <= now,
                                     sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now))


def anything_due(db, table: sa.Table, now) -> bool:
    """Whether a claim now would take a row: a read, taking no lock (the worker's check between polls)."""
    def build():
        return sa.select(sa.exists(_due(table, sa.bindparam("b_now", type_=table.c.next_attempt_at.type),
                                        table.c.message_id)))

    with db.read() as conn:
        return bool(conn.execute(built(table, "anything_due", build), {"b_now": now}).scalar())


def _recorded_values(result: Fetched, row, attempts: int, now) -> dict:
    """The row's new columns after ``result`` of its ``attempts``-th attempt."""
    done = {"lease_owner": None, "lease_until": None, "attempts": attempts}
    if result.outcome == STORED:
        return {**done, "state": STORED, "data": result.data, "sha256": result.sha256, "size": len(result.data),
                "content_type": served_type(row.name, result.content_type or sniffed_type(result.data)), "stored_at": now, "last_error": None,
                "url": media_url(row.token, row.name)}
    if result.outcome == "retry" and attempts <= len(RETRY_DELAYS):
        return {**done, "next_attempt_at": now + RETRY_DELAYS[attempts - 1], "last_error": result.error}
    state = FAILED if result.outcome == "retry" else result.outcome
    return {**done, "state": state, "last_error": result.error}


def download_one(db, state, session, owner: str, row, clock, stop=None) -> str:
    """Download one claimed row and record the outcome under ``owner``'s claim; returns the outcome.
    ``stop`` set (the worker is stopping): the download ends within its budget, however it is going."""
    settings = state.settings
    result = fetch(session, row.source_uri, hosts=settings.media_hosts, max_bytes=settings.media_max_bytes,
                   timeout=(settings.connect_timeout, settings.read_timeout), budget=budget_seconds(settings),
                   min_rate=MIN_RATE, stop=stop, name=row.name)
    if result.outcome == STOPPED:  # no fault of the file's: given back uncounted, taken up again at once
        _release(db, state.tables["media"], owner, [row.message_id])
        log.info("Wazzup24 media download given back: the worker is stopping",
                 extra={"context": {"message_id": row.message_id}})
        return STOPPED
    recorded = _record(db, state, owner, row, result, clock())
    if recorded is None:
        return "gone"  # its message was deleted meanwhile
    attempts, values = recorded
    if values is None:
        return "superseded"  # an edit brought a new link meanwhile: the new one is downloaded next
    context = {"message_id": row.message_id, "outcome": result.outcome, "attempts": attempts}
    if result.outcome == STORED:
        log.info("Wazzup24 media stored", extra={"context": {**context, "size": len(result.data)}})
    else:
        log.warning("Wazzup24 media not stored: %s", result.error,
                    extra={"context": {**context, "state": values.get("state", PENDING)}})
    return values.get("state", PENDING)


def _record(db, state, owner: str, row, result: Fetched, now) -> tuple[int, dict | None] | None:
    """Record ``result`` as the row's next attempt, only under ``owner``'s claim: ``(attempts, the
    values written, or None when the claim was no longer ours)``; None when the row is gone."""
    t = state.tables["media"]
    with db.write() as tx:
        attempts = tx.conn.execute(sa.select(t.c.attempts).where(t.c.message_id == row.message_id)).scalar()
        if attempts is None:
            return None
        values = _recorded_values(result, row, attempts + 1, now)
        seq = tx.change_seq if "state" in values else None  # before any write, as every writer of messages
        recorded = tx.conn.execute(sa.update(t).where(*_still_ours(t, row.message_id, owner)).values(**values)).rowcount
        if recorded and seq is not None:
            touch_message(tx, state, row.message_id, seq)
    return attempts + 1, values if recorded else None


def touch_message(tx, state, message_id: int, seq: int) -> None:
    """Stamp the message with ``seq``: its media's new state reaches the agents' pages as a change."""
    _, messages = host_tables(state)
    chat_id = tx.conn.execute(sa.update(messages).where(messages.c.id == message_id).values(change_seq=seq)
                              .returning(messages.c.chat_id)).scalar()
    if chat_id is not None:
        tx.touched(chat_ids=[chat_id], message_ids=[message_id])


def download_due(helpdesk, state, owner: str, stop=None, batch: int = BATCH) -> int:
    """Claim up to ``batch`` due rows and download each; returns how many were claimed."""
    settings, t = state.settings, state.tables["media"]
    lease = timedelta(seconds=lease_seconds(settings))
    rows = claim_due(helpdesk.db, t, owner, helpdesk.clock(), batch, lease)
    for index, row in enumerate(rows):
        if stop is not None and stop.is_set():
            _release(helpdesk.db, t, owner, [r.message_id for r in rows[index:]])
            break
        # The claim's lease covers one download: each row's is renewed as its turn comes, so the
        # batch's later rows are never taken up by another worker while this one is still busy.
        if not _renew(helpdesk.db, t, owner, row.message_id, helpdesk.clock() + lease):
            continue
        try:
            download_one(helpdesk.db, state, helpdesk.http, owner, row, helpdesk.clock, stop)
        except Exception as exc:  # one bad row must not stop the others, nor be downloaded forever
            log.exception("Wazzup24 media download crashed", extra={"context": {"message_id": row.message_id}})
            _record_crash(helpdesk.db, state, owner, row, helpdesk.clock(), exc)
    return len(rows)


def _renew(db, table: sa.Table, owner: str, message_id: int, until) -> bool:
    """Extend ``owner``'s claim on a row to ``until``; False when the claim is no longer ``owner``'s."""
    with db.write() as tx:
        return bool(tx.conn.execute(sa.update(table).where(*_still_ours(table, message_id, owner))
                                    .values(lease_until=until)).rowcount)


def _still_ours(table: sa.Table, message_id: int, owner: str) -> tuple:
    """The row under ``owner``'s claim, still pending: a retry or an edit meanwhile clears the claim."""
    return (table.c.message_id == message_id, table.c.lease_owner == owner,
            table.c.state == sa.literal_column(f"'{PENDING}'"))


def _record_crash(db, state, owner: str, row, now, exc: Exception) -> None:
    """Count a download that raised as a failed attempt, in a transaction of its own, so that a row
    that always crashes (whatever the cause) follows the retry schedule and ends ``failed``."""
    try:
        _record(db, state, owner, row, Fetched("retry", f"the download failed unexpectedly ({type(exc).__name__})"),
                now)
    except Exception:  # the database itself is failing: the lease expires and the row is taken up again
        log.exception("Wazzup24 media download's failure could not be recorded",
                      extra={"context": {"message_id": row.message_id}})


def _release(db, table: sa.Table, owner: str, message_ids: list[int]) -> None:
    """Give back claims never attempted (a stopping worker), so the next worker takes them at once."""
    with db.write() as tx:
        tx.conn.execute(sa.update(table).where(table.c.message_id.in_(message_ids), table.c.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None))


def retry_failed(db, state, message_id: int, chat_id: int, now) -> str | None:
    """An agent's retry: a failed row becomes due now. Returns the row's state before (None: no row);
    only a failed row changes."""
    t = state.tables["media"]
    with db.write() as tx:
        current = tx.conn.execute(sa.select(t.c.state).where(
            t.c.message_id == message_id, t.c.chat_id == chat_id)).scalar()
        if current == FAILED:
            seq = tx.change_seq
            tx.conn.execute(sa.update(t).where(t.c.message_id == message_id, t.c.state == FAILED)
                            .values(state=PENDING, attempts=0, next_attempt_at=now, lease_owner=None,
                                    lease_until=None, last_error=None))
            touch_message(tx, state, message_id, seq)
    return current


