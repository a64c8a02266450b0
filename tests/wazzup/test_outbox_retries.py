"""The outbox: a message is never sent twice and never silently dropped, whatever Wazzup does.

``FlakyWazzup`` plays Wazzup's side: it delivers a message to the customer when a request reaches
it, dedupes a repeated ``crmMessageId`` for 60 seconds (as Wazzup documents), and fails in the
ways a network fails: refusing connections, hanging after receiving, answering 5xx, dropping the
connection after accepting. Time is the fake clock; the worker runs step by step.
"""

import json
import random
import re
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound import outbox, worker
from wazzup_plugin.state import get_state


class FlakyWazzup:
    def __init__(self, clock, network_error, script=()):
        self.clock = clock
        self.network_error = network_error
        self.script = list(script)
        self.delivered = Counter()  # crmMessageId → deliveries to the customer
        self.first_seen = {}
        self.calls = []  # (time, crmMessageId, mode)

    def __call__(self, request):
        body = json.loads(request.body)
        crm = body["crmMessageId"]
        mode = self.script.pop(0) if self.script else "ok"
        now = self.clock()
        self.calls.append((now, crm, mode))
        if mode == "refuse":
            return self.network_error("refused")
        if mode == "429":
            return 429, {}, ""
        seen = self.first_seen.get(crm)
        if seen is not None and now - seen < timedelta(seconds=60):
            answer = (400, {}, json.dumps({"status": 400, "error": "REPEATED_CRM_MESSAGE_ID",
                                           "description": "You have already sent message with same crmMessageId"}))
        else:
            self.delivered[crm] += 1
            self.first_seen[crm] = now
            answer = (201, {}, json.dumps({"messageId": f"wz-{crm}-{self.delivered[crm]}", "chatId": body["chatId"]}))
        if mode == "hang":
            return self.network_error("read_timeout")
        if mode == "drop":
            return self.network_error("dropped")
        if mode == "5xx":
            return 502, {}, "Bad Gateway"
        return answer


@pytest.fixture
def flaky(clock, wazzup_api, wazzup_url, network_error):
    fake = FlakyWazzup(clock, network_error)
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=fake)
    return fake


@pytest.fixture
def chat(make_wazzup_chat):
    return make_wazzup_chat()


def run_worker_for(ctx, clock, seconds, step=1.0):
    owner = worker.worker_id()
    for _ in range(int(seconds / step)):
        clock.advance(step)
        worker.run_once(ctx, owner)


def message(helpdesk, message_id):
    m = helpdesk.tables.messages
    w = get_state(helpdesk).tables["messages"]
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(m, w.c.wazzup_message_id, w.c.crm_message_id)
                            .select_from(m.join(w, w.c.message_id == m.c.id)).where(m.c.id == message_id)).first()


def test_refused_connections_are_retried_with_backoff_until_wazzup_is_back(
        send, chat, flaky, outbox_ctx, clock, helpdesk):
    flaky.script = ["refuse", "refuse", "refuse"]
    result = send(chat)
    assert result.status_code == 202
    run_worker_for(outbox_ctx, clock, 60)
    stored = message(helpdesk, result.json["id"])
    assert stored.status == "accepted"
    assert len(flaky.calls) == 4
    assert {crm for _, crm, _ in flaky.calls} == {stored.crm_message_id}
    gaps = [(b[0] - a[0]).total_seconds() for a, b in zip(flaky.calls, flaky.calls[1:])]
    assert gaps == sorted(gaps) and gaps[0] >= 2  # backoff grows
    assert flaky.delivered[stored.crm_message_id] == 1


def test_a_hang_after_sending_is_retried_with_the_same_crm_id_and_the_repeat_means_accepted(
        send, chat, flaky, outbox_ctx, clock, helpdesk):
    flaky.script = ["hang"]
    result = send(chat)
    assert result.status_code == 202
    run_worker_for(outbox_ctx, clock, 10)
    stored = message(helpdesk, result.json["id"])
    assert (stored.status, stored.wazzup_message_id) == ("accepted", None)  # the id comes with the echo
    assert [mode for _, _, mode in flaky.calls] == ["hang", "ok"]
    assert flaky.delivered[stored.crm_message_id] == 1


@pytest.mark.parametrize("mode", ["hang", "5xx", "drop"])
def test_maybe_sent_failures_stop_inside_the_dedupe_window_and_become_unknown(
        send, chat, flaky, outbox_ctx, clock, helpdesk, outbox_row, mode):
    flaky.script = [mode] * 100
    result = send(chat)
    start = clock()
    run_worker_for(outbox_ctx, clock, 180)
    stored = message(helpdesk, result.json["id"])
    assert stored.status == "unknown"
    assert stored.unknown_at is not None and stored.error_code == "MAYBE_SENT"
    assert flaky.delivered[stored.crm_message_id] == 1
    assert len(flaky.calls) >= 2
    assert all(at - start < timedelta(seconds=60) for at, _, _ in flaky.calls)
    assert outbox_row(stored.id).state == "done"


def test_a_retry_held_up_past_the_dedupe_window_by_the_write_lock_is_not_sent(
        send, chat, flaky, outbox_ctx, clock, helpdesk, monkeypatch):
    """The window is checked again once the attempt is recorded: waiting for the write lock (another
    writer, or a row held on PostgreSQL) could otherwise carry a retry past it, and Wazzup would
    send the message a second time."""
    flaky.script = ["drop"]  # went out, the answer was lost: maybe sent
    result = send(chat)
    first_attempt = clock()
    clock.advance(46)  # a retry is still safe now (the margin is the connect timeout, the limiter, 2 s)
    write, writes = helpdesk.db.write, []

    @contextmanager
    def held_up():
        writes.append(1)
        if len(writes) == 2:  # the worker claims the row, then records its attempt: that one waits
            clock.advance(15)  # another writer holds the lock meanwhile
        with write() as tx:
            yield tx

    monkeypatch.setattr(helpdesk.db, "write", held_up)
    worker.run_once(outbox_ctx, worker.worker_id())
    stored = message(helpdesk, result.json["id"])
    assert stored.status == "unknown"
    assert [at - first_attempt for at, _, _ in flaky.calls] == [timedelta(0)]  # never sent again
    assert flaky.delivered[stored.crm_message_id] == 1


def test_the_dedupe_window_starts_with_the_first_attempt_that_may_have_reached_wazzup(
        send, chat, flaky, outbox_ctx, clock, helpdesk):
    """Refused connections reach nobody: a minute of them must not use up the window of the attempt
    that then goes out and loses its answer, or that message would be left unknown at once."""
    flaky.script = ["refuse"] * 4 + ["drop"]  # refused for 52 s, then sent with the answer lost
    result = send(chat)
    run_worker_for(outbox_ctx, clock, 120)
    stored = message(helpdesk, result.json["id"])
    assert [mode for _, _, mode in flaky.calls] == ["refuse"] * 4 + ["drop", "ok"]
    assert (flaky.calls[4][0] - flaky.calls[0][0]).total_seconds() > 50
    assert stored.status == "accepted"  # the retry inside the window was answered "already sent"
    assert flaky.delivered[stored.crm_message_id] == 1


def test_surely_unsent_messages_fail_visibly_after_an_hour(send, chat, flaky, outbox_ctx, clock, helpdesk):
    flaky.script = ["refuse"] * 1000
    result = send(chat)
    run_worker_for(outbox_ctx, clock, 3900, step=30)
    stored = message(helpdesk, result.json["id"])
    assert (stored.status, stored.error_code) == ("failed", "NOT_SENT")
    assert "The last attempt: the helpdesk could not connect to Wazzup" in stored.error_text  # why, for the agent
    assert sum(flaky.delivered.values()) == 0


def test_429_waits_at_least_retry_after(send, chat, outbox_ctx, clock, outbox_row, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", status=429, headers={"Retry-After": "30"})
    result = send(chat)
    assert result.status_code == 202
    row = outbox_row(result.json["id"])
    assert row.next_attempt_at - clock() >= timedelta(seconds=30)
    assert row.maybe_sent is False


def test_a_message_an_echo_settled_while_queued_is_not_sent_again(
        send, chat, flaky, outbox_ctx, clock, helpdesk, outbox_row):
    flaky.script = ["refuse"]
    result = send(chat)
    m = helpdesk.tables.messages
    with helpdesk.db.write() as tx:  # what the inbound flow does when a status/echo settles it
        tx.conn.execute(sa.update(m).where(m.c.id == result.json["id"])
                        .values(status="sent", sent_at=clock(), change_seq=tx.change_seq))
    run_worker_for(outbox_ctx, clock, 30)
    assert len(flaky.calls) == 1
    assert outbox_row(result.json["id"]).state == "done"
    assert message(helpdesk, result.json["id"]).status == "sent"


def test_a_worker_killed_mid_call_leaves_a_row_the_next_worker_treats_as_maybe_sent(
        send, chat, flaky, outbox_ctx, clock, outbox_row):
    flaky.script = ["refuse"]
    result = send(chat)  # queued; due in 2 s
    message_id = result.json["id"]
    clock.advance(3)
    assert outbox.claim_due(outbox_ctx, "dead-worker") == [message_id]
    row = outbox_row(message_id)
    # The dead worker recorded its attempt, then died before knowing the answer.
    assert outbox._start_attempt(outbox_ctx, row, "dead-worker", "c", "whatsapp", "79011112233") is not None
    assert outbox.claim_due(outbox_ctx, "live-worker") == []  # still leased
    clock.advance(outbox.lease_seconds(outbox_ctx) + 1)
    assert outbox.claim_due(outbox_ctx, "live-worker") == [message_id]
    assert outbox_row(message_id).maybe_sent is True
    # Past the dedupe window, a maybe-sent message is never sent again: it becomes unknown.
    outcome = outbox.attempt(outbox_ctx, message_id, "live-worker")
    assert outcome.kind == "unknown"
    assert len(flaky.calls) == 1


def test_the_dead_workers_late_answer_cannot_overwrite_the_new_holder(
        send, chat, flaky, outbox_ctx, clock, helpdesk):
    flaky.script = ["refuse"]
    message_id = send(chat).json["id"]
    clock.advance(3)
    outbox.claim_due(outbox_ctx, "slow")
    clock.advance(outbox.lease_seconds(outbox_ctx) + 1)
    outbox.claim_due(outbox_ctx, "fast")
    assert outbox.attempt(outbox_ctx, message_id, "slow").kind == "busy"
    assert outbox.attempt(outbox_ctx, message_id, "fast").kind == "accepted"
    assert len(flaky.calls) == 2


def test_many_messages_through_random_failures_are_each_delivered_at_most_once_and_all_settle(
        send, chat, flaky, outbox_ctx, clock, helpdesk, outbox_row):
    rng = random.Random(4)
    flaky.script = [rng.choice(["ok", "refuse", "429", "hang", "5xx", "drop", "refuse", "hang"]) for _ in range(400)]
    ids = [send(chat, text=f"message {i}").json.get("id") or send(chat).json["id"]
           for i in range(25)]
    run_worker_for(outbox_ctx, clock, 4000, step=20)
    statuses = Counter()
    for message_id in ids:
        stored = message(helpdesk, message_id)
        statuses[stored.status] += 1
        delivered = flaky.delivered[stored.crm_message_id]
        assert delivered <= 1, f"message {message_id} reached the customer {delivered} times"
        assert stored.status in ("accepted", "unknown", "failed")
        if stored.status == "failed":
            assert stored.error_code == "NOT_SENT" and delivered == 0
        if stored.status == "accepted":
            assert delivered == 1
        assert outbox_row(message_id).state == "done"
    assert statuses["accepted"] > 0


def test_two_claimers_never_take_the_same_row(send, make_wazzup_chat, flaky, outbox_ctx, clock, helpdesk):
    import threading

    flaky.script = ["refuse"] * 20
    # A chat each: a chat's later message is claimed only with its earlier ones (test_outbox_order.py).
    ids = {send(make_wazzup_chat(f"790111{i:05d}"), text=f"m{i}").json["id"] for i in range(20)}
    clock.advance(5)
    claimed: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def claim(name):
        barrier.wait(5)
        got = []
        for _ in range(10):
            got += outbox.claim_due(outbox_ctx, name, limit=3)
        claimed[name] = got

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    everything = [mid for got in claimed.values() for mid in got]
    assert len(everything) == len(set(everything)) == len(ids)
    assert set(everything) == ids


def test_the_worker_loop_sends_until_stopped(send, chat, flaky, outbox_ctx, clock, helpdesk):
    import threading

    flaky.script = ["refuse"]
    message_id = send(chat).json["id"]
    clock.advance(5)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(outbox_ctx, stop), kwargs={"poll_seconds": 0.01})
    thread.start()
    try:
        for _ in range(500):
            if message(helpdesk, message_id).status == "accepted":
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert message(helpdesk, message_id).status == "accepted"


def test_a_database_error_while_the_worker_refreshes_the_channels_does_not_stop_it(
        send, chat, flaky, outbox_ctx, clock, helpdesk, wazzup_api, wazzup_url, api_payload, monkeypatch):
    """The refresh runs at the worker's start and every 10 minutes: a database away at that moment (a
    restart, a failover) killed the worker, and `serve` then stopped the whole helpdesk, webhook included."""
    import threading

    from wazzup_plugin.outbound import channels

    def database_away(ctx, listed):
        raise sa.exc.OperationalError("INSERT INTO wazzup_channels ...", {}, Exception("server closed the connection"))

    wazzup_api.add("GET", f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    monkeypatch.setattr(channels, "remember_channels", database_away)
    flaky.script = ["refuse"]
    message_id = send(chat).json["id"]
    clock.advance(5)
    stop, failed = threading.Event(), []

    def run():
        try:
            worker.run(outbox_ctx, stop, poll_seconds=0.01)
        except Exception as exc:
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for _ in range(500):
            if failed or message(helpdesk, message_id).status == "accepted":
                break
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(10)
    assert failed == []
    assert message(helpdesk, message_id).status == "accepted"


def test_a_stopped_worker_finishes_its_call_starts_no_other_and_releases_the_rows_it_claimed(
        send, chat, outbox_ctx, clock, helpdesk, wazzup_api, wazzup_url, network_error, outbox_row):
    """A restart (SIGTERM) while Wazzup is slow: the call in progress ends normally, no new call
    starts after the signal, and the rest of the batch is free for the next worker at once."""
    import threading

    stop = threading.Event()
    calls = []

    def wazzup(request):
        crm = json.loads(request.body)["crmMessageId"]
        calls.append(crm)
        if len(calls) <= 1:  # the first send's own attempt: refused; the next two queue behind it unsent
            return network_error("refused")
        stop.set()  # the signal arrives while the worker is inside this call
        return 201, {}, json.dumps({"messageId": f"wz-{crm}", "chatId": "79011112233"})

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=wazzup)
    ids = [send(chat, text=f"m{i}").json["id"] for i in range(3)]
    clock.advance(5)
    worker.run(outbox_ctx, stop, poll_seconds=0.01)  # returns once stopped

    assert len(calls) == 2, "a new call to Wazzup started after the stop"
    rows = {message_id: outbox_row(message_id) for message_id in ids}
    done = [mid for mid, row in rows.items() if row.state == "done"]
    assert len(done) == 1 and message(helpdesk, done[0]).status == "accepted"
    left = sorted(mid for mid in ids if mid not in done)
    for mid in left:
        row = rows[mid]
        assert (row.state, row.lease_owner, row.lease_until, row.attempt_started_at) == ("pending", None, None, None)
        assert not row.maybe_sent and message(helpdesk, mid).status == "queued"
    assert sorted(outbox.claim_due(outbox_ctx, "next-worker")) == left  # at once, not a lease later


def test_releasing_leaves_rows_another_worker_holds_or_whose_attempt_started(
        send, make_wazzup_chat, flaky, outbox_ctx, clock, outbox_row):
    flaky.script = ["refuse"] * 3
    ids = [send(make_wazzup_chat(f"790111{i:05d}"), text=f"m{i}").json["id"] for i in range(3)]
    clock.advance(5)
    mine = outbox.claim_due(outbox_ctx, "stopping-worker", limit=2)
    theirs = outbox.claim_due(outbox_ctx, "other-worker")
    row = outbox_row(mine[0])
    assert outbox._start_attempt(outbox_ctx, row, "stopping-worker", "c", "whatsapp", "79011112233") is not None

    assert worker.release(outbox_ctx, "stopping-worker", ids) == 1
    assert outbox_row(mine[1]).lease_owner is None
    assert outbox_row(mine[0]).lease_owner == "stopping-worker"  # in flight: whoever is next treats it as maybe sent
    assert [outbox_row(mid).lease_owner for mid in theirs] == ["other-worker"]


@pytest.mark.new_tables
def test_claiming_due_sends_reads_the_pending_rows_through_their_partial_indexes(
        send, chat, flaky, outbox_ctx, clock, query_plans):
    # Done rows (every message ever sent) stay out of the pending rows' indexes. The claim first
    # finds the chats whose first pending row is due (the due index, then the chat's own pending
    # rows to tell its first), then reads those chats' pending rows only, never the whole backlog.
    # SQLite plans with its bound values; a PostgreSQL prepared statement's generic plan can use a
    # partial index only when the query states its condition as a literal (a bound value fails).
    flaky.script = ["ok", "ok", "ok", "refuse", "refuse"]
    statuses = [send(chat, text=f"message {i}").status_code for i in range(5)]
    assert statuses == [201, 201, 201, 202, 202]
    clock.advance(60)
    with query_plans("FROM wazzup_outbox") as plans:
        assert len(outbox.claim_due(outbox_ctx, "claimer")) == 2  # the chat's 4th, and the 5th behind it
    *ready_chats, their_rows = plans
    assert len(ready_chats) == len(outbox.LANES)  # one chat found: each lane is read
    for plan in ready_chats:
        assert "ix_wazzup_outbox_due" in plan and "ix_wazzup_outbox_chat_pending" in plan, plan
        # A range of the index (the lane, then due by now), not a walk of all of it: nothing due, nothing read.
        assert re.search(r"lane ?= ?(?:\?|\$\d+)\)? AND \(?next_attempt_at ?<=? ?(?:\?|\$\d+)", plan), plan
    assert "ix_wazzup_outbox_chat_pending" in their_rows, their_rows


@pytest.mark.parametrize("meanwhile", ["a worker settled it unknown", "a worker holds it"])
def test_wazzups_201_after_the_lease_ran_out_is_recorded_and_nothing_is_sent_again(
        send, chat, wazzup_api, wazzup_url, outbox_ctx, clock, helpdesk, outbox_row, deliver, channel_id, meanwhile):
    """The send's call outlived its lease; a worker took the message up meanwhile and, the dedupe
    window being over, settled it ``unknown`` (or is about to). Wazzup's 201 then arrives: the
    message went out, so it is accepted with Wazzup's id (not left for the agent to resend) and
    the status parked meanwhile under that id applies."""
    wazzup_id = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
    calls = []

    def slow_201(request):
        calls.append(json.loads(request.body))
        clock.advance(outbox.lease_seconds(outbox_ctx) + 1)  # the call outlives the send's lease
        if meanwhile == "a worker settled it unknown":
            [settled] = worker.run_once(outbox_ctx, "worker:B")
            assert settled.kind == "unknown"
        else:
            assert len(outbox.claim_due(outbox_ctx, "worker:B")) == 1
        # Wazzup's status for its id comes before its answer: nothing holds that id yet.
        assert deliver({"statuses": [{"messageId": wazzup_id, "timestamp": "2026-11-26T12:01:00Z",
                                      "status": "delivered"}]}).status_code == 200
        return 201, {}, json.dumps({"messageId": wazzup_id, "chatId": "79011112233"})

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=slow_201)
    result = send(chat)
    assert (result.status_code, result.json["wazzup_message_id"]) == (201, wazzup_id)
    message_id = result.json["id"]
    if meanwhile == "a worker holds it":
        assert outbox.attempt(outbox_ctx, message_id, "worker:B").kind == "busy"  # and calls nobody
    stored = message(helpdesk, message_id)
    assert (stored.status, stored.wazzup_message_id) == ("delivered", wazzup_id)
    assert outbox_row(message_id).state == "done"
    assert len(calls) == 1
    assert outbox_ctx.client.deadline + outbox_ctx.limiter.max_wait < outbox.lease_seconds(outbox_ctx)


def test_a_message_whose_channel_list_cannot_be_read_backs_off_and_fails_after_the_hour(
        make_wazzup_chat, queue, wazzup_api, wazzup_url, network_error, outbox_ctx, clock, helpdesk, outbox_row):
    """No channel stored for the chat, none configured, and GET /v3/channels refused: each attempt
    fails before the send call. It still counts, so the retries back off and the hour ends it (it
    used to be retried every 2 s for ever, holding its chat back)."""
    gets = []
    wazzup_api.add_callback("GET", f"{wazzup_url}/v3/channels",
                            callback=lambda request: gets.append(request) or network_error("refused"))
    (message_id,) = queue(make_wazzup_chat(channel_id=None))
    _run_worker_until_done(outbox_ctx, clock, outbox_row, message_id)
    stored = message(helpdesk, message_id)
    assert (stored.status, stored.error_code) == ("failed", "NOT_SENT")
    assert len(gets) < 30  # backed off to minutes apart, not every 2 s (1,800 calls in the hour)


@pytest.mark.parametrize("settings", [{"WAZZUP24_API_URL": "https://api.wazzup.test"}])  # no API key
def test_a_message_queued_before_the_api_key_was_removed_fails_after_the_hour_saying_why(
        settings, make_wazzup_chat, queue, outbox_ctx, clock, helpdesk, outbox_row):
    """The worker runs without WAZZUP24_API_KEY (removed after the message was queued): nothing can
    go out. The hour rule ends the wait as for any message Wazzup never took (it would otherwise
    hold its chat back, and go out however late once a key is back), and the agent reads why."""
    assert outbox_ctx.client is None
    (message_id,) = queue(make_wazzup_chat())
    row = _run_worker_until_done(outbox_ctx, clock, outbox_row, message_id)
    stored = message(helpdesk, message_id)
    assert (stored.status, stored.error_code) == ("failed", "NOT_SENT")
    assert "WAZZUP24_API_KEY is not set" in stored.error_text
    assert clock() - row.created_at < timedelta(hours=1, minutes=5)


def _run_worker_until_done(ctx, clock, outbox_row, message_id, runs=200):
    """Worker runs, the clock moved to each retry's time, until the message's outbox row is done."""
    for _ in range(runs):
        worker.run_once(ctx, "w")
        row = outbox_row(message_id)
        if row.state == "done":
            break
        clock.now = row.next_attempt_at
    return row


def test_an_attempt_that_crashes_before_sending_is_counted_and_the_hour_rule_ends_it(
        queue, chat, outbox_ctx, clock, outbox_row, helpdesk, wazzup_api, monkeypatch):
    """A bug before an attempt is marked (nothing went out) retried the message at every lease's end
    for ever, uncounted, its chat held back behind it."""
    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(outbox, "_start_attempt", crash)
    [message_id] = queue(chat)

    worker.run_once(outbox_ctx, "worker:A")

    row = outbox_row(message_id)
    assert (row.state, row.attempts, row.lease_owner, row.attempt_started_at) == ("pending", 1, None, None)
    assert "internal error" in row.last_error and "RuntimeError" in row.last_error
    assert outbox.claim_due(outbox_ctx, "worker:B") == []  # not again at once: after worker.CRASH_RETRY
    clock.advance(hours=1, seconds=1)
    worker.run_once(outbox_ctx, "worker:A")
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        message = conn.execute(sa.select(m.c.status, m.c.error_code, m.c.error_text).where(m.c.id == message_id)).one()
    assert (message.status, message.error_code) == ("failed", "NOT_SENT")
    assert "internal error" in message.error_text
    assert outbox_row(message_id).state == "done" and len(wazzup_api.calls) == 0
