"""The database-backed rate limit: under Wazzup's 500 per 5 s across every process, honouring 429."""

import math
import threading
from collections import deque
from datetime import timedelta

import pytest
import sqlalchemy as sa

from wazzup_plugin.client import WazzupRateLimited
from wazzup_plugin.outbound.ratelimit import DbRateLimiter
from wazzup_plugin.state import get_state


@pytest.fixture
def make_limiter(helpdesk, clock):
    def make(limit=450, window=5.0, max_wait=10.0):
        return DbRateLimiter(helpdesk.db, get_state(helpdesk).tables["rate_limit"], limit, window, clock,
                             sleep=clock.advance, max_wait=max_wait)

    return make


def test_no_five_second_span_ever_sees_500_calls(make_limiter, clock):
    limiter = make_limiter()
    times = []
    for _ in range(1200):
        limiter.acquire()
        times.append(clock().timestamp())
    span = deque()
    worst = 0
    for t in times:
        span.append(t)
        while span[0] <= t - 5.0:
            span.popleft()
        worst = max(worst, len(span))
    assert 450 <= worst < 500
    assert times[-1] - times[0] < 20  # ~450 per 5 s sustained, not much slower


def test_the_budget_is_shared_by_every_process(make_limiter, clock):
    one, two = make_limiter(limit=20), make_limiter(limit=20)  # two processes: one row in the database
    granted = [one.try_acquire() == 0, two.try_acquire() == 0, one.try_acquire() == 0, two.try_acquire() == 0]
    assert granted == [True, True, False, False]  # 2 per half-second slot, whoever asks
    clock.advance(0.5)
    assert two.try_acquire() == 0


def test_a_429_pauses_every_process_for_retry_after(make_limiter, clock):
    one, two = make_limiter(), make_limiter()
    one.blocked(12)
    assert two.try_acquire() == pytest.approx(12, abs=0.01)
    clock.advance(12)
    assert two.try_acquire() == 0


def test_waiting_longer_than_allowed_raises_rate_limited_without_calling(make_limiter, clock):
    limiter = make_limiter(max_wait=3)
    limiter.blocked(30)
    start = clock()
    with pytest.raises(WazzupRateLimited) as caught:
        limiter.acquire()
    assert caught.value.maybe_sent is False
    assert clock() - start <= timedelta(seconds=3)


def test_sends_that_find_no_budget_are_queued_not_lost(client, auth, make_wazzup_chat, outbox_ctx, wazzup_api,
                                                        wazzup_url, clock):
    chat = make_wazzup_chat()
    outbox_ctx.limiter.blocked(60)  # e.g. another process just got a 429
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/send", json={"text": "hi"}, headers=auth)
    assert (result.status_code, result.json["status"]) == (202, "queued")
    assert len(wazzup_api.calls) == 0


def _clock_at(at):
    return lambda: at


def _until_a_writer_waits(helpdesk, seconds=5.0):
    """Until a transaction of this database waits for a lock (PostgreSQL); SQLite's writers queue
    before their BEGIN, which nothing outside shows: a short pause instead (either order of the
    two writers must give the same result, so the pause only makes the late one likely to wait)."""
    import time

    if helpdesk.db.engine.dialect.name != "postgresql":
        time.sleep(0.2)
        return
    deadline = time.monotonic() + seconds
    with helpdesk.db.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                           "AND datname = current_database()")).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the second writer never waited for the first")


def test_a_call_whose_clock_was_read_before_another_process_moved_the_slot_on_counts_in_the_new_slot(helpdesk, clock):
    # 20 per second: 10 slots of 0.1 s, 2 calls each. A reads its clock at the end of slot S, then
    # its UPDATE waits for the row while B's send transaction, in slot S+1, holds it with both of
    # S+1's calls taken. A's call goes out after B commits, in S+1: it must count there (and find
    # none left), not set the row back to S and so give S+1 a fresh budget.
    table = get_state(helpdesk).tables["rate_limit"]

    def limiter(at):
        return DbRateLimiter(helpdesk.db, table, 20, 1.0, _clock_at(at), max_wait=0)

    end_of_s, start_of_next = clock() + timedelta(seconds=0.05), clock() + timedelta(seconds=0.15)
    assert limiter(end_of_s).try_acquire() == 0  # the row is in slot S
    granted, b_holds, b_may_commit = {}, threading.Event(), threading.Event()

    def b_sends_in_the_next_slot():
        with helpdesk.db.write() as tx:
            granted["B"] = [limiter(start_of_next).take(tx.conn) == 0 for _ in range(2)]
            b_holds.set()
            b_may_commit.wait(10)

    def a_read_its_clock_in_s():
        late = limiter(end_of_s)
        b_holds.wait(10)
        with helpdesk.db.write() as tx:
            granted["A"] = late.take(tx.conn) == 0

    threads = [threading.Thread(target=b_sends_in_the_next_slot), threading.Thread(target=a_read_its_clock_in_s)]
    for t in threads:
        t.start()
    assert b_holds.wait(10)
    _until_a_writer_waits(helpdesk)
    b_may_commit.set()
    for t in threads:
        t.join(10)
    assert granted == {"B": [True, True], "A": False}
    later_in_next_slot = limiter(start_of_next + timedelta(seconds=0.04))
    assert [later_in_next_slot.try_acquire() == 0 for _ in range(3)] == [False, False, False]
    assert later_in_next_slot.try_acquire() == pytest.approx(0.01, abs=0.001)  # until S+2 begins
    with helpdesk.db.read() as conn:
        row = conn.execute(sa.select(table)).one()
    assert (row.slot, row.count) == (math.floor(start_of_next.timestamp() / 0.1), 2)


def test_a_late_caller_takes_a_call_left_in_the_slot_another_process_moved_the_row_to(make_limiter, clock):
    ahead, late = make_limiter(limit=20, window=1.0), make_limiter(limit=20, window=1.0)
    late.clock = _clock_at(clock())              # its clock was read before...
    clock.advance(0.15)                          # ...another process's call in the next slot
    assert ahead.try_acquire() == 0
    assert late.try_acquire() == 0               # counts as that slot's second call
    assert ahead.try_acquire() > 0


def test_a_process_whose_clock_runs_far_ahead_does_not_hold_the_others_back(make_limiter, clock):
    skewed, ours = make_limiter(limit=20, window=1.0), make_limiter(limit=20, window=1.0)
    skewed.clock = _clock_at(clock() + timedelta(hours=1))
    assert skewed.try_acquire() == 0 and skewed.try_acquire() == 0
    assert ours.try_acquire() == 0  # more than a window ahead is a wrong clock, not a late read: our slot starts
