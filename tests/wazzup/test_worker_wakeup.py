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
    counts = {"checks": 0, "claims": 0}
    look, claim = outbox.anything_to_claim, outbox.claim_due_rows

    def counted_look(ctx):
        counts["checks"] += 1
        checking.set()
        return look(ctx)

    def counted_claim(*args, **kwargs):
        counts["claims"] += 1
        return claim(*args, **kwargs)

    monkeypatch.setattr(outbox, "anything_to_claim", counted_look)
    monkeypatch.setattr(outbox, "claim_due_rows", counted_claim)
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
        helpdesk, outbox_ctx, clock, make_wazzup_chat, wazzup_api, wazzup_url, idle_worker):
    sent, done = [], threading.Event()
    _accepting(wazzup_api, wazzup_url, sent, done)
    _queue(helpdesk, outbox_ctx, clock, make_wazzup_chat())
    assert done.wait(10), "the queued message waited for the worker's poll"
    assert sent == ["on its way"]


def test_a_chats_queued_messages_go_one_after_another_without_a_poll_between_them(
        helpdesk, outbox_ctx, clock, make_wazzup_chat, wazzup_api, wazzup_url, idle_worker):
    """Each waits for the one before it to settle; the next is taken as soon as it has."""
    sent, done = [], threading.Event()
    _accepting(wazzup_api, wazzup_url, sent, done, expected=3)
    chat = make_wazzup_chat()
    with helpdesk.db.write() as tx:
        for n in range(3):
            outbox.enqueue(tx, outbox_ctx, chat_id=chat, now=clock(), lease_owner=None, text=f"part {n}")
    assert done.wait(10), f"only {sent} went out before the poll"
    assert sent == ["part 0", "part 1", "part 2"]


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
        helpdesk, outbox_ctx, clock, make_wazzup_chat, wazzup_api, wazzup_url, idle_worker):
    """The earlier message waits in its backoff: the checks find nothing to take, so the worker
    neither claims (a write) nor calls Wazzup until the backoff ends."""
    sent, done = [], threading.Event()
    _accepting(wazzup_api, wazzup_url, sent, done)
    chat = make_wazzup_chat()
    o = get_state(helpdesk).tables["outbox"]
    claims = idle_worker["claims"]
    with helpdesk.db.write() as tx:  # one commit: the worker never sees the first one due
        first = _queue_in(tx, outbox_ctx, clock, chat, "first")
        tx.conn.execute(sa.update(o).where(o.c.message_id == first)
                        .values(attempts=1, next_attempt_at=clock() + timedelta(minutes=5)))
        _queue_in(tx, outbox_ctx, clock, chat, "second")
    checked = idle_worker["checks"]
    for _ in range(500):  # until the worker has checked a few times more
        if idle_worker["checks"] >= checked + 5:
            break
        threading.Event().wait(0.01)
    assert idle_worker["checks"] >= checked + 5
    assert idle_worker["claims"] == claims and sent == []
    clock.advance(5 * 60)  # the backoff is over: the next check finds the first message due
    assert done.wait(10)
    assert sent == ["first"]


def _queue(helpdesk, ctx, clock, chat, text="on its way") -> int:
    with helpdesk.db.write() as tx:  # as the send route queues a file or a respond-async send
        return _queue_in(tx, ctx, clock, chat, text)


def _queue_in(tx, ctx, clock, chat, text):
    return outbox.enqueue(tx, ctx, chat_id=chat, now=clock(), lease_owner=None, text=text)


def test_anything_to_claim_is_true_only_when_a_claim_would_take_a_row(
        helpdesk, outbox_ctx, clock, make_wazzup_chat):
    o = get_state(helpdesk).tables["outbox"]

    def change(message_id, **values):
        with helpdesk.db.write() as tx:
            tx.conn.execute(sa.update(o).where(o.c.message_id == message_id).values(**values))

    assert not outbox.anything_to_claim(outbox_ctx)
    chat = make_wazzup_chat()
    first = _queue(helpdesk, outbox_ctx, clock, chat, "first")
    assert outbox.anything_to_claim(outbox_ctx)
    change(first, lease_owner="another worker", lease_until=clock() + timedelta(minutes=1))
    assert not outbox.anything_to_claim(outbox_ctx), "a row another worker holds"
    second = _queue(helpdesk, outbox_ctx, clock, chat, "second")
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
