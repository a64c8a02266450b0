"""The outbox worker: claims due rows with a lease and attempts them, until told to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from wazzup_plugin.outbound import outbox

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"worker:{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def run_once(ctx, owner: str, batch: int = 10) -> list[outbox.Outcome]:
    """Claim what is due and attempt each; returns the outcomes (tests and ``--once`` use this)."""
    outcomes = []
    for message_id in outbox.claim_due(ctx, owner, batch):
        try:
            outcomes.append(outbox.attempt(ctx, message_id, owner))
        except Exception:  # one bad row must not stop the others; its lease expires and it is retried
            log.exception("Wazzup24 outbox attempt crashed", extra={"context": {"message_id": message_id}})
    return outcomes


HOUSEKEEPING_EVERY = 300  # loops between purges of old Idempotency-Keys


def run(ctx, stop: threading.Event, *, poll_seconds: float = 1.0, batch: int = 10) -> None:
    owner = worker_id()
    loops = 0
    log.info("Wazzup24 outbox worker started", extra={"context": {"worker": owner}})
    if ctx.client is None:
        log.warning("WAZZUP24_API_KEY is not set: the outbox worker has nothing to send with")
    while not stop.is_set():
        try:
            outcomes = run_once(ctx, owner, batch)
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
