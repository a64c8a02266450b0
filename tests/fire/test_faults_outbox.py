"""Faults on the sending side: Wazzup down, connections dropped after accepting, a worker killed mid-send.

The sandbox counts what it accepted by ``crmMessageId``: "exactly once" is read there, on the far
side of the wire. Where waiting would be long (backoffs, leases, Wazzup's 60-second dedupe window),
the outbox runs in this process on a FakeClock; in the downtime tests the sandbox shares that clock,
so it too would accept a repeat once 60 fake seconds have passed — a retry past the window would show.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa

from wazzup_plugin.outbound import outbox
from wazzup_plugin.outbound.context import outbound
from wazzup_plugin.outbound.worker import run_once
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message
from wazzup_plugin.state import get_state

from fire_support import CHANNEL_ID, FIRE_API_KEY, wait_until

pytestmark = [pytest.mark.slow]

SENT_ON = ("accepted", "sent", "delivered", "read")


@pytest.fixture
def clock(clock):
    # Start at the real time: the sandbox and any worker process compare our timestamps with theirs.
    clock.now = datetime.now(timezone.utc).replace(microsecond=0)
    return clock


@pytest.fixture
def wazzup(sandbox, clock, request):
    """The sandbox; on the test's FakeClock unless the test is marked ``real_clock_sandbox``."""
    shared = request.node.get_closest_marker("real_clock_sandbox") is None
    return sandbox(clock=clock if shared else None, status_delays=(0, 0, 0))


@pytest.fixture
def settings(settings, wazzup):
    settings.update(WAZZUP24_API_KEY=FIRE_API_KEY, WAZZUP24_API_URL=wazzup.url,
                    WAZZUP24_CONNECT_TIMEOUT="1", WAZZUP24_READ_TIMEOUT="3")
    return settings


@pytest.fixture
def wazzup_chat(client, helpdesk):
    body = delivery(messages=[incoming_message(channel_id=CHANNEL_ID, chat_id="79160000401", text="hello",
                                               message_id=str(uuid.uuid4()))])
    assert client.simulate_post("/api/webhook", json=body).status_code == 200
    chats = helpdesk.tables.chats
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(chats.c.id).where(chats.c.type == "wazzup")).scalar_one()


def _enqueue(helpdesk, chat_id: int, n: int, clock) -> dict[int, str]:
    """Store outgoing messages as the send route does (queued, crmMessageId, outbox row); {id: crm id}."""
    ctx = outbound(helpdesk)
    with helpdesk.db.write() as tx:
        ids = [outbox.enqueue(tx, ctx, chat_id=chat_id, now=clock(), lease_owner=None, text=f"reply {i}")
               for i in range(n)]
    w = get_state(helpdesk).tables["messages"]
    with helpdesk.db.read() as conn:
        return dict(conn.execute(sa.select(w.c.message_id, w.c.crm_message_id).where(w.c.message_id.in_(ids))).all())


def _statuses(helpdesk, ids) -> dict[int, str]:
    m = helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        return dict(conn.execute(sa.select(m.c.id, m.c.status).where(m.c.id.in_(list(ids)))).all())


def _pending(helpdesk) -> int:
    o = get_state(helpdesk).tables["outbox"]
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(o).where(o.c.state == "pending")).scalar()


def _drive(helpdesk, clock, step: float = 2.0, rounds: int = 400, until=None, pace=None) -> None:
    """Run the outbox in this process, moving the clock between rounds, until nothing is pending.

    ``pace(now)`` runs before each round: it lets the real world (a sandbox listening again) catch up
    with the fake clock, which otherwise races through a downtime in milliseconds."""
    ctx = outbound(helpdesk)
    until = until or (lambda: _pending(helpdesk) == 0)
    for _ in range(rounds):
        if pace:
            pace(clock())
        run_once(ctx, "fire-test-worker", batch=100)
        if until():
            return
        clock.advance(step)
    raise AssertionError(f"the outbox still has {_pending(helpdesk)} pending rows after {rounds} rounds")


def _accepted_by_crm(server) -> dict[str, int]:
    return requests.get(server.url + "/_sandbox/received", timeout=10).json()["byCrmMessageId"]


def _fault(server, **spec) -> None:
    assert requests.post(server.url + "/_sandbox/faults", json=spec, timeout=10).status_code < 300


@pytest.mark.parametrize("mode", ["refuse", "503"])
def test_wazzup_down_for_30_seconds_every_queued_message_goes_out_exactly_once(
        helpdesk, wazzup, wazzup_chat, clock, mode):
    crm = _enqueue(helpdesk, wazzup_chat, 25, clock)
    back_at = clock() + timedelta(seconds=30)
    _fault(wazzup, kind="downtime", seconds=30, mode=mode)
    if mode == "refuse":
        wait_until(lambda: _refused(wazzup.url), 10, 0.02, "the sandbox to stop listening")

    def pace(now):
        if mode == "refuse" and now >= back_at:
            wait_until(lambda: not _refused(wazzup.url), 10, 0.02, "the sandbox to listen again")

    _drive(helpdesk, clock, pace=pace)

    counts = _accepted_by_crm(wazzup)
    assert {c: counts.get(c, 0) for c in crm.values()} == {c: 1 for c in crm.values()}, (
        f"a message went out twice or never: {_explain(helpdesk, crm, counts)}")
    assert sum(counts.values()) == len(crm)
    assert set(_statuses(helpdesk, crm).values()) <= set(SENT_ON), _statuses(helpdesk, crm)


def _refused(url: str) -> bool:
    try:
        requests.get(url + "/v3/channels", timeout=1)
    except requests.ConnectionError:
        return True
    return False


def test_a_send_whose_fate_is_unclear_past_the_60_second_window_is_unknown_and_never_repeated(
        client, auth, helpdesk, wazzup, wazzup_chat, clock):
    crm = _enqueue(helpdesk, wazzup_chat, 2, clock)
    accepted_then_dropped, dropped_before = sorted(crm)
    _fault(wazzup, kind="drop", path="/v3/message", afterAccept=True)
    _fault(wazzup, kind="drop", path="/v3/message", afterAccept=False)
    run_once(outbound(helpdesk), "fire-test-worker", batch=100)
    assert _accepted_by_crm(wazzup) == {crm[accepted_then_dropped]: 1}, "the faults did not play out as planned"

    # Wazzup answers 503 for two minutes: every retry inside the window fails, then the window closes.
    _fault(wazzup, kind="downtime", seconds=120, mode="503")
    _drive(helpdesk, clock)
    clock.advance(600)  # long after; the sandbox would now accept the same crmMessageId again
    for _ in range(5):
        run_once(outbound(helpdesk), "fire-test-worker", batch=100)
        clock.advance(60)

    counts = _accepted_by_crm(wazzup)
    why = _explain(helpdesk, crm, {})
    assert counts.get(crm[accepted_then_dropped]) == 1, f"the message was sent twice: {counts} {why}"
    assert counts.get(crm[dropped_before], 0) <= 1, f"{counts} {why}"
    shown = client.simulate_get(f"/api/chats/{wazzup_chat}/messages", headers=auth).json["items"]
    by_id = {m["id"]: m for m in shown}
    for message_id in crm:
        assert by_id[message_id]["status"] == "unknown", (by_id[message_id], counts, why)
        assert by_id[message_id]["unknown_at"] is not None
        assert by_id[message_id]["error_text"], "the agent is not told why"


@pytest.mark.real_clock_sandbox
def test_an_outbox_worker_killed_mid_send_has_its_rows_taken_up_and_nothing_sent_twice(
        helpdesk, wazzup, wazzup_chat, clock, config, tmp_path):
    crm = _enqueue(helpdesk, wazzup_chat, 20, clock)
    # The first send is accepted and then hangs: the worker is inside the call when it dies.
    _fault(wazzup, kind="slow", seconds=30, path="/v3/message", afterAccept=True)
    env = {**os.environ, **{k: str(v) for k, v in config.env.items()},
           "HELPDESK_DATABASE_URL": config.database_url, "HELPDESK_PLUGINS": "wazzup24"}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "host_stub", "wazzup24", "worker", "--poll", "0.1"],
                                  cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: sum(_accepted_by_crm(wazzup).values()) >= 1 or worker.poll() is not None, 60, 0.01,
                   "the worker's first send")
        assert worker.poll() is None, log_path.read_text()
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)
    in_flight = _accepted_by_crm(wazzup)
    assert len(in_flight) == 1, f"expected the worker to die inside its first call, sandbox saw {in_flight}"

    # Later, past the dead worker's lease but inside Wazzup's 60-second window: another worker takes over.
    clock.now = datetime.now(timezone.utc) + timedelta(seconds=40)
    _drive(helpdesk, clock, step=1.0, rounds=60)

    counts = _accepted_by_crm(wazzup)
    assert {c: counts.get(c, 0) for c in crm.values()} == {c: 1 for c in crm.values()}, "sent twice or never"
    assert set(_statuses(helpdesk, crm).values()) <= set(SENT_ON)
    o = get_state(helpdesk).tables["outbox"]
    with helpdesk.db.read() as conn:
        hung = conn.execute(sa.select(o.c.attempts, o.c.maybe_sent).where(
            o.c.crm_message_id == next(iter(in_flight)))).one()
    assert hung.attempts == 2 and hung.maybe_sent, "the interrupted send was not treated as maybe sent"


def _explain(helpdesk, crm: dict[int, str], counts: dict[str, int]) -> list:
    """For a failure message: each message sent other than once, with its status, error and outbox row."""
    m, o = helpdesk.tables.messages, get_state(helpdesk).tables["outbox"]
    wrong = [mid for mid, c in crm.items() if counts.get(c, 0) != 1]
    with helpdesk.db.read() as conn:
        return [dict(conn.execute(sa.select(m.c.id, m.c.status, m.c.error_code, m.c.error_text, o.c.attempts,
                                            o.c.maybe_sent, o.c.last_error)
                                  .join(o, o.c.message_id == m.c.id).where(m.c.id == mid)).mappings().one(),
                     accepted=counts.get(crm[mid], 0)) for mid in wrong]
