"""An idle worker's wait: until its next poll, or until there is work, whichever comes first.

Waiting the whole poll (1 s by default) between claims made an agent's file, a send answered with
``Prefer: respond-async`` and a customer's photo sit for up to that long before anything was done,
and a message queued behind its chat's message in flight waited for the poll after that one settled.
Between polls the worker now asks every ``CHECK_SECONDS`` whether a claim would take
something. The question is one read through the due index, with no lock and, on SQLite, no turn at
the write lock; the claim, a write, still runs only when there is something to take. An idle
worker costs the database about twenty indexed reads a second per thread, and the poll still paces
everything else the loop does (heartbeats, channels, housekeeping, retries coming due).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.05  # how long new work waits for an idle worker at most (plus the check's own read)
# A check takes at most about a tenth of the idle time: a chat's thousands of messages held behind its
# first one (in its backoff during an outage) are read through by every check, as by every claim.
SLOW_CHECK_FACTOR = 10


def wait_for_work(stop: threading.Event, poll_seconds: float, ready: Callable[[], bool],
                  check_seconds: float = CHECK_SECONDS) -> bool:
    """Wait up to ``poll_seconds``; True as soon as ``ready()`` is, False on ``stop`` or at the poll.

    A failing check (the database briefly away) ends the checks of this wait, which then runs to
    its end: the loop's own claim reports the failure, once per poll rather than twenty times."""
    deadline = time.monotonic() + poll_seconds
    interval = check_seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stop.wait(min(interval, remaining)):
            return False
        started = time.monotonic()
        try:
            if ready():
                return True
        except Exception:
            log.debug("Wazzup24 worker: the check for new work failed; waiting for the poll", exc_info=True)
            stop.wait(max(0.0, deadline - time.monotonic()))
            return False
        interval = max(check_seconds, (time.monotonic() - started) * SLOW_CHECK_FACTOR)


class IdleWait:
    """An idle loop's wait between claims: :func:`wait_for_work`, but the whole poll once a check
    found work that the claim after it did not take, until a claim takes something again.

    Then the check and the claim disagree: a row another transaction holds (PostgreSQL: the read
    sees it free, the claim's ``SKIP LOCKED`` passes over it), or a claim that fails while reads
    work (a full disk, a read-only standby, a lock timeout). Checking on would claim, and fail,
    twenty times a second; the loop polls as it did before checks, and one claim a poll tells
    when the two agree again."""

    def __init__(self, stop: threading.Event, poll_seconds: float, ready: Callable[[], bool],
                 check_seconds: float = CHECK_SECONDS):
        self.stop, self.poll_seconds, self.ready, self.check_seconds = stop, poll_seconds, ready, check_seconds
        self.woken = False     # the last wait ended on a check that found work
        self.polling = False   # a check and its claim disagreed, and no claim has taken anything since

    def after_claim(self, took_any: bool) -> None:
        if took_any:
            self.polling = False
        elif self.woken:
            self.polling = True
        if self.polling:
            self.woken = False
            self.stop.wait(self.poll_seconds)
        else:
            self.woken = wait_for_work(self.stop, self.poll_seconds, self.ready, self.check_seconds)
