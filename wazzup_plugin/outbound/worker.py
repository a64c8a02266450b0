"""The outbox worker: claims due rows with a lease and attempts them, until told to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Callable

import sqlalchemy as sa

from wazzup_plugin import heartbeats
from wazzup_plugin.media import download as media_download
from wazzup_plugin.media.housekeeping import purge_expired_media
from wazzup_plugin.outbound import outbox, users, wakeup
from wazzup_plugin.outbound.channels import CHANNELS_EVERY, refresh_channels
from wazzup_plugin.outbound.file_housekeeping import purge_files

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"worker:{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_once(ctx, owner: str, batch: int = 10, stop: threading.Event | None = None,
             between: Callable[[], None] | None = None) -> list[outbox.Outcome]:
    """Claim what is due and attempt each; returns the outcomes (tests and ``--once`` use this).

    ``stop``: checked before each attempt. Once it is set, no new call to Wazzup starts: the rows
    claimed but not attempted are released (their lease cleared), so the next worker, after a
    restart, takes them up at once instead of after the lease (about a minute).

    ``between``: called before each attempt (the running worker records its heartbeat there when due:
    with Wazzup slow, a batch's calls take minutes, and ``status`` must not call the worker dead).

    A chat's messages are claimed in order (``outbox.claim_due_rows``); once one of them is left
    pending (a retry later, a lease lost, a crash), the chat's later ones are not attempted in this
    run: they are released, and go once it settles."""
    outcomes = []
    claimed = outbox.claim_due_rows(ctx, owner, batch)
    waiting_chats, held_back = set(), []  # chats whose earlier message is still pending; their later ones
    for index, row in enumerate(claimed):
        if stop is not None and stop.is_set():
            release(ctx, owner, [r.message_id for r in claimed[index:]])
            break
        if row.chat_id in waiting_chats:
            held_back.append(row.message_id)
            continue
        if between is not None:
            between()
        try:
            outcome = outbox.attempt(ctx, row.message_id, owner)
        except Exception as exc:  # one bad row must not stop the others
            log.exception("Wazzup24 outbox attempt crashed", extra={"context": {"message_id": row.message_id}})
            count_the_crash(ctx, owner, row.message_id, exc)
            outcome = None
        if outcome is None or outcome.kind in outbox.STILL_PENDING:
            waiting_chats.add(row.chat_id)
        if outcome is not None:
            outcomes.append(outcome)
    _give_back(ctx, owner, held_back)  # free at once for whoever claims after the earlier one settles
    return outcomes


# When a message whose attempt crashed before anything could go out is tried again.
CRASH_RETRY = timedelta(minutes=1)


def count_the_crash(ctx, owner: str, message_id: int, exc: Exception) -> None:
    """Count an attempt that raised before it marked itself started (so nothing went out) as a failed
    attempt: the row waits :data:`CRASH_RETRY`, and the outbox's hour rule ends it (``NOT_SENT``, with
    this reason) instead of a retry at every lease's end for ever, its chat held back behind it. An
    attempt that had started keeps its lease: whoever takes it next treats it as maybe sent."""
    o = ctx.state.tables["outbox"]
    now = ctx.clock()
    try:
        with ctx.helpdesk.db.write() as tx:
            tx.conn.execute(sa.update(o).where(
                o.c.message_id == message_id, o.c.lease_owner == owner, o.c.state == "pending",
                o.c.attempt_started_at.is_(None),
            ).values(attempts=o.c.attempts + 1, next_attempt_at=now + CRASH_RETRY, lease_owner=None,
                     lease_until=None, updated_at=now,
                     last_error=f"an internal error stopped it before it was sent ({type(exc).__name__}; see the "
                                "helpdesk's log)"))
    except Exception:  # the database itself may be what failed: the lease's end takes the row up again
        log.exception("Wazzup24 outbox could not record a crashed attempt",
                      extra={"context": {"message_id": message_id}})


def release(ctx, owner: str, message_ids: list[int]) -> int:
    """Give back the leases of rows ``owner`` claimed and never attempted; returns how many.

    Only rows still pending, still leased by ``owner`` and with no attempt marked: a row whose
    attempt started keeps its lease (whoever takes it next must treat it as maybe sent)."""
    released = _give_back(ctx, owner, message_ids)
    log.info("Wazzup24 outbox worker stopping: %s claimed rows released for the next worker", released,
             extra={"context": {"worker": owner}})
    return released


def _give_back(ctx, owner: str, message_ids: list[int]) -> int:
    """Clear ``owner``'s leases of these rows where no attempt is marked; returns how many."""
    if not message_ids:
        return 0
    o = ctx.state.tables["outbox"]
    with ctx.helpdesk.db.write() as tx:
        return tx.conn.execute(sa.update(o).where(
            o.c.message_id.in_(message_ids), o.c.lease_owner == owner, o.c.state == "pending",
            o.c.attempt_started_at.is_(None),
        ).values(lease_owner=None, lease_until=None, updated_at=ctx.clock())).rowcount


def download_due_media(ctx, owner: str, stop: threading.Event | None = None) -> int:
    """Customers' media due for download (wazzup_plugin/media): one bounded batch."""
    try:
        return media_download.download_due(ctx.helpdesk, ctx.state, owner, stop)
    except Exception:  # e.g. the database is briefly unavailable: the next loop tries again
        log.exception("Wazzup24 media downloads could not claim rows")
        return 0


def _download_media_until(ctx, owner: str, stop: threading.Event, poll_seconds: float, check_seconds: float) -> None:
    """The worker's media thread: downloads of its own, so a slow store (a large file may take minutes,
    ``media.download.lease_seconds``) never holds back the agents' queued messages."""
    helpdesk, table = ctx.helpdesk, ctx.state.tables["media"]
    idle = wakeup.IdleWait(stop, poll_seconds, lambda: media_download.anything_due(helpdesk.db, table, helpdesk.clock()),
                           check_seconds)
    while not stop.is_set():
        claimed = download_due_media(ctx, owner, stop)
        if claimed < media_download.BATCH:
            idle.after_claim(claimed > 0)


def sync_users(ctx) -> None:
    """Post the agents Wazzup does not have as users yet (``users.py``); never raises."""
    try:
        users.sync(ctx)
    except Exception:  # e.g. the database is briefly unavailable: the next sync tries again
        log.exception("Wazzup24 could not make the agents Wazzup users")


def _sync_users_until(ctx, stop: threading.Event) -> None:
    """The worker's users thread: a post to Wazzup of its own, about once a minute, so that it never
    holds back a message (a slow answer from Wazzup would, in the sending loop)."""
    while not stop.is_set():
        sync_users(ctx)
        stop.wait(users.SYNC_EVERY)


def housekeeping(ctx) -> None:
    """Old Idempotency-Keys, uploaded files and customers' media past their time (``file_housekeeping``,
    ``media.housekeeping``)."""
    for purge in (outbox.purge_idempotency_keys, purge_files, purge_expired_media):  # one failing does not skip the other
        try:
            purge(ctx)
        except Exception:
            log.exception("Wazzup24 outbox housekeeping failed")


# Seconds between purges of old Idempotency-Keys and uploaded files: timed (monotonic), not counted
# in loops, since a busy worker, woken as work comes (``wakeup``), may loop many times a second.
HOUSEKEEPING_EVERY = 300.0


def run(ctx, stop: threading.Event, *, poll_seconds: float = 1.0, batch: int = 10,
        check_seconds: float = wakeup.CHECK_SECONDS) -> None:
    """Claim and attempt until ``stop``; idle, look again at the poll, or sooner when work comes
    (``wakeup``: a read every ``check_seconds``)."""
    owner = worker_id()
    housekept_at = None
    idle = wakeup.IdleWait(stop, poll_seconds, lambda: outbox.anything_to_claim(ctx), check_seconds)
    # ``status`` calls the worker alive while its beat is younger than 3 times this (plus one send's
    # time): the poll interval, or the heartbeat's own (a write every loop would cost SQLite a write
    # lock a second). Beaten between a batch's sends too, when due.
    beat_every = max(timedelta(seconds=poll_seconds), heartbeats.WORKER_EVERY)

    def beat():
        heartbeats.beat_if_due(ctx.helpdesk, ctx.state, heartbeats.WORKER, every=beat_every, detail=owner)

    log.info("Wazzup24 outbox worker started", extra={"context": {"worker": owner}})
    if ctx.client is None:
        log.warning("WAZZUP24_API_KEY is not set: the outbox worker has nothing to send with")
    media = threading.Thread(target=_download_media_until, args=(ctx, owner, stop, poll_seconds, check_seconds),
                             name="wazzup24-media", daemon=True)
    media.start()
    agents = None
    if ctx.client is not None and ctx.settings.sync_users:
        agents = threading.Thread(target=_sync_users_until, args=(ctx, stop), name="wazzup24-users", daemon=True)
        agents.start()
    while not stop.is_set():
        beat()
        if ctx.client is not None and heartbeats.due(ctx.state.extras, "worker.channels", ctx.clock(), CHANNELS_EVERY):
            try:
                refresh_channels(ctx)
            except Exception:  # e.g. the database is briefly unavailable: the next refresh tries again
                log.exception("Wazzup24 channel list could not be stored")
        try:
            outcomes = run_once(ctx, owner, batch, stop, between=beat)
        except Exception:  # e.g. the database is briefly unavailable: wait and try again
            log.exception("Wazzup24 outbox worker could not claim rows")
            outcomes = []
        if housekept_at is None or time.monotonic() - housekept_at >= HOUSEKEEPING_EVERY:  # at start, then by time
            housekept_at = time.monotonic()
            housekeeping(ctx)
        if len(outcomes) < batch:
            idle.after_claim(bool(outcomes))
    # A download in progress ends within its budget; what it claimed but did not start is released.
    media.join(media_download.budget_seconds(ctx.state.settings) + 5)
    if agents is not None:  # a post in progress ends within the client's deadline
        agents.join(ctx.client.deadline + 5)
    log.info("Wazzup24 outbox worker stopped", extra={"context": {"worker": owner}})
