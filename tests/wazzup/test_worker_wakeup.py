"""An idle worker takes up new work as it comes, not at its next poll; with nothing it could take, it
only reads."""

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from wazzup_plugin.media import download as media_download
from wazzup_plugin.outbound import outbox, wakeup, worker
from wazzup_plugin.state import get_state

NEVER = 120.0  # a poll no test reaches: only the wake-up can act in time
IMAGE_BYTES = b"\xff\xd8\xff\xe0" + b"a customer's photo" * 100


@pytest.fixture
def idle_worker(outbox_ctx, monkeypatch):
    """Start the worker with a poll it never reaches; returns once it has claimed, found nothing, and
    started checking for new work: its checks and claims, counted. Stopped at the test's end."""
    checking = threading.Event()
    counts = {"checks": 0, "claims": 0, "media claims": 0}
    look, claim, media_claim = outbox.anything_to_claim, outbox.claim_due_rows, media_download.claim_due

    def counted_look(ctx):
        counts["checks"] += 1
        checking.set()
        return look(ctx)

    def counted_claim(*args, **kwargs):
        counts["claims"] += 1
        return claim(*args, **kwargs)

    def counted_media_claim(*args, **kwargs):
        counts["media claims"] += 1
        return media_claim(*args, **kwargs)

    monkeypatch.setattr(outbox, "anything_to_claim", counted_look)
    monkeypatch.setattr(outbox, "claim_due_rows", counted_claim)
    monkeypatch.setattr(media_download, "claim_due", counted_media_claim)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(outbox_ctx, stop),
                              kwargs={"poll_seconds": NEVER, "check_seconds": 0.01})
    thread.start()
    assert checking.wait(10), "the worker never went idle"
    yield counts
    stop.set()
    thread.join(20)
    assert not thread.is_alive()


def _accepting(wazzup_api, wazzup_url, sent: list, done: threading.Event, expected: int = 1):
    def answer(request):
        sent.append(json.loads(request.body)["text"])
        if len(sent) >= expected:
            done.set()
        return 201, {}, json.dumps({"messageId": f"wz-{len(sent)}", "chatId": "79011112233"})

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=answer)


def test_an_idle_worker_sends_a_message_queued_after_its_last_look_without_waiting_for_its_poll(
        make_wazzup_chat, queue, wazzup_api, wazzup_url, idle_worker):
    sent, done = [], threading.Event()
    _accepting(wazzup_api, wazzup_url, sent, done)
    queue(make_wazzup_chat(), texts=["on its way"])
    assert done.wait(10), "the queued message waited for the worker's poll"
    assert sent == ["on its way"]


def test_a_message_queued_behind_one_in_flight_goes_as_soon_as_that_one_settles(
        helpdesk, outbox_ctx, clock, make_wazzup_chat, queue, wazzup_api, wazzup_url, idle_worker):
    """An agent's file queued behind the chat's message that a send request is attempting: the
    worker cannot take it while that one is in flight, and takes it once it settles, not a poll later."""
    sent, done = [], threading.Event()
    _accepting(wazzup_api, wazzup_url, sent, done)
    chat = make_wazzup_chat()
    o = get_state(helpdesk).tables["outbox"]
    with helpdesk.db.write() as tx:
        in_flight = outbox.enqueue(tx, outbox_ctx, chat_id=chat, now=clock(), lease_owner="a send request",
                                   text="in flight")
        queue(chat, texts=["behind it"], tx=tx)
    checked = idle_worker["checks"]
    _wait_for_checks(idle_worker, checked + 5)
    assert sent == []
    with helpdesk.db.write() as tx:  # the request's attempt settles (as outbox.attempt records it)
        tx.conn.execute(sa.update(o).where(o.c.message_id == in_flight)
                        .values(state="done", lease_owner=None, lease_until=None))
    assert done.wait(10), "the message behind it waited for the worker's poll"
    assert sent == ["behind it"]


def _wait_for_checks(counts: dict, at_least: int) -> None:
    for _ in range(1000):  # bounded: ten seconds
        if counts["checks"] >= at_least:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"the worker checked {counts['checks']} times, not {at_least}")


def test_an_idle_worker_downloads_a_customers_photo_without_waiting_for_its_poll(
        deliver, payload, wazzup_api, idle_worker):
    delivery = payload("incoming_image")
    downloaded = threading.Event()

    def store(request):
        downloaded.set()
        return 200, {"Content-Type": "image/jpeg"}, IMAGE_BYTES

    wazzup_api.add_callback("GET", delivery["messages"][0]["contentUri"], callback=store)
    assert deliver(delivery).status_code == 200
    assert downloaded.wait(10), "the photo waited for the worker's poll"


def test_an_idle_worker_does_not_claim_a_message_held_behind_its_chats_earlier_one(
        helpdesk, clock, make_wazzup_chat, queue, wazzup_api, wazzup_url, idle_worker):
    """The earlier message waits in its backoff: the checks find nothing to take, so the worker
    neither claims (a write) nor calls Wazzup until the backoff ends."""
    sent, done = [], threading.Event()
    _accepting(wazzup_api, wazzup_url, sent, done)
    chat = make_wazzup_chat()
    o = get_state(helpdesk).tables["outbox"]
    claims = idle_worker["claims"]
    with helpdesk.db.write() as tx:  # one commit: the worker never sees the first one due
        first, _ = queue(chat, texts=["first", "second"], tx=tx)
        tx.conn.execute(sa.update(o).where(o.c.message_id == first)
                        .values(attempts=1, next_attempt_at=clock() + timedelta(minutes=5)))
    _wait_for_checks(idle_worker, idle_worker["checks"] + 5)
    assert idle_worker["claims"] == claims and sent == []
    clock.advance(5 * 60)  # the backoff is over: the next check finds the first message due
    assert done.wait(10)
    assert sent[0] == "first"


def test_anything_to_claim_is_true_only_when_a_claim_would_take_a_row(
        helpdesk, outbox_ctx, clock, make_wazzup_chat, queue):
    o = get_state(helpdesk).tables["outbox"]

    def change(message_id, **values):
        with helpdesk.db.write() as tx:
            tx.conn.execute(sa.update(o).where(o.c.message_id == message_id).values(**values))

    assert not outbox.anything_to_claim(outbox_ctx)
    chat = make_wazzup_chat()
    (first,) = queue(chat)
    assert outbox.anything_to_claim(outbox_ctx)
    change(first, lease_owner="another worker", lease_until=clock() + timedelta(minutes=1))
    assert not outbox.anything_to_claim(outbox_ctx), "a row another worker holds"
    (second,) = queue(chat)
    assert not outbox.anything_to_claim(outbox_ctx), "a row behind its chat's earlier one"
    change(first, lease_owner=None, lease_until=None, next_attempt_at=clock() + timedelta(seconds=30))
    assert not outbox.anything_to_claim(outbox_ctx), "its chat's first row waits in its backoff"
    clock.advance(30)
    assert outbox.anything_to_claim(outbox_ctx)
    assert [row.message_id for row in outbox.claim_due_rows(outbox_ctx, "w")] == [first, second]
    assert not outbox.anything_to_claim(outbox_ctx), "the chat's rows are claimed"


def test_anything_due_for_download_is_true_only_for_a_free_due_row(helpdesk, deliver, payload, clock):
    t = get_state(helpdesk).tables["media"]

    def due():
        return media_download.anything_due(helpdesk.db, t, clock())

    assert not due()
    deliver(payload("incoming_image"))
    assert due()
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).values(lease_owner="another worker", lease_until=clock() + timedelta(minutes=1)))
    assert not due(), "held by another worker"
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).values(lease_owner=None, lease_until=None,
                                            next_attempt_at=clock() + timedelta(seconds=30)))
    assert not due(), "waiting for its retry"
    clock.advance(30)
    assert due()


def test_waiting_for_work_returns_at_the_first_check_that_finds_some():
    answers = iter([False, False, True])
    calls = []

    def ready():
        calls.append(1)
        return next(answers)

    assert wakeup.wait_for_work(threading.Event(), NEVER, ready, check_seconds=0.001) is True
    assert len(calls) == 3


def test_waiting_for_work_ends_at_the_poll_or_the_stop():
    assert wakeup.wait_for_work(threading.Event(), 0.05, lambda: False, check_seconds=0.01) is False
    stop = threading.Event()
    stop.set()
    assert wakeup.wait_for_work(stop, NEVER, lambda: True) is False


def test_a_failing_check_waits_for_the_poll_instead_of_asking_again():
    calls = []

    def broken():
        calls.append(1)
        raise sa.exc.OperationalError("SELECT", {}, Exception("the database is away"))

    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()  # the poll below is never reached: the stop ends the wait
    assert wakeup.wait_for_work(stop, NEVER, broken, check_seconds=0.001) is False
    assert stop.is_set() and len(calls) == 1


def test_an_idle_worker_with_nothing_to_download_claims_no_media(idle_worker):
    claims = idle_worker["media claims"]
    _wait_for_checks(idle_worker, idle_worker["checks"] + 5)
    assert idle_worker["media claims"] == claims


def _failing_claim(calls: list):
    def claim(*args, **kwargs):
        calls.append(1)
        raise sa.exc.OperationalError("UPDATE", {}, Exception("database or disk is full"))

    return claim


def _run_worker(ctx, seconds: float, poll_seconds: float) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(ctx, stop),
                              kwargs={"poll_seconds": poll_seconds, "check_seconds": 0.01})
    thread.start()
    stop.wait(seconds)
    stop.set()
    thread.join(20)
    assert not thread.is_alive()


def test_a_claim_that_fails_while_reads_work_is_tried_once_a_poll(outbox_ctx, make_wazzup_chat, queue, monkeypatch):
    """A full disk or a read-only standby: the check finds the message due, every claim fails. The
    worker claims (and logs the failure) once a poll, not at every check."""
    queue(make_wazzup_chat())
    claims = []
    monkeypatch.setattr(outbox, "claim_due_rows", _failing_claim(claims))
    _run_worker(outbox_ctx, 1.2, poll_seconds=0.5)
    assert 2 <= len(claims) <= 4, f"{len(claims)} failing claims in 1.2 s with a poll of 0.5 s"


def test_a_media_claim_that_fails_while_reads_work_is_tried_once_a_poll(
        outbox_ctx, deliver, payload, monkeypatch):
    assert deliver(payload("incoming_image")).status_code == 200
    claims = []
    monkeypatch.setattr(media_download, "claim_due", _failing_claim(claims))
    _run_worker(outbox_ctx, 1.2, poll_seconds=0.5)
    assert 2 <= len(claims) <= 4, f"{len(claims)} failing media claims in 1.2 s with a poll of 0.5 s"


def test_a_row_another_transaction_locks_is_claimed_once_a_poll(
        helpdesk, outbox_ctx, make_wazzup_chat, queue, monkeypatch, engine):
    """PostgreSQL: the check reads a locked row as due and free; the claim's SKIP LOCKED passes over it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks that a read does not see: PostgreSQL")
    (first,) = queue(make_wazzup_chat())
    claims, claim = [], outbox.claim_due_rows

    def counted(*args, **kwargs):
        rows = claim(*args, **kwargs)
        claims.append(len(rows))
        return rows

    monkeypatch.setattr(outbox, "claim_due_rows", counted)
    o = get_state(helpdesk).tables["outbox"]
    with engine.connect() as other, other.begin():  # e.g. a transaction settling the row, still open
        other.execute(sa.select(o.c.message_id).where(o.c.message_id == first).with_for_update())
        _run_worker(outbox_ctx, 1.2, poll_seconds=0.5)
    assert sum(claims) == 0 and 2 <= len(claims) <= 4, f"{len(claims)} claims in 1.2 s with a poll of 0.5 s"


def test_a_slow_check_is_made_less_often():
    """A check that reads through a long backlog takes at most about a tenth of the idle time."""
    calls = []

    def slow():
        calls.append(1)
        threading.Event().wait(0.02)
        return False

    assert wakeup.wait_for_work(threading.Event(), 0.6, slow, check_seconds=0.001) is False
    assert len(calls) <= 5, f"{len(calls)} checks of 20 ms in 0.6 s"
