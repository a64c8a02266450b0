"""Posting webhook deliveries to the registered URL, the way Wazzup does: later, again on failure.

A bounded queue ordered by due time; one background thread sends what is due (``pump``), retries a
delivery a bounded number of times with a doubling backoff, and keeps a bounded log of outcomes.
Tests can leave the thread off and call ``pump()`` after moving their clock.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import requests

log = logging.getLogger(__name__)

# A delivery's top-level key -> the subscription (PATCH /v3/webhooks, reference §4.1) it needs.
# Keys not listed (``test``) need none.
SUBSCRIPTION_OF = {"messages": "messagesAndStatuses", "statuses": "messagesAndStatuses",
                   "channelsUpdates": "channelsUpdates", "templateStatus": "templateStatus",
                   "createContact": "contactsAndDealsCreation", "createDeal": "contactsAndDealsCreation"}


def subscribed_part(body: dict, subscriptions: dict) -> tuple[dict | None, str | None]:
    """What of ``body`` Wazzup would deliver under ``subscriptions``: (the body, None), or (None,
    why nothing) when every part of it needs a subscription that is off."""
    kept, off = {}, []
    for key, value in body.items():
        needed = SUBSCRIPTION_OF.get(key)
        if needed is None or subscriptions.get(needed) is True:
            kept[key] = value
        elif needed not in off:
            off.append(needed)
    if not off:
        return body, None
    if not any(k in SUBSCRIPTION_OF or k == "test" for k in kept):
        return None, "not subscribed: " + ", ".join(f"{name} is off" for name in off)
    return kept, None


@dataclass
class Job:
    id: int
    body: dict
    due: datetime
    attempts: int = 0
    state: str = "pending"          # pending, delivered, failed, skipped (no webhook, or not subscribed)
    last_status: int | None = None
    last_error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict:
        return {"id": self.id, "state": self.state, "attempts": self.attempts, "lastStatus": self.last_status,
                "lastError": self.last_error, "body": self.body}


def merge_bodies(bodies: list[dict]) -> dict:
    """Several deliveries as one: Wazzup may put messages and statuses of several events together."""
    merged: dict = {}
    for body in bodies:
        for key, value in body.items():
            if isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            else:
                merged[key] = value
    return merged


class WebhookSender:
    def __init__(self, *, http: requests.Session, clock: Callable[[], datetime],
                 target: Callable[[], str | None], options: Callable[[], object],
                 subscriptions: Callable[[], dict] | None = None):
        self.http = http
        self.clock = clock
        self._subscriptions = subscriptions   # the registered subscriptions now (None: deliver everything)
        self._target = target          # the registered URL now (it may change while jobs wait)
        self._options = options        # the current SandboxConfig
        self._cond = threading.Condition()
        self._heap: list[tuple[datetime, int, Job]] = []
        self._ids = itertools.count(1)
        self.log: deque[Job] = deque(maxlen=5000)
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------ queueing

    def enqueue(self, body: dict, delay: float = 0.0) -> Job | None:
        """Schedule a delivery ``delay`` seconds from now; None when the queue is full (counted)."""
        with self._cond:
            if len(self._heap) >= self._options().queue_size:
                self.dropped += 1
                log.warning("sandbox webhook queue full: a delivery was dropped")
                return None
            job = Job(next(self._ids), body, self.clock() + timedelta(seconds=delay))
            heapq.heappush(self._heap, (job.due, job.id, job))
            self.log.append(job)
            self._cond.notify_all()
            return job

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self.log.clear()
            self.dropped = 0

    # ------------------------------------------------------------ sending

    def subscribed(self, body: dict) -> tuple[dict | None, str | None]:
        """The part of ``body`` the registered subscriptions let through (see :func:`subscribed_part`)."""
        if self._subscriptions is None:
            return body, None
        return subscribed_part(body, self._subscriptions())

    def post_once(self, body: dict, url: str | None = None) -> tuple[int | None, str | None]:
        """One POST to the webhook: (HTTP status, None) or (None, why it failed). To the registered
        webhook (no ``url``), only what its subscriptions let through is posted."""
        if url is None:
            url = self._target()
            if url:
                body, why = self.subscribed(body)
                if body is None:
                    return None, why
        if not url:
            return None, "no webhook registered"
        opts = self._options()
        headers = {"Content-Type": opts.webhook_content_type}
        if opts.crm_key:
            headers["Authorization"] = f"Bearer {opts.crm_key}"
        try:
            resp = self.http.post(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                  headers=headers, timeout=opts.webhook_timeout, allow_redirects=False)
        except requests.RequestException as exc:
            return None, type(exc).__name__
        resp.close()
        return resp.status_code, None

    def _attempt(self, job: Job) -> bool:
        """Send ``job`` once; True when it is finished (delivered, given up or skipped)."""
        target = self._target()
        if not target:
            job.state, job.last_error = "skipped", "no webhook registered"
            job.done.set()
            return True
        body, why = self.subscribed(job.body)
        if body is None:
            job.state, job.last_error = "skipped", why
            job.done.set()
            return True
        job.attempts += 1
        status, error = self.post_once(body, url=target)
        job.last_status, job.last_error = status, error
        if status is not None and 200 <= status < 300:
            job.state = "delivered"
        elif job.attempts >= self._options().webhook_attempts:
            job.state = "failed"
            log.warning("sandbox gave up a webhook delivery after %d attempts (last: %s)", job.attempts,
                        status or error)
        else:
            return False
        job.done.set()
        return True

    def backoff(self, attempts: int) -> float:
        return self._options().webhook_backoff * (2 ** (attempts - 1))

    def deliver_now(self, body: dict, sleep: Callable[[float], None] | None = None) -> Job:
        """Send in the caller's thread, retrying with the same bounded policy; returns the finished job."""
        sleep = sleep or time.sleep
        job = Job(next(self._ids), body, self.clock())
        with self._cond:
            self.log.append(job)
        while not self._attempt(job):
            sleep(self.backoff(job.attempts))
        return job

    def pump(self) -> int:
        """Send every delivery that is due now; returns how many HTTP posts were made."""
        now = self.clock()
        with self._cond:
            due = []
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
        if not due:
            return 0
        if self._options().combine_deliveries and len(due) > 1:
            merged = Job(next(self._ids), merge_bodies([j.body for j in due]), now)
            for j in due:
                j.state, j.last_error = "merged", f"sent within delivery {merged.id}"
                j.done.set()
            with self._cond:
                self.log.append(merged)
            due = [merged]
        for job in due:
            if not self._attempt(job):
                job.due = self.clock() + timedelta(seconds=self.backoff(job.attempts))
                with self._cond:
                    heapq.heappush(self._heap, (job.due, job.id, job))
        return len(due)

    # ------------------------------------------------------------ the thread

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                wait = 0.2
                if self._heap:
                    wait = min(wait, max(0.0, (self._heap[0][0] - self.clock()).total_seconds()))
                if wait > 0:
                    self._cond.wait(wait)
                if self._stopping:
                    return
            try:
                self.pump()
            except Exception:  # a bug here must not silence every later delivery
                log.exception("sandbox webhook sender failed; continuing")
