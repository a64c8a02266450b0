"""``helpdesk-stub users`` and ``tokens``: agents deactivated, passwords set, tokens listed and revoked, bad input
refused before the database; on SQLite and on PostgreSQL."""

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from host_stub.auth import SESSION_COOKIE, create_token, token_digest

PASSWORD = "correct horse battery"  # the ``agent`` fixture's


@pytest.fixture
def cli(run, engine, database_url):
    """``run`` on the tests' database (SQLite, and PostgreSQL when configured), beside ``client``."""
    return lambda *args, input=None: run(*args, input=input, env={"HELPDESK_DATABASE_URL": database_url})


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def sign_in(client, password=PASSWORD):
    return client.simulate_post("/api/session", json={"username": "alice", "password": password})


def status(client, token=None, cookie=None):
    """What ``GET /api/chats`` answers with this API token or this session cookie."""
    if token is not None:
        return client.simulate_get("/api/chats", headers={"Authorization": f"Bearer {token}"}).status_code
    return client.simulate_get("/api/chats", cookies={SESSION_COOKIE: cookie}).status_code


def count(helpdesk, table) -> int:
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(helpdesk.metadata.tables[table])).scalar()


def test_a_revoked_token_is_refused_on_the_api_and_revoking_it_again_changes_nothing(cli, client, helpdesk, agent):
    assert status(client, agent["token"]) == 200
    assert "token 1: revoked" in ok(cli("tokens", "revoke", "1")).output
    assert status(client, agent["token"]) == 401
    tokens = helpdesk.metadata.tables["api_tokens"]
    with helpdesk.db.read() as conn:
        revoked_at = conn.execute(sa.select(tokens.c.revoked_at)).scalar()
    assert "token 1: revoked already" in ok(cli("tokens", "revoke", "1")).output
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(tokens.c.revoked_at)).scalar() == revoked_at


def test_revoking_an_unknown_token_id_is_an_error_and_revokes_none_of_the_others(cli, client, agent):
    result = cli("tokens", "revoke", "1", "99", str(2**40))
    assert result.exit_code == 2
    assert f"no API token with id 99, {2**40}" in result.output and "nothing was revoked" in result.output
    assert "Traceback" not in result.output
    assert status(client, agent["token"]) == 200


def test_a_deactivated_agents_token_and_ui_session_stop_working_and_activate_restores_the_token(cli, client, helpdesk,
                                                                                                 agent):
    cookie = sign_in(client).cookies[SESSION_COOKIE].value
    assert status(client, cookie=cookie) == 200
    assert "signed out of 1 UI session(s)" in ok(cli("users", "deactivate", "alice")).output
    assert (status(client, agent["token"]), status(client, cookie=cookie)) == (401, 401)
    assert sign_in(client).status_code == 401
    assert count(helpdesk, "agent_sessions") == 0
    assert "agent-inactive" in ok(cli("tokens", "list")).output
    refused = cli("tokens", "create", "alice")
    assert refused.exit_code == 2 and "helpdesk-stub users activate alice" in refused.output
    assert count(helpdesk, "api_tokens") == 1

    ok(cli("users", "activate", "alice"))
    assert status(client, agent["token"]) == 200
    assert status(client, cookie=cookie) == 401  # the session stays ended
    assert sign_in(client).status_code == 200


def test_set_password_makes_the_old_password_fail_and_the_new_one_work_and_ends_ui_sessions(cli, client, agent):
    cookie = sign_in(client).cookies[SESSION_COOKIE].value
    result = ok(cli("users", "set-password", "alice", "--password-stdin", input="a brand new password\n"))
    assert "signed out of 1 UI session(s)" in result.output and "a brand new password" not in result.output
    assert status(client, cookie=cookie) == 401
    assert sign_in(client).status_code == 401
    assert sign_in(client, "a brand new password").status_code == 200
    assert status(client, agent["token"]) == 200  # API tokens are revoked on their own


def test_set_password_keeps_to_the_rules_of_create(cli, client, agent):
    result = cli("users", "set-password", "alice", "--password-stdin", input="short\n")
    assert result.exit_code == 2 and "at least 8 characters" in result.output
    assert sign_in(client).status_code == 200


def test_users_list_and_tokens_list_show_no_password_hash_token_or_digest(cli, helpdesk, agent):
    with helpdesk.db.write() as tx:
        create_token(tx.conn, agent["id"], "old", datetime(2020, 1, 1, tzinfo=timezone.utc), timedelta(days=1))
        revoked = create_token(tx.conn, agent["id"], "gone", helpdesk.clock())
    ok(cli("tokens", "revoke", "3"))
    ok(cli("tokens", "create", "alice", "--label", "ci", "--days", "30"))
    with helpdesk.db.read() as conn:
        secrets = [v for row in conn.execute(sa.text("SELECT password_hash FROM agents UNION ALL "
                                                     "SELECT token_sha256 FROM api_tokens")) for v in row]
    results = [ok(cli(*command)) for command in (("users", "list"), ("users", "list", "--json"),
                                                  ("tokens", "list"), ("tokens", "list", "alice", "--json"))]
    for result in results:
        for secret in [*secrets, agent["token"], revoked, token_digest(revoked)]:
            assert secret not in result.output
    outputs = [result.stdout for result in results]

    assert json.loads(outputs[1])["agents"] == [{"name": "alice", "display_name": "Alice Agent", "active": True,
                                                 "created_at": helpdesk.clock().isoformat()}]
    listed = json.loads(outputs[3])["tokens"]
    assert [(t["id"], t["label"], t["state"]) for t in listed] == [
        (1, "tests", "active"), (2, "old", "expired"), (3, "gone", "revoked"), (4, "ci", "active")]
    assert set(listed[0]) == {"id", "agent", "label", "created_at", "expires_at", "revoked_at", "state"}
    assert listed[0]["expires_at"] is None and listed[3]["expires_at"] is not None
    assert outputs[2].splitlines()[0].split() == ["ID", "AGENT", "LABEL", "CREATED", "EXPIRES", "STATE"]



@pytest.mark.parametrize("command, stdin, message", [
    (("users", "create", "n" * 151), "long enough pw\n", "the agent's name is 151 characters long; at most 150"),
    (("users", "create", ""), "long enough pw\n", "the agent's name must not be empty"),
    (("users", "create", " bob"), "long enough pw\n", "must not begin or end with a space"),
    (("users", "create", "bob\x1b[2J"), "long enough pw\n", "must not contain control characters"),
    (("users", "create", "bob", "--display-name", "d" * 201), "long enough pw\n",
     "the display name is 201 characters long; at most 200"),
    (("users", "create", "bob"), "p" * 1025 + "\n", "the password is 1025 characters long; at most 1024"),
    (("tokens", "create", "alice", "--label", "l" * 201), None, "the label is 201 characters long; at most 200"),
    (("tokens", "create", "alice", "--label", ""), None, "the label must not be empty"),
])
def test_values_sign_in_or_the_columns_would_not_take_are_refused_before_the_database(cli, helpdesk, agent,
                                                                                      command, stdin, message):
    if command[0] == "users":
        command = (*command, "--password-stdin")
    result = cli(*command, input=stdin)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output and "scrypt$" not in result.output
    assert (count(helpdesk, "agents"), count(helpdesk, "api_tokens")) == (1, 1)  # the fixture's alone


def test_commands_naming_an_unknown_agent_say_how_to_find_one(cli, agent):
    for command in (("users", "deactivate", "bob"), ("users", "activate", "bob"), ("tokens", "list", "bob"),
                    ("users", "set-password", "bob", "--password-stdin")):
        result = cli(*command, input="long enough pw\n")
        assert result.exit_code == 2 and "no agent named 'bob'" in result.output
        assert "helpdesk-stub users list" in result.output
