"""GET pages share one read transaction between the agent's lookup and the page (host_stub/auth.py)."""

import pytest
import sqlalchemy as sa


@pytest.fixture
def checkouts(engine):
    """How many connections the pool hands out while the test runs."""
    count = []
    listener = lambda *args: count.append(1)  # noqa: E731
    sa.event.listen(engine, "checkout", listener)
    yield count
    sa.event.remove(engine, "checkout", listener)


@pytest.mark.parametrize("path", ["/api/chats", "/api/chats/{id}", "/api/chats/{id}/messages"])
def test_a_page_takes_one_connection_for_the_agent_and_the_page(client, auth, make_chat, checkouts, path):
    chat_id = make_chat(title="Ivan")
    checkouts.clear()
    answer = client.simulate_get(path.format(id=chat_id), headers=auth)
    assert answer.status_code == 200
    assert len(checkouts) == 1


@pytest.mark.parametrize("path, headers, status", [
    ("/api/chats", {"Authorization": "Bearer wrong"}, 401),
    ("/api/chats/999999/messages", None, 404),
    ("/api/chats", {"cursor": "broken"}, 422),
])
def test_the_shared_read_ends_with_the_request_whatever_its_outcome(client, auth, engine, path, headers, status):
    if headers and "cursor" in headers:
        answer = client.simulate_get(path, headers=auth, params=headers)
    else:
        answer = client.simulate_get(path, headers=headers or auth)
    assert answer.status_code == status
    assert engine.pool.checkedout() == 0
    assert client.simulate_get("/api/chats", headers=auth).status_code == 200


def test_writes_do_not_share_a_read(client, auth, make_chat, checkouts):
    chat_id = make_chat(title="Ivan", unread=3)
    checkouts.clear()
    assert client.simulate_post(f"/api/chats/{chat_id}/read", headers=auth).status_code == 200
    assert len(checkouts) >= 2  # the agent's lookup, then the write's own transaction


def test_empty_message_page_of_an_existing_chat_is_empty_not_missing(client, auth, make_chat):
    chat_id = make_chat(title="Quiet")
    answer = client.simulate_get(f"/api/chats/{chat_id}/messages", headers=auth)
    assert answer.status_code == 200 and answer.json["items"] == []


@pytest.mark.parametrize("path", ["/api/chats", "/api/chats/{id}/messages"])
def test_a_change_committed_while_an_empty_page_is_read_is_not_skipped_by_pollers(
        client, auth, helpdesk, make_chat, make_message, monkeypatch, path):
    """On PostgreSQL each statement sees its own snapshot: the counter of an empty page must not
    cover a change committed after the page was read."""
    from host_stub.db import Database

    chat_id = make_chat(title="Ivan")
    url = path.format(id=chat_id)
    since = client.simulate_get(url, headers=auth, params={"changed_since": 0}).json["change_seq"]
    original = Database.current_change_seq_in
    fired = []

    def a_writer_commits_first(self, conn):
        if not fired:
            fired.append(1)
            if path == "/api/chats":
                make_chat(title="Maria")
            else:
                make_message(chat_id, text="Arrived in between")
        return original(self, conn)

    monkeypatch.setattr(Database, "current_change_seq_in", a_writer_commits_first)
    first = client.simulate_get(url, headers=auth, params={"changed_since": since}).json
    monkeypatch.setattr(Database, "current_change_seq_in", original)
    later = client.simulate_get(url, headers=auth, params={"changed_since": first["change_seq"]}).json
    assert fired
    seen = first["items"] + later["items"]
    assert len(seen) == 1 and (seen[0].get("title") == "Maria" or seen[0].get("text") == "Arrived in between")


@pytest.mark.parametrize("path", ["/api/chats", "/api/chats/{id}", "/api/chats/{id}/messages"])
def test_a_connection_lost_during_a_page_is_503_and_the_next_request_reconnects(client, auth, engine, make_chat,
                                                                                 caplog, path):
    """The shared read of a failed request rolls back: committing on the lost connection raised
    PendingRollbackError, which turned the 503 into a 500."""
    chat_id = make_chat(title="Ivan")
    assert client.simulate_get(path.format(id=chat_id), headers=auth).status_code == 200

    def drop_at_the_page(conn, cursor, statement, parameters, context, executemany):
        if "FROM chats" in statement and "api_tokens" not in statement:
            conn.connection.dbapi_connection.close()  # as the server dropping it: the driver's own error follows

    sa.event.listen(engine, "before_cursor_execute", drop_at_the_page)
    try:
        answer = client.simulate_get(path.format(id=chat_id), headers=auth)
    finally:
        sa.event.remove(engine, "before_cursor_execute", drop_at_the_page)
    assert answer.status_code == 503 and answer.json["code"] == "database_unavailable", answer.text
    assert "PendingRollbackError" not in caplog.text
    assert engine.pool.checkedout() == 0
    assert client.simulate_get(path.format(id=chat_id), headers=auth).status_code == 200


def test_a_page_read_after_postgresql_terminated_its_connection_is_503_not_500(client, auth, engine, make_chat,
                                                                               backend):
    if backend != "postgres":
        pytest.skip("pg_terminate_backend is PostgreSQL's")
    make_chat(title="Ivan")
    assert client.simulate_get("/api/chats", headers=auth).status_code == 200
    admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    admin.dispose()
    answer = client.simulate_get("/api/chats", headers=auth)  # the pooled connection is not pinged this soon
    assert answer.status_code == 503 and answer.json["code"] == "database_unavailable", answer.text
    assert client.simulate_get("/api/chats", headers=auth).status_code == 200
