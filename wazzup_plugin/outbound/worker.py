"""The outbox worker: claims due rows with a lease and attempts them, until told to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

import sqlalchemy as sa

from wazzup_plugin import heartbeats
from wazzup_plugin.outbound import outbox
from wazzup_plugin.outbound.channels import CHANNELS_EVERY, refresh_channels

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"worker:{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_once(ctx, owner: str, batch: int = 10, stop: threading.Event | None = None) -> list[outbox.Outcome]:
    """Claim what is due and attempt each; returns the outcomes (tests and ``--once`` use this).

    ``stop``: checked before each attempt. Once it is set, no new call to Wazzup starts: the rows
    claimed but not attempted are released (their lease cleared), so the next worker, after a
    restart, takes them up at once instead of after the lease (about a minute)."""
    outcomes = []
    claimed = outbox.claim_due(ctx, owner, batch)
    for index, message_id in enumerate(claimed):
        if stop is not None and stop.is_set():
            release(ctx, owner, claimed[index:])
            break
        try:
            outcomes.append(outbox.attempt(ctx, message_id, owner))
        except Exception:  # one bad row must not stop the others; its lease expires and it is retried
            log.exception("Wazzup24 outbox attempt crashed", extra={"context": {"message_id": message_id}})
    return outcomes


def release(ctx, owner: str, message_ids: list[int]) -> int:
    """Give back the leases of rows ``owner`` claimed and never attempted; returns how many.

    Only rows still pending, still leased by ``owner`` and with no attempt marked: a row whose
    attempt started keeps its lease (whoever takes it next must treat it as maybe sent)."""
    if not message_ids:
        return 0
    o = ctx.state.tables["outbox"]
    with ctx.helpdesk.db.write() as tx:
        released = tx.conn.execute(sa.update(o).where(
            o.c.message_id.in_(message_ids), o.c.lease_owner == owner, o.c.state == "pending",
            o.c.attempt_started_at.is_(None),
        ).values(lease_owner=None, lease_until=None, updated_at=ctx.clock())).rowcount
    log.info("Wazzup24 outbox worker stopping: %s claimed rows released for the next worker", released,
             extra={"context": {"worker": owner}})
    return released


HOUSEKEEPING_EVERY = 300  # loops between purges of old Idempotency-Keys


def run(ctx, stop: threading.Event, *, poll_seconds: float = 1.0, batch: int = 10) -> None:
    owner = worker_id()
    loops = 0
    # ``status`` calls the worker alive while its beat is younger than 3 times this: the poll
    # interval, or the heartbeat's own (a write every loop would cost SQLite a write lock a second).
    beat_every = max(timedelta(seconds=poll_seconds), heartbeats.WORKER_EVERY)
    log.info("Wazzup24 outbox worker started", extra={"context": {"worker": owner}})
    if ctx.client is None:
        log.warning("WAZZUP24_API_KEY is not set: the outbox worker has nothing to send with")
    while not stop.is_set():
        heartbeats.beat_if_due(ctx.helpdesk, ctx.state, heartbeats.WORKER, every=beat_every, detail=owner)
        if ctx.client is not None and heartbeats.due(ctx.state.extras, "worker.channels", ctx.clock(), CHANNELS_EVERY):
            refresh_channels(ctx)
        try:
            outcomes = run_once(ctx, owner, batch, stop)
        except Exception:  # e.g. the database is briefly unavailable: wait and try again
            log.exception("Wazzup24 outbox worker could not claim rows")
            outcomes = []
        if loops % HOUSEKEEPING_EVERY == 0:
            try:
                outbox.purge_idempotency_keys(ctx)
            except Exception:
                log.exception("Wazzup24 outbox housekeeping failed")
        loops += 1
        if len(outcomes) < batch:
            stop.wait(poll_seconds)
    log.info("Wazzup24 outbox worker stopped", extra={"context": {"worker": owner}})
