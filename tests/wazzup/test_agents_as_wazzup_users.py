"""Agents become Wazzup users, so that Wazzup shows which agent sent a message (its crmUserId names a
sender only for a user it has): a send notes its agent, the outbox worker posts the new and renamed
ones to POST /v3/users; a failure there never holds a message back."""

import json
import logging
import threading
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound import users, worker
from wazzup_plugin.state import get_state

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"


@pytest.fixture
def chat(make_wazzup_chat, wazzup_api, wazzup_url):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    return make_wazzup_chat()


@pytest.fixture
def wazzup_users(wazzup_api, wazzup_url):
    """Wazzup's POST /v3/users, answering ``answer`` (status, body); ``posted()``: the users of each call."""
    fake = SimpleNamespace(answer=(200, ""))
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/users", callback=lambda request: (fake.answer[0], {},
                                                                                        fake.answer[1]))
    fake.posted = lambda: [json.loads(c.request.body) for c in wazzup_api.calls
                           if c.request.url.endswith("/v3/users")]
    return fake


def user_row(helpdesk, agent_id):
    t = get_state(helpdesk).tables["users"]
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(t).where(t.c.agent_id == agent_id)).first()


@contextmanager
def statements_on_users(helpdesk):
    """The SQL statements run on ``wazzup_users`` inside the block."""
    seen = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        if "wazzup_users" in statement:
            seen.append(statement)

    sa.event.listen(helpdesk.db.engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        sa.event.remove(helpdesk.db.engine, "before_cursor_execute", listen)


def test_an_agents_first_send_leads_the_worker_to_make_them_a_wazzup_user_once(
        send, chat, wazzup_users, outbox_ctx, agent, helpdesk):
    assert send(chat).status_code == 201
    assert users.sync(outbox_ctx) == 1
    assert users.sync(outbox_ctx) == 0  # Wazzup has them: nothing to post
    assert wazzup_users.posted() == [[{"id": str(agent["id"]), "name": "Alice Agent"}]]
    row = user_row(helpdesk, agent["id"])
    assert (row.name, row.synced_name, row.last_error, row.next_try_at) == ("Alice Agent", "Alice Agent", None, None)


def test_a_second_send_neither_writes_the_agent_again_nor_posts_them_again(
        send, chat, wazzup_users, outbox_ctx, helpdesk):
    """Guards against doing too much: the send path writes an agent once per process, not per message."""
    send(chat)
    users.sync(outbox_ctx)
    with statements_on_users(helpdesk) as written:
        assert send(chat, text="again").status_code == 201
    assert written == []
    users.sync(outbox_ctx)
    assert len(wazzup_users.posted()) == 1


def test_a_renamed_agent_is_posted_again_under_the_new_name(send, chat, wazzup_users, outbox_ctx, agent, helpdesk):
    send(chat)
    users.sync(outbox_ctx)
    agents = helpdesk.tables.agents
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(agents).where(agents.c.id == agent["id"]).values(display_name="Alice Smith"))
    send(chat, text="from Alice Smith")
    assert users.sync(outbox_ctx) == 1
    assert wazzup_users.posted()[-1] == [{"id": str(agent["id"]), "name": "Alice Smith"}]


def test_a_resend_makes_its_agent_a_wazzup_user_too(client, auth, chat, make_message, wazzup_users, outbox_ctx, agent):
    failed = make_message(chat, "lost", direction="out", status="failed")
    resent = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{failed}/resend", headers=auth)
    assert resent.status_code == 201
    users.sync(outbox_ctx)
    assert wazzup_users.posted() == [[{"id": str(agent["id"]), "name": "Alice Agent"}]]


def test_150_waiting_agents_go_in_two_calls_of_at_most_100(wazzup_users, outbox_ctx, helpdesk, agent_password_hash):
    from host_stub.auth import insert_agent

    with helpdesk.db.write() as tx:
        for n in range(150):
            agent_id = insert_agent(tx.conn, f"agent{n}", agent_password_hash, f"Agent {n}", helpdesk.clock())
            users.note_agent(tx.conn, outbox_ctx, SimpleNamespace(id=agent_id, username=f"agent{n}",
                                                                  display_name=f"Agent {n}"))
    assert users.sync(outbox_ctx) == 150
    assert [len(call) for call in wazzup_users.posted()] == [100, 50]
    assert sorted(u["name"] for call in wazzup_users.posted() for u in call) == sorted(f"Agent {n}" for n in range(150))


def test_a_403_leaves_sends_going_and_the_agent_is_posted_again_an_hour_later(
        send, chat, wazzup_users, outbox_ctx, agent, helpdesk, clock, caplog, api_key):
    """A Sidecar key may not use POST /v3/users: messages still go out, without the sender's name."""
    wazzup_users.answer = (403, "")
    assert send(chat).status_code == 201
    with caplog.at_level(logging.WARNING, logger="wazzup_plugin"):
        assert users.sync(outbox_ctx) == 0
    row = user_row(helpdesk, agent["id"])
    assert row.synced_name is None and "403" in row.last_error
    assert row.next_try_at == clock() + users.WAIT_REFUSED
    assert send(chat, text="still goes").status_code == 201
    clock.advance(minutes=59)
    users.sync(outbox_ctx)
    assert len(wazzup_users.posted()) == 1  # not before the hour
    clock.advance(minutes=1)
    with caplog.at_level(logging.WARNING, logger="wazzup_plugin"):
        users.sync(outbox_ctx)  # refused again: not logged again
    wazzup_users.answer = (200, "")
    clock.advance(hours=1)
    assert users.sync(outbox_ctx) == 1
    assert len(wazzup_users.posted()) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "Wazzup users" in r.getMessage()]
    assert len(warnings) == 1 and "403" in warnings[0].getMessage()
    assert api_key not in caplog.text


def test_when_wazzup_cannot_be_reached_the_agents_wait_five_minutes(
        send, chat, wazzup_users, outbox_ctx, agent, helpdesk, clock):
    wazzup_users.answer = (502, "Bad Gateway")
    send(chat)
    assert users.sync(outbox_ctx) == 0
    assert user_row(helpdesk, agent["id"]).next_try_at == clock() + users.WAIT_UNAVAILABLE


def test_users_wazzup_refuses_by_index_wait_and_the_others_go_at_the_next_sync(
        wazzup_users, outbox_ctx, helpdesk, clock, agent_password_hash):
    from host_stub.auth import insert_agent

    with helpdesk.db.write() as tx:
        ids = [insert_agent(tx.conn, name, agent_password_hash, name, clock()) for name in ("ann", "bob")]
        for agent_id, name in zip(ids, ("ann", "bob")):
            users.note_agent(tx.conn, outbox_ctx, SimpleNamespace(id=agent_id, username=name, display_name=""))
    wazzup_users.answer = (400, json.dumps({"error": "INVALID_USERS_DATA", "description": "Users data is invalid",
                                            "data": [{"index": 1, "fields": ["name"]}]}))
    assert users.sync(outbox_ctx) == 0
    assert "name" in user_row(helpdesk, ids[1]).last_error and user_row(helpdesk, ids[0]).next_try_at is None
    wazzup_users.answer = (200, "")
    assert users.sync(outbox_ctx) == 1
    assert wazzup_users.posted()[-1] == [{"id": str(ids[0]), "name": "ann"}]


def test_with_the_setting_off_nothing_is_written_or_posted(send, chat, wazzup_users, outbox_ctx, plugin_settings,
                                                           agent, helpdesk):
    plugin_settings(sync_users=False)
    assert send(chat).status_code == 201
    assert users.sync(outbox_ctx) == 0
    assert wazzup_users.posted() == [] and user_row(helpdesk, agent["id"]) is None


def test_the_running_worker_posts_new_agents_in_the_background(send, chat, wazzup_api, wazzup_url, outbox_ctx, agent):
    stop, posted = threading.Event(), []

    def users_posted(request):
        posted.append(json.loads(request.body))
        stop.set()
        return 200, {}, ""

    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/users", callback=users_posted)
    send(chat)
    timer = threading.Timer(10, stop.set)  # bounded, should the worker never post
    timer.start()
    try:
        worker.run(outbox_ctx, stop, poll_seconds=0.01)  # returns once stopped
    finally:
        timer.cancel()
    assert posted == [[{"id": str(agent["id"]), "name": "Alice Agent"}]]


def test_a_database_error_while_syncing_never_leaves_the_worker(outbox_ctx, monkeypatch, caplog):
    def database_away(ctx):
        raise sa.exc.OperationalError("SELECT ... FROM wazzup_users", {}, Exception("server closed the connection"))

    monkeypatch.setattr(users, "sync", database_away)
    worker.sync_users(outbox_ctx)  # logged, not raised
    assert "could not make the agents Wazzup users" in caplog.text
