"""``helpdesk-stub wazzup24 status``: the operator's view from the database, with exit codes for monitoring."""

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from wazzup_plugin import heartbeats
from wazzup_plugin.state import get_state

REPORT_KEYS = {
    "checked_at", "status", "problems", "notes", "channels",
    "outbox", "webhook", "worker", "quarantine", "parked", "files", "media", "agents",
}
SECTION_KEYS = {
    "outbox": {"pending", "queued", "leased", "retrying", "oldest_pending_at", "oldest_pending_age_seconds",
               "async", "async_limit", "sent_last_24h", "unknown_last_24h", "failed_last_24h"},
    "webhook": {"last_received_at", "last_received_age_seconds", "previous_secret_configured",
                "previous_secret_last_used_at", "previous_secret_last_used_age_seconds"},
    "worker": {"last_heartbeat_at", "last_heartbeat_age_seconds", "heartbeat_every_seconds", "alive", "worker_id"},
    "quarantine": {"count", "oldest_at", "oldest_age_seconds"},
    "parked": {"statuses", "echoes"},
    "files": {"stored", "bytes", "quota_bytes"},
    "media": {"pending", "oldest_queued_at", "oldest_queued_age_seconds", "stored", "bytes", "retention_days"},
    "agents": {"synced", "waiting", "leaving", "removed", "last_error", "sync"},
}


def _real_now():
    return datetime.now(timezone.utc)  # the CLI runs on the real clock


@pytest.fixture
def queue_message(helpdesk, make_wazzup_chat, outbox_ctx):
    """A message waiting in the outbox, queued ``minutes_ago`` on the real clock."""
    from wazzup_plugin.outbound import outbox

    chat = make_wazzup_chat()

    def queue(minutes_ago: float = 1, lane=outbox.LANE_AGENTS):
        with helpdesk.db.write() as tx:
            return outbox.enqueue(tx, outbox_ctx, chat_id=chat, now=_real_now() - timedelta(minutes=minutes_ago),
                                  lease_owner=None, text="waiting", lane=lane)

    return queue


def _beat(helpdesk, name, at, every=10):
    heartbeats.beat(helpdesk.db, get_state(helpdesk).tables["heartbeats"], name, at, every=timedelta(seconds=every),
                    detail="worker:test:1")


def test_status_on_an_empty_database_exits_0_without_calling_wazzup(run, wazzup_api):
    result = run("status")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Wazzup24 status: OK")
    assert "Outbox queued    0" in result.output and "Worker           never seen" in result.output
    assert len(wazzup_api.calls) == 0


def test_status_with_pending_messages_and_a_stale_worker_exits_1_with_the_verdict(run, helpdesk, queue_message):
    queue_message()
    _beat(helpdesk, heartbeats.WORKER, _real_now() - timedelta(minutes=12))
    result = run("status")
    assert result.exit_code == 1, result.output
    assert "Wazzup24 status: ATTENTION" in result.output
    assert "! the worker has not run for 12 min while 1 message(s) wait: start `helpdesk-stub wazzup24 worker`" \
        in result.output


def test_status_with_a_live_worker_and_a_recent_webhook_exits_0(run, helpdesk, queue_message):
    queue_message()
    _beat(helpdesk, heartbeats.WORKER, _real_now() - timedelta(seconds=5))
    _beat(helpdesk, heartbeats.WEBHOOK, _real_now() - timedelta(minutes=3), every=30)
    result = run("status")
    assert result.exit_code == 0, result.output
    assert "Outbox queued    1" in result.output and "alive, last beat" in result.output


def test_status_says_when_the_oldest_pending_message_waited_over_5_minutes(run, helpdesk, queue_message):
    queue_message(minutes_ago=7)
    _beat(helpdesk, heartbeats.WORKER, _real_now())
    _beat(helpdesk, heartbeats.WEBHOOK, _real_now(), every=30)
    result = run("status", "--json")
    assert result.exit_code == 1
    assert [p["code"] for p in json.loads(result.output)["problems"]] == ["pending_too_long"]


def test_status_says_when_no_webhook_arrived_for_a_day_while_messages_were_sent(run, helpdesk, queue_message):
    queue_message()
    _beat(helpdesk, heartbeats.WORKER, _real_now())
    _beat(helpdesk, heartbeats.WEBHOOK, _real_now() - timedelta(hours=25), every=30)
    result = run("status")
    assert result.exit_code == 1
    assert "! no webhook delivery for 24 h (last: 1 d ago) while messages were sent" in result.output


def test_status_with_items_in_quarantine_exits_1_naming_the_command(run, helpdesk):
    q = get_state(helpdesk).tables["quarantine"]
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(q).values(section="messages", reason="odd", item="{}",
                                            received_at=_real_now() - timedelta(hours=3)))
    result = run("status")
    assert result.exit_code == 1
    assert "! 1 webhook item(s) in quarantine, the oldest 3 h old: see `helpdesk-stub wazzup24 quarantine list`" \
        in result.output


def test_status_json_has_the_documented_keys(run, helpdesk, queue_message):
    queue_message()
    result = run("status", "--json")
    report = json.loads(result.output)
    assert set(report) == REPORT_KEYS
    for section, keys in SECTION_KEYS.items():
        assert set(report[section]) == keys, section
    assert report["outbox"]["queued"] == 1 and report["outbox"]["sent_last_24h"] is True
    assert report["status"] == "attention" and report["problems"][0]["code"] == "worker_stale"


def test_status_counts_async_sends_and_notes_when_the_outbox_refuses_more(run, queue_message):
    from wazzup_plugin.outbound.outbox import LANE_BULK

    queue_message()
    queue_message(lane=LANE_BULK)
    report = json.loads(run("status", "--json", WAZZUP24_ASYNC_BACKLOG="3").output)
    assert (report["outbox"]["pending"], report["outbox"]["async"], report["outbox"]["async_limit"]) == (2, 1, 3)
    assert not any("WAZZUP24_ASYNC_BACKLOG" in note for note in report["notes"])

    queue_message(lane=LANE_BULK)
    report = json.loads(run("status", "--json", WAZZUP24_ASYNC_BACKLOG="3").output)
    [note] = [note for note in report["notes"] if "WAZZUP24_ASYNC_BACKLOG" in note]
    assert note.startswith("3 message(s) wait in the outbox (2 in the lane of those sent with Prefer: respond-async)") and "429" in note
    assert "Outbox async" in run("status", WAZZUP24_ASYNC_BACKLOG="3").output


@pytest.fixture
def two_agents_noted(helpdesk, outbox_ctx, agent, agent_password_hash):
    """Alice and Bob noted as senders (``outbound/users.py``), neither a Wazzup user yet: ``(alice, bob, table)``."""
    from types import SimpleNamespace

    from host_stub.auth import insert_agent
    from wazzup_plugin.outbound import users

    with helpdesk.db.write() as tx:
        bob = insert_agent(tx.conn, "bob", agent_password_hash, "Bob", _real_now())
        for agent_id, name in ((agent["id"], "alice"), (bob, "bob")):
            users.note_agent(tx.conn, outbox_ctx, SimpleNamespace(id=agent_id, username=name, display_name=""))
    return agent["id"], bob, get_state(helpdesk).tables["users"]


def test_status_shows_the_agents_wazzup_has_as_users_and_why_the_others_wait(run, helpdesk, two_agents_noted):
    alice, bob, t = two_agents_noted
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == alice).values(synced_name="alice"))
        tx.conn.execute(sa.update(t).where(t.c.agent_id == bob).values(
            last_error="Wazzup does not allow this API key on this route (403): a Sidecar key?"))
    result = run("status")
    assert result.exit_code == 0, result.output  # worth knowing, not a problem: messages still go out
    assert "Wazzup users     1 agent(s) synced, 1 waiting (Wazzup does not allow this API key" in result.output
    report = json.loads(run("status", "--json").output)
    assert (report["agents"]["synced"], report["agents"]["waiting"], report["agents"]["sync"]) == (1, 1, True)
    assert "not synced (WAZZUP24_SYNC_USERS=0)" in run("status", WAZZUP24_SYNC_USERS="0").output


def test_status_shows_the_latest_reason_an_agent_waits_not_an_older_one(run, helpdesk, two_agents_noted):
    """A renamed agent waits again at once (no next try set) and keeps its old reason; the reason shown is the
    one of the agent waiting for the latest retry. PostgreSQL sorts NULLs first in a descending order."""
    from datetime import timedelta

    alice, bob, t = two_agents_noted
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == alice).values(last_error="an old reason"))
        tx.conn.execute(sa.update(t).where(t.c.agent_id == bob).values(
            last_error="the latest reason", next_try_at=_real_now() + timedelta(minutes=5)))

    assert json.loads(run("status", "--json").output)["agents"]["last_error"] == "the latest reason"


def test_status_counts_the_agents_who_left_apart_waiting_to_be_removed_from_wazzup_or_removed(run, helpdesk,
                                                                                              two_agents_noted):
    alice, bob, t = two_agents_noted
    helpdesk.agents_access_changed({alice, bob}, False)
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(t).where(t.c.agent_id == alice).values(removed_at=_real_now()))
        tx.conn.execute(sa.update(t).where(t.c.agent_id == bob).values(last_error="Wazzup answered 502"))
    assert "Wazzup users     0 agent(s) synced, 0 waiting; left: 1 to remove, 1 removed (Wazzup answered 502)" \
        in run("status").output
    agents = json.loads(run("status", "--json").output)["agents"]
    assert (agents["synced"], agents["waiting"], agents["leaving"], agents["removed"]) == (0, 0, 1, 1)


def test_status_counts_the_last_days_unknown_and_failed_sends(run, helpdesk, queue_message, outbox_ctx):
    from wazzup_plugin.outbound.outbox import move_status

    ids = [queue_message(minutes_ago=m) for m in (60 * 30, 90, 60, 30)]  # the first, 30 h ago, is out of the day
    with helpdesk.db.write() as tx:
        for message_id, status in zip(ids, ("failed", "unknown", "failed", "failed")):
            move_status(tx, helpdesk, message_id, status, _real_now())
    report = json.loads(run("status", "--json").output)
    assert (report["outbox"]["unknown_last_24h"], report["outbox"]["failed_last_24h"]) == (1, 2)


@pytest.mark.parametrize("times, cutoff, first", [
    ([], 5, None),
    ([1, 2, 3], 5, None),
    ([1, 2, 3, 7, 9], 5, 4),
    ([6, 7], 5, 1),
    ([1, 5, 5, 8], 5, 2),
])
def test_the_first_outbox_id_since_a_time_is_found_by_its_primary_key(helpdesk, make_wazzup_chat, times, cutoff,
                                                                      first):
    """Ids 1..n created at the given minutes; a gap in the ids (a deleted row) changes nothing."""
    from wazzup_plugin.health import first_outbox_id_since

    o = get_state(helpdesk).tables["outbox"]
    m = helpdesk.tables.messages
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    chat = make_wazzup_chat()
    with helpdesk.db.write() as tx:
        for i, minute in enumerate(times, start=1):
            at = start + timedelta(minutes=minute)
            tx.conn.execute(sa.insert(m).values(id=i * 10, chat_id=chat, direction="out", status="queued",
                                                type="text", created_at=at, change_seq=tx.change_seq))
            tx.conn.execute(sa.insert(o).values(message_id=i * 10, chat_id=chat, state="done", crm_message_id=str(i),
                                                attempts=1, next_attempt_at=at, created_at=at, updated_at=at))
    with helpdesk.db.read() as conn:
        found = first_outbox_id_since(conn, o, start + timedelta(minutes=cutoff))
    assert found == (first * 10 if first else None)


def test_the_outbox_worker_records_its_heartbeat(helpdesk, outbox_ctx):
    from wazzup_plugin.outbound import worker

    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(outbox_ctx, stop), kwargs={"poll_seconds": 0.05})
    thread.start()
    try:
        for _ in range(200):  # bounded: the first loop beats before it looks at the outbox
            with helpdesk.db.read() as conn:
                beat = heartbeats.read_heartbeats(conn, get_state(helpdesk).tables["heartbeats"]).get("worker")
            if beat is not None or stop.wait(0.02):
                break
    finally:
        stop.set()
        thread.join(10)
    assert beat.at == helpdesk.clock() and beat.detail.startswith("worker:")
    assert beat.every_seconds == heartbeats.WORKER_EVERY.total_seconds()


def test_a_worker_inside_slow_calls_to_wazzup_is_not_called_dead(helpdesk, outbox_ctx, make_wazzup_chat, queue, clock,
                                                                  wazzup_api, wazzup_url, network_error):
    """Wazzup slow: each call takes up to the timeouts (5 s to connect, 20 s for the answer), a batch of
    them minutes. `status` asked meanwhile said the worker had stopped ("start helpdesk-stub wazzup24
    worker") while it was sending."""
    from wazzup_plugin.health import build_report, collect
    from wazzup_plugin.outbound import worker

    state = get_state(helpdesk)
    stop, alive = threading.Event(), []
    seconds = [9, 25, 20, 25]  # what each call takes, on the test's clock

    def slow_wazzup(request):
        clock.advance(seconds[len(alive)])
        alive.append(build_report(collect(helpdesk, state, list), state.settings, clock())["worker"]["alive"])
        if len(alive) == len(seconds):
            stop.set()
        return network_error("read_timeout")

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/message", callback=slow_wazzup)
    for n in range(len(seconds)):
        queue(make_wazzup_chat(wazzup_chat_id=f"7901111223{n}"))
    worker.run(outbox_ctx, stop, poll_seconds=0.05)
    assert alive == [True] * len(seconds)


def test_the_webhook_records_when_it_last_received_at_most_every_30_seconds(deliver, payload, helpdesk, clock):
    table = get_state(helpdesk).tables["heartbeats"]

    def last_received():
        with helpdesk.db.read() as conn:
            return heartbeats.read_heartbeats(conn, table)["webhook"].at

    first = clock()
    assert deliver(payload("test")).status_code == 200
    clock.advance(20)
    deliver(payload("incoming_text"))
    assert last_received() == first
    clock.advance(11)
    deliver(payload("incoming_text"))
    assert last_received() == clock()


def test_status_exits_2_when_the_database_cannot_be_read(run, backend, database_url, tmp_path):
    if backend == "sqlite":
        garbage = tmp_path / "not-a-database.sqlite3"
        garbage.write_bytes(b"this is not a database file" * 100)
        url = f"sqlite:///{garbage}"
    else:
        url = make_url(database_url).set(database=f"{make_url(database_url).database}_missing").render_as_string(
            hide_password=False)
    result = run("status", "--json", HELPDESK_DATABASE_URL=url)
    assert result.exit_code == 2
    assert json.loads(result.stdout)["status"] == "unreadable"
    assert "cannot read the database" in result.stderr


def test_status_with_an_invalid_setting_exits_2_with_one_json_object_naming_it(run):
    result = run("status", "--json", WAZZUP24_RATE_LIMIT="abc")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["status"] == "cannot_start" and "WAZZUP24_RATE_LIMIT" in report["reason"]
    assert "the helpdesk cannot start" in result.stderr and "WAZZUP24_RATE_LIMIT" in result.stderr
