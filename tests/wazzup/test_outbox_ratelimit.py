"""The database-backed rate limit: under Wazzup's 500 per 5 s across every process, honouring 429."""

from collections import deque
from datetime import timedelta

import pytest

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
