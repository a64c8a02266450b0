"""Agents become Wazzup users, so that Wazzup shows which agent sent a message (its crmUserId names a
sender only for a user it has): a send notes its agent, the outbox worker posts the new and renamed
ones to POST /v3/users; a failure there never holds a message back. An agent who leaves the helpdesk
is deleted from Wazzup's users (DELETE /v3/users/:id), and posted again if they come back."""

import json
import logging
import re
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
    """Wazzup's POST /v3/users and DELETE /v3/users/:id, answering ``answer`` and ``removal`` (status, body);
    ``posted()``: the users of each post; ``deleted()``: the user id of each deletion."""
    fake = SimpleNamespace(answer=(200, ""), removal=(200, ""))
    wazzup_api.add_callback("POST", f"{wazzup_url}/v3/users", callback=lambda request: (fake.answer[0], {},
                                                                                        fake.answer[1]))
    wazzup_api.add_callback("DELETE", re.compile(re.escape(f"{wazzup_url}/v3/users/") + r"[^/]+"),
                            callback=lambda request: (fake.removal[0], {}, fake.removal[1]))
    fake.posted = lambda: [json.loads(c.request.body) for c in wazzup_api.calls
                           if c.request.method == "POST" and c.request.url.endswith("/v3/users")]
    fake.deleted = lambda: [c.request.url.rsplit("/", 1)[1] for c in wazzup_api.calls if c.request.method == "DELETE"]
    return fake


@pytest.fixture
def access(helpdesk, agent):
    """``access(False)``: the host says the agent was deactivated (``True``: activated again), after its commit."""
    return lambda active: helpdesk.agents_access_changed({agent["id"]}, active)


@pytest.fixture
def left_wazzup(send, chat, wazzup_users, outbox_ctx, access):
    """The agent sent, became a Wazzup user, then was deactivated: the next sync deletes the user."""
    assert send(chat).status_code == 201
    assert users.sync(outbox_ctx) == 1
    access(False)


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


# ---------------------------------------------------------------- agents who leave the helpdesk


def test_an_agent_who_leaves_is_deleted_from_wazzups_users_once(left_wazzup, wazzup_users, outbox_ctx, agent,
                                                                 helpdesk, clock):
    assert users.sync(outbox_ctx) == 1
    assert users.sync(outbox_ctx) == 0  # gone from Wazzup: neither deleted again nor posted again
    assert wazzup_users.deleted() == [str(agent["id"])]
    assert len(wazzup_users.posted()) == 1
    row = user_row(helpdesk, agent["id"])
    assert (row.left_at, row.removed_at, row.synced_name, row.next_try_at) == (clock(), clock(), None, None)


@pytest.mark.parametrize("body", ["", json.dumps({"error": "USER_NOT_FOUND", "description": "User not found"})],
                         ids=["empty", "error object"])
def test_a_404_on_deleting_means_wazzup_has_no_such_user_which_counts_as_removed(left_wazzup, wazzup_users,
                                                                                   outbox_ctx, agent, helpdesk, body):
    wazzup_users.removal = (404, body)
    assert users.sync(outbox_ctx) == 1
    assert user_row(helpdesk, agent["id"]).removed_at is not None
    assert users.sync(outbox_ctx) == 0 and len(wazzup_users.deleted()) == 1


@pytest.mark.parametrize("status, wait", [(502, users.WAIT_UNAVAILABLE), (403, users.WAIT_REFUSED)])
def test_a_failed_deletion_waits_and_is_tried_again_then_logged_once(left_wazzup, wazzup_users, outbox_ctx, agent,
                                                                     helpdesk, clock, caplog, status, wait):
    wazzup_users.removal = (status, "")
    with caplog.at_level(logging.WARNING, logger="wazzup_plugin"):
        assert users.sync(outbox_ctx) == 0
        row = user_row(helpdesk, agent["id"])
        assert row.removed_at is None and row.next_try_at == clock() + wait and str(status) in row.last_error
        clock.advance(wait.total_seconds() - 1)
        users.sync(outbox_ctx)
        assert len(wazzup_users.deleted()) == 1  # not before its time
        clock.advance(seconds=1)
        users.sync(outbox_ctx)  # the same failure: not logged again
    assert len(wazzup_users.deleted()) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "who left the helpdesk" in warnings[0]
    wazzup_users.removal = (200, "")
    clock.advance(wait.total_seconds())
    assert users.sync(outbox_ctx) == 1
    assert user_row(helpdesk, agent["id"]).removed_at is not None


def test_an_agent_who_comes_back_is_posted_again_though_this_process_wrote_their_name(
        left_wazzup, send, chat, wazzup_users, outbox_ctx, agent, access, helpdesk):
    users.sync(outbox_ctx)  # deleted
    access(True)
    with statements_on_users(helpdesk) as written:
        assert send(chat, text="back again").status_code == 201
    assert written == []  # this process wrote their name before: the send does not write it again
    assert users.sync(outbox_ctx) == 1
    assert wazzup_users.posted() == [[{"id": str(agent["id"]), "name": "Alice Agent"}]] * 2
    row = user_row(helpdesk, agent["id"])
    assert (row.left_at, row.removed_at, row.synced_name) == (None, None, "Alice Agent")


def test_an_agent_who_comes_back_before_the_deletion_is_posted_again_not_deleted(left_wazzup, wazzup_users,
                                                                                  outbox_ctx, agent, access):
    access(True)
    assert users.sync(outbox_ctx) == 1
    assert wazzup_users.deleted() == [] and len(wazzup_users.posted()) == 2


def test_a_send_racing_the_deactivation_does_not_bring_the_agent_back(left_wazzup, wazzup_users, outbox_ctx, agent,
                                                                      helpdesk):
    outbox_ctx.agent_names.clear()  # another process, which never wrote the agent
    with helpdesk.db.write() as tx:
        users.note_agent(tx.conn, outbox_ctx, SimpleNamespace(id=agent["id"], username="alice",
                                                              display_name="Alice Smith"))
    assert users.sync(outbox_ctx) == 1
    assert wazzup_users.deleted() == [str(agent["id"])] and len(wazzup_users.posted()) == 1
    assert user_row(helpdesk, agent["id"]).name == "Alice Agent"


def test_an_agent_who_never_sent_is_neither_recorded_nor_called_about(wazzup_users, outbox_ctx, agent, access,
                                                                      helpdesk, wazzup_api):
    access(False)
    access(True)
    assert users.sync(outbox_ctx) == 0
    assert user_row(helpdesk, agent["id"]) is None and len(wazzup_api.calls) == 0


def test_deactivating_on_the_cli_removes_the_agent_from_the_sandbox_and_activating_brings_them_back(
        run, run_host, sandbox_server, helpdesk, outbox_ctx, agent):
    """What an operator does, against the sandbox over HTTP: ``users deactivate``, the worker (from cron),
    ``users activate``, the worker again."""
    with helpdesk.db.write() as tx:  # what a send by the agent wrote
        users.note_agent(tx.conn, outbox_ctx, SimpleNamespace(id=agent["id"], username="alice",
                                                              display_name="Alice Agent"))
    on_sandbox = {"WAZZUP24_API_URL": sandbox_server.url}
    alice = [{"id": str(agent["id"]), "name": "Alice Agent"}]
    for command, listed in (("", alice), ("deactivate", []), ("activate", alice)):
        if command:
            assert run_host("users", command, "alice").exit_code == 0
        assert run("worker", "--once", **on_sandbox).exit_code == 0
        assert sandbox_server.app.sandbox.listed_users() == listed, command
