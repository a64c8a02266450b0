"""A rate limiter shared by every process of a deployment, kept in the database.

Wazzup allows 500 requests per 5 seconds. The window is cut into ``k`` slots (``k`` = 10, fewer for
tiny limits) and each slot admits ``limit // k`` calls, counted on one row updated in a short write
transaction (``BEGIN IMMEDIATE`` on SQLite, a row lock on PostgreSQL). Any 5-second span then
overlaps at most ``k + 1`` slots, so at most ``limit + limit // k`` calls: 495 for the default 450,
under Wazzup's 500 however their window is aligned. A 429 blocks every process for Retry-After
(or one window).
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from wazzup_plugin.client import WazzupRateLimited

log = logging.getLogger(__name__)


WAZZUP_LIMIT, WAZZUP_WINDOW = 500, 5.0  # Wazzup's own: requests per seconds


def slots_of(limit: int) -> tuple[int, int]:
    """``(slots, calls per slot)`` of a limit."""
    slots = max(1, min(10, limit))
    return slots, max(1, limit // slots)


def most_in_any_span(limit: int, window: float, span: float = WAZZUP_WINDOW) -> int:
    """The most calls the limiter lets through in any ``span`` seconds, however it is aligned: the
    span overlaps ``span / slot + 1`` slots at most."""
    slots, per_slot = slots_of(limit)
    return per_slot * (math.floor(span / (window / slots) + 1e-9) + 1)


class DbRateLimiter:
    def __init__(self, db, table: sa.Table, limit: int, window: float, clock: Callable, *,
                 sleep: Callable[[float], None] = time.sleep, max_wait: float = 10.0, name: str = "api"):
        self.db = db
        self.table = table
        self.slots, self.per_slot = slots_of(limit)
        self.slot_seconds = window / self.slots
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        self.name = name
        t = table
        # Built once: every send takes its call with this UPDATE (values are parameters).
        #
        # The caller's slot comes from its clock, read before the UPDATE waits for the row (another
        # process's transaction may hold it): by then that process may have moved the row on to a
        # later slot. The row's slot never goes back for that: a caller whose slot is the row's or a
        # little older (up to ``b_slot_max``, one window) counts its call in the row's slot, while it
        # has calls left. Only a row in an older slot starts the caller's (count 1). A row further
        # ahead than one window was moved by a clock that is wrong, not late: the caller's slot
        # starts, as it always did, so one process's skewed clock cannot hold back all the others.
        slot = sa.bindparam("b_slot", type_=t.c.slot.type)
        counts_in_row_slot = sa.and_(t.c.slot >= slot, t.c.slot <= sa.bindparam("b_slot_max", type_=t.c.slot.type))
        self._grant = (sa.update(t).where(
            t.c.name == sa.bindparam("b_name", type_=t.c.name.type),
            sa.or_(t.c.blocked_until.is_(None), t.c.blocked_until <= sa.bindparam("b_now", type_=t.c.blocked_until.type)),
            sa.or_(sa.not_(counts_in_row_slot), t.c.count < sa.bindparam("b_per_slot", type_=t.c.count.type)),
        ).values(count=sa.case((counts_in_row_slot, t.c.count + 1), else_=1),
                 slot=sa.case((counts_in_row_slot, t.c.slot), else_=slot)).returning(t.c.name))
        self._read = sa.select(t).where(t.c.name == sa.bindparam("b_name", type_=t.c.name.type))

    def acquire(self) -> None:
        """Take one call from the budget, waiting a little if needed; else raise WazzupRateLimited."""
        waited = 0.0
        # Bounded: at most enough tries to cover max_wait (and a few more for clock skew).
        for _ in range(int(self.max_wait / self.slot_seconds) + 5):
            wait = self.try_acquire()
            if wait <= 0:
                return
            if waited + wait > self.max_wait:
                break
            self.sleep(wait)
            waited += wait
        log.warning("Wazzup24 rate limit: no budget within %.1f s", self.max_wait,
                    extra={"context": {"limiter": self.name}})
        raise WazzupRateLimited("our rate limit for Wazzup is exhausted for now; nothing was sent",
                                retry_after=self.slot_seconds)

    def try_acquire(self) -> float:
        """0 when a call may go now; else the seconds to wait."""
        with self.db.write() as tx:
            return self.take(tx.conn)

    def take(self, conn) -> float:
        """:meth:`try_acquire` inside the caller's write transaction (its commit makes the call count).

        The send path takes its call this way in the transaction that records the attempt, so a
        send commits once before calling Wazzup instead of twice. Never waits: the caller waits
        (outside its transaction) when this returns more than 0.
        """
        now = self.clock()
        slot = math.floor(now.timestamp() / self.slot_seconds)
        for _ in range(2):  # the second round only after creating the row on first use
            # Granting is one conditional UPDATE (its row lock serialises every process): not
            # blocked by a 429, and either a new slot or one with calls left.
            granted = conn.execute(self._grant, {"b_name": self.name, "b_now": now, "b_slot": slot,
                                                 "b_slot_max": slot + self.slots, "b_per_slot": self.per_slot}).first()
            if granted is not None:
                return 0.0
            row = conn.execute(self._read, {"b_name": self.name}).first()
            if row is not None:
                break
            conn.execute(self._insert_ignore(conn))
        if row.blocked_until is not None and row.blocked_until > now:
            return max((row.blocked_until - now).total_seconds(), 0.001)
        if slot <= row.slot <= slot + self.slots:
            slot = row.slot  # full, and counting for us (see _grant): its end is when calls are free again
        return max((slot + 1) * self.slot_seconds - now.timestamp(), 0.001)

    def blocked(self, seconds: float) -> None:
        """Wazzup said 429: no process calls it until ``seconds`` have passed."""
        until = self.clock() + timedelta(seconds=max(seconds, self.slot_seconds))
        t = self.table
        with self.db.write() as tx:
            tx.conn.execute(self._insert_ignore(tx.conn))
            tx.conn.execute(sa.update(t).where(t.c.name == self.name,
                                               sa.or_(t.c.blocked_until.is_(None), t.c.blocked_until < until))
                            .values(blocked_until=until))
        log.warning("Wazzup24 answered 429: pausing calls for %.1f s", seconds,
                    extra={"context": {"limiter": self.name}})

    def _insert_ignore(self, conn):
        values = {"name": self.name, "slot": 0, "count": 0}
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        return insert(self.table).values(**values).on_conflict_do_nothing()
