"""Through real gunicorn: concurrent duplicate deliveries store once (SQLite and PostgreSQL), and a
secret carried in the webhook URL never reaches a log."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from host_stub.db import make_engine
from host_stub.schema import create_all
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message, status_update

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"
SECRET = "gunicorn-webhook-secret-9f8e7d6c5b4a"
COPIES = 4       # each delivery sent this many times at once
ROUNDS = 3       # fresh chats every round: every round races on first messages


def _prepare(url: str, pm) -> sa.Engine:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    create_all(engine, pm)
    return engine


def _deliveries(round_no: int) -> list[dict]:
    """Six deliveries over five new chats; some share messages, some carry statuses too."""
    chats = [f"7900{round_no}{n:06d}" for n in range(5)]
    items = [incoming_message(channel_id=CHANNEL, chat_id=chats[n % 5], name=f"Customer {n % 5}",
                              text=f"round {round_no} message {n}", message_id=f"r{round_no}-m{n:03d}")
             for n in range(30)]
    bodies = [delivery(messages=items[k * 5:(k + 1) * 5]) for k in range(6)]
    bodies.append(delivery(messages=items[::3], statuses=[
        status_update(message_id=f"r{round_no}-unknown-{n}", status="delivered") for n in range(3)]))
    return bodies


def _fire(url: str, bodies: list[dict], headers=None) -> list[int]:
    """Every body COPIES times, all released at once from a bounded pool of threads."""
    jobs = [b for b in bodies for _ in range(COPIES)]
    gate = threading.Barrier(len(jobs))

    def post(body):
        with requests.Session() as s:
            data = json.dumps(body).encode()
            try:
                gate.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
            return s.post(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                          timeout=60).status_code

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(post, jobs))


def _assert_stored_exactly_once(engine, pm, rounds: int) -> None:
    from host_stub.models import Chat, Message

    metadata = sa.MetaData()
    metadata.reflect(engine, only=["wazzup_chats", "wazzup_messages", "wazzup_parked"])
    wc, wm, parked = (metadata.tables[n] for n in ("wazzup_chats", "wazzup_messages", "wazzup_parked"))
    chats, messages = Chat.__table__, Message.__table__
    with engine.connect() as conn:
        per_chat = conn.execute(sa.select(wc.c.wazzup_chat_id, sa.func.count()).group_by(
            wc.c.channel_id, wc.c.chat_type, wc.c.wazzup_chat_id)).all()
        per_message = conn.execute(sa.select(wm.c.wazzup_message_id, sa.func.count())
                                   .group_by(wm.c.wazzup_message_id)).all()
        host_chats = conn.execute(sa.select(sa.func.count()).select_from(chats)).scalar_one()
        host_messages = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
        unread = conn.execute(sa.select(chats.c.unread_count)).scalars().all()
        parked_count = conn.execute(sa.select(sa.func.count()).select_from(parked)).scalar_one()
    assert len(per_chat) == 5 * rounds and all(n == 1 for _, n in per_chat)
    assert len(per_message) == 30 * rounds and all(n == 1 for _, n in per_message)
    assert host_chats == 5 * rounds            # no orphan chat left by a worker that lost a race
    assert host_messages == 30 * rounds        # no orphan message either
    assert sorted(unread) == [6] * (5 * rounds)  # each message counted once as unread
    assert parked_count == 3 * rounds          # a parked status parks once however often it comes


def _run(gunicorn_host, pm, url: str) -> None:
    engine = _prepare(url, pm)
    host = gunicorn_host({"HELPDESK_DATABASE_URL": url, "WAZZUP24_WEBHOOK_SECRET": SECRET}, workers=3)
    try:
        for round_no in range(ROUNDS):
            codes = _fire(host.url + "/api/webhook", _deliveries(round_no), {"Authorization": f"Bearer {SECRET}"})
            assert codes == [200] * len(codes)
        _assert_stored_exactly_once(engine, pm, ROUNDS)
    finally:
        engine.dispose()


def test_concurrent_duplicate_deliveries_store_each_chat_and_message_once_on_sqlite(gunicorn_host, pm, tmp_path):
    _run(gunicorn_host, pm, f"sqlite:///{tmp_path / 'concurrent.sqlite3'}")


def test_concurrent_duplicate_deliveries_store_each_chat_and_message_once_on_postgresql(gunicorn_host, pm,
                                                                                      pg_database_url):
    _run(gunicorn_host, pm, pg_database_url)


def test_secret_in_the_webhook_url_is_masked_in_access_and_app_logs(gunicorn_host, pm, tmp_path):
    url = f"sqlite:///{tmp_path / 'logs.sqlite3'}"
    _prepare(url, pm).dispose()
    host = gunicorn_host({"HELPDESK_DATABASE_URL": url, "WAZZUP24_WEBHOOK_SECRET": SECRET}, workers=2)
    body = delivery(messages=[incoming_message(channel_id=CHANNEL, chat_id="79161234567", text="hi")])
    ok = requests.post(f"{host.url}/api/webhook?token={SECRET}", json=body, timeout=30)
    wrong = requests.post(f"{host.url}/api/wazzup24/webhook?token={SECRET}x&a=1", json=body, timeout=30)
    bearer = requests.post(f"{host.url}/api/webhook", json={"test": True}, timeout=30,
                           headers={"Authorization": f"Bearer {SECRET}"})
    assert (ok.status_code, wrong.status_code, bearer.status_code) == (200, 401, 200)
    assert SECRET not in ok.text + wrong.text + bearer.text

    host.stop()  # flush every log before reading it
    access = host.logs["access"].read_text()
    app_log = host.logs["app"].read_text()
    stderr = host.logs["stderr"].read_text()
    assert "/api/webhook?token=***" in access          # the request is logged, its secret is not
    assert "/api/wazzup24/webhook?token=***" in access
    assert "webhook delivery stored" in app_log
    assert "missing or wrong secret" in app_log
    for text in (access, app_log, stderr):
        assert SECRET not in text
