"""A chat's messages reach the customer in the order agents sent them, whatever the outbox meets.

The outbox worker never sends a chat's message while an earlier one of that chat is still pending
(queued, leased, or waiting for its retry); once that one ends, the later ones go at once. Wazzup is
``responses`` with a script per call; time is the fake clock; the worker runs step by step.
"""

import json
import threading
import time

import pytest
import sqlalchemy as sa

from wazzup_plugin import heartbeats
from wazzup_plugin.outbound import outbox, worker
from wazzup_plugin.state import get_state

REFUSED = {"status": 400, "error": "BAD_CONTACT", "description": "No WhatsApp on this number"}


class ScriptedWazzup:
    """``POST /v3/message``: each call takes the next mode of ``script`` (then "ok"), and the order of
    the calls is kept as ``(crmMessageId, mode)``."""

    def __init__(self, network_error, script=()):
        self.network_error = network_error
        self.script = list(script)
        self.calls = []
        self.lock = threading.Lock()
        self.think = 0.0  # seconds each accepted call takes: lets another worker act meanwhile

    def __call__(self, request):
        crm = json.loads(request.body)["crmMessageId"]
        with self.lock:
            mode = self.script.pop(0) if self.script else "ok"
            self.calls.append((crm, mode))
        if mode == "refuse":
            return self.network_error("refused")
        if mode == "bad_contact":
            return 400, {}, json.dumps(REFUSED)
        time.sleep(self.think)
        return 201, {}, json.dumps({"messageId": f"wz-{crm}", "chatId": "79011112233"})

    def sent(self):
        """crmMessageIds of the calls Wazzup accepted, in the order they came."""
        return [crm for crm, mode in self.calls if mode == "ok"]


@pytest.fixture
def wazzup(wazzup_api, wazzup_url, network_error):
    fake = ScriptedWazzup(network_error)
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=fake)
    return fake


@pytest.fixture
def crm_of(helpdesk):
    """``crm_of(message_id)``: the crmMessageId the message goes out with."""
    w = get_state(helpdesk).tables["messages"]

    def crm(message_id):
        with helpdesk.db.read() as conn:
            return conn.execute(sa.select(w.c.crm_message_id).where(w.c.message_id == message_id)).scalar_one()

    return crm


def status(helpdesk, message_id):
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(m.c.status).where(m.c.id == message_id)).scalar_one()


def test_a_later_message_waits_while_an_earlier_one_is_in_backoff_then_goes_right_after_it(
        send, make_wazzup_chat, wazzup, outbox_ctx, clock, helpdesk, crm_of):
    chat = make_wazzup_chat()
    wazzup.script = ["refuse"]
    first = send(chat, text="first").json["id"]   # refused: retried in 2 s
    second = send(chat, text="second").json["id"]  # queued behind it, due now
    clock.advance(1)
    assert worker.run_once(outbox_ctx, "w") == []  # the second is due, the first is not: nothing goes
    assert status(helpdesk, second) == "queued"

    clock.advance(2)
    # The first, then the second right after it: claimed together, in the chat's order.
    assert [(o.message_id, o.kind) for o in worker.run_once(outbox_ctx, "w")] == [(first, "accepted"),
                                                                                   (second, "accepted")]
    assert wazzup.sent() == [crm_of(first), crm_of(second)]


def test_a_message_claimed_with_an_earlier_one_that_is_postponed_is_not_sent_in_that_run(
        make_wazzup_chat, wazzup, queue, outbox_ctx, clock, helpdesk, crm_of, outbox_row):
    chat = make_wazzup_chat()
    first, second = queue(chat, 2)
    wazzup.script = ["refuse"]
    outcomes = worker.run_once(outbox_ctx, "w")
    assert [(o.message_id, o.kind) for o in outcomes] == [(first, "retry")]
    assert [crm for crm, _ in wazzup.calls] == [crm_of(first)]
    assert (status(helpdesk, second), outbox_row(second).lease_owner) == ("queued", None)  # given back at once

    clock.advance(5)
    worker.run_once(outbox_ctx, "w")
    worker.run_once(outbox_ctx, "w")
    assert wazzup.sent() == [crm_of(first), crm_of(second)]


def test_an_earlier_message_that_fails_for_good_lets_the_later_ones_go(
        make_wazzup_chat, wazzup, queue, outbox_ctx, clock, helpdesk, crm_of):
    chat = make_wazzup_chat()
    first, second, third = queue(chat, 3)
    wazzup.script = ["refuse", "bad_contact"]
    worker.run_once(outbox_ctx, "w")  # the first is retried later; the others wait behind it
    clock.advance(1)
    worker.run_once(outbox_ctx, "w")
    assert [crm for crm, _ in wazzup.calls] == [crm_of(first)]

    clock.advance(2)
    worker.run_once(outbox_ctx, "w")  # refused for good: failed
    worker.run_once(outbox_ctx, "w")
    assert [status(helpdesk, m) for m in (first, second, third)] == ["failed", "accepted", "accepted"]
    assert [crm for crm, _ in wazzup.calls] == [crm_of(first), crm_of(first), crm_of(second), crm_of(third)]


def test_a_message_that_waited_an_hour_behind_one_that_failed_is_still_tried_once(
        make_wazzup_chat, wazzup, queue, outbox_ctx, clock, helpdesk, crm_of):
    chat = make_wazzup_chat()
    first, second = queue(chat, 2)
    wazzup.script = ["refuse"] * 1000
    for _ in range(200):  # Wazzup unreachable for the first message's whole hour (one row a run)
        worker.run_once(outbox_ctx, "w", batch=1)
        if status(helpdesk, first) == "failed":
            break
        clock.advance(30)
    assert status(helpdesk, first) == "failed" and status(helpdesk, second) == "queued"
    wazzup.script = []  # Wazzup is back
    worker.run_once(outbox_ctx, "w")
    assert status(helpdesk, second) == "accepted"
    assert wazzup.sent() == [crm_of(second)]


def test_one_chats_backoff_holds_back_neither_other_chats_nor_a_batch(
        make_wazzup_chat, wazzup, queue, outbox_ctx, clock, helpdesk, crm_of):
    waiting, other = make_wazzup_chat("79011112233"), make_wazzup_chat("79022223344", title="Olga")
    wazzup.script = ["refuse"]
    first, *behind = queue(waiting, 4)
    worker.run_once(outbox_ctx, "w", batch=1)  # the waiting chat's first: retried in 2 s
    clock.advance(0.5)
    (elsewhere,) = queue(other)
    clock.advance(0.5)
    # The waiting chat's later messages are due before the other chat's, yet they do not take the batch.
    assert [(o.message_id, o.kind) for o in worker.run_once(outbox_ctx, "w", batch=1)] == [(elsewhere, "accepted")]
    assert [status(helpdesk, m) for m in behind] == ["queued"] * 3
    assert wazzup.sent() == [crm_of(elsewhere)]


def test_two_workers_draining_one_chat_send_its_messages_in_order(
        make_wazzup_chat, wazzup, queue, clock, helpdesk, crm_of):
    from wazzup_plugin.outbound.context import outbound

    chat = make_wazzup_chat()
    ids = queue(chat, 20)
    wazzup.think = 0.01
    start = threading.Barrier(2)

    def drain(name):
        ctx = outbound(helpdesk)  # a worker's own, as in its own process
        ctx.limiter.sleep = clock.advance
        start.wait(10)
        for _ in range(2000):  # bounded; a worker that found nothing looks again (the other holds the chat)
            worker.run_once(ctx, name, batch=3)
            if status(helpdesk, ids[-1]) == "accepted":
                return
            time.sleep(0.001)

    threads = [threading.Thread(target=drain, args=(f"worker-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert wazzup.sent() == [crm_of(m) for m in ids]


def test_worker_once_records_the_heartbeat_with_its_schedulers_interval(run, helpdesk, wazzup):
    table = get_state(helpdesk).tables["heartbeats"]

    def beat():
        with helpdesk.db.read() as conn:
            return conn.execute(sa.select(table).where(table.c.name == heartbeats.WORKER)).first()

    result = run("worker", "--once")
    assert result.exit_code == 0, result.output
    recorded = beat()
    assert recorded.every_seconds == 60 and recorded.detail.startswith("worker:")
    assert json.loads(run("status", "--json").output)["worker"]["alive"] is True

    assert run("worker", "--once", "--every-seconds", "300").exit_code == 0
    assert beat().every_seconds == 300
    assert run("worker", "--every-seconds", "300").exit_code == 2  # a running worker records its own


def test_a_worker_claiming_beside_another_takes_the_next_chats(make_wazzup_chat, queue, outbox_ctx, helpdesk,
                                                               clock):
    """PostgreSQL: while one worker's claim holds the first chats' first rows (locked, not yet
    committed), another's claim passes over them to the next chats instead of coming back empty."""
    engine = helpdesk.db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises claimers (BEGIN IMMEDIATE): no claim runs beside another")
    chats = [make_wazzup_chat(f"790111{i:05d}") for i in range(4)]
    firsts = [queue(chat)[0] for chat in chats]
    o = get_state(helpdesk).tables["outbox"]
    with engine.connect() as other:
        with other.begin():  # a claim in progress elsewhere: the first two chats' first rows locked
            other.execute(sa.select(o.c.message_id).where(o.c.message_id.in_(firsts[:2])).with_for_update())
            claimed = outbox.claim_due_rows(outbox_ctx, "worker-b", limit=2)
    assert [row.chat_id for row in claimed] == chats[2:]
    assert [row.message_id for row in claimed] == firsts[2:]


def _first_pending_rows(rows: dict, chat_of: dict) -> dict:
    firsts = {}
    for message_id in sorted(rows):
        firsts.setdefault(chat_of[message_id], message_id)
    return firsts


@pytest.mark.parametrize("seed", range(6))
def test_any_claim_keeps_each_chats_order_and_leaves_no_ready_chat_behind(seed, make_wazzup_chat, queue, outbox_ctx,
                                                                          helpdesk, clock):
    """Random backlogs (states, lanes, due times, leases held, expired or none, batch sizes): every
    row a claim takes is due and free and comes with every earlier pending row of its chat; a claim
    is never empty while a chat's first pending row is due and free; its chats are the first of
    those ready, in the order of their first pending row's lane, due time and id; and no row it
    takes is of a later lane (the highest among it and its chat's earlier rows) than a ready
    chat's first row it leaves."""
    import random
    from datetime import timedelta

    rnd = random.Random(seed)
    o = get_state(helpdesk).tables["outbox"]
    chats = [make_wazzup_chat(f"7901{seed:02d}{i:05d}") for i in range(rnd.choice([2, 3, 5, 12]))]
    chat_of = {}
    for _ in range(rnd.randint(10, 40)):
        chat = rnd.choice(chats)
        chat_of[queue(chat)[0]] = chat
    now = clock()
    for trial in range(25):
        with helpdesk.db.write() as tx:
            for message_id in chat_of:
                lease = rnd.choice(["none", "none", "none", "expired", "held"])
                tx.conn.execute(sa.update(o).where(o.c.message_id == message_id).values(
                    state=rnd.choice(["pending"] * 4 + ["done"]), lane=rnd.choice(list(range(3))),
                    next_attempt_at=now + timedelta(seconds=rnd.choice([-30, -10, -5, 0, 0, 5, 30])),
                    lease_owner=None if lease == "none" else "another",
                    lease_until=None if lease == "none" else now + timedelta(seconds=-5 if lease == "expired" else 60)))
            pending = {r.message_id: r for r in tx.conn.execute(sa.select(o).where(o.c.state == "pending"))}

        claimed = [row.message_id for row in outbox.claim_due_rows(outbox_ctx, f"w{trial}", rnd.choice([1, 2, 3, 10]))]
        claimed_chats = list(dict.fromkeys(chat_of[m] for m in claimed))

        def free(message_id):
            row = pending[message_id]
            return row.next_attempt_at <= now and (row.lease_until is None or row.lease_until <= now)

        assert len(claimed) == len(set(claimed))
        for message_id in claimed:
            assert free(message_id), (trial, message_id)
            earlier = {m for m in pending if chat_of[m] == chat_of[message_id] and m < message_id}
            assert earlier <= set(claimed), (trial, message_id, earlier, claimed)
        ready = sorted((m for m in _first_pending_rows(pending, chat_of).values() if free(m)),
                       key=lambda m: (pending[m].lane, pending[m].next_attempt_at, m))
        if ready:
            assert claimed, (trial, "a chat's first message is due and free, yet nothing was claimed")
        assert claimed_chats == [chat_of[m] for m in ready][:len(claimed_chats)], (trial, claimed, ready)

        def lane_so_far(message_id):
            return max(pending[m].lane for m in pending if chat_of[m] == chat_of[message_id] and m <= message_id)

        left = [pending[m].lane for m in ready if m not in claimed]
        if left:
            assert all(lane_so_far(m) <= min(left) for m in claimed), (trial, claimed, ready)


def test_a_claim_reads_at_most_its_share_of_chats(make_wazzup_chat, queue, outbox_ctx, monkeypatch):
    """A claim reads its chats in one statement of a part per chat (SQLite takes 500 parts at most),
    so however large the batch, it takes the rows of MAX_CLAIM_CHATS chats at most."""
    monkeypatch.setattr(outbox, "MAX_CLAIM_CHATS", 3)
    chats = [make_wazzup_chat(f"790111{i:05d}") for i in range(5)]
    firsts = [queue(chat, 2)[0] for chat in chats]

    claimed = outbox.claim_due_rows(outbox_ctx, "worker", limit=100)

    assert sorted({row.chat_id for row in claimed}) == chats[:3]
    assert len(claimed) == 6 and firsts[3] not in {row.message_id for row in claimed}
