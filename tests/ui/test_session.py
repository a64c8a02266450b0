"""Agents sign in to the UI with a session cookie; writes need the session's CSRF token."""

from host_stub.auth import SESSION_COOKIE

PASSWORD = "correct horse battery"


def login(client, username="alice", password=PASSWORD):
    return client.simulate_post("/api/session", json={"username": username, "password": password})


def session_headers(result, csrf=True):
    headers = {"Cookie": f"{SESSION_COOKIE}={result.cookies[SESSION_COOKIE].value}"}
    if csrf:
        headers["X-CSRF-Token"] = result.json["csrf_token"]
    return headers


def test_login_sets_an_http_only_strict_expiring_cookie_and_returns_the_csrf_token(client, agent):
    result = login(client)
    assert result.status_code == 200
    assert result.json["agent"] == {"id": agent["id"], "username": "alice", "display_name": "Alice Agent"}
    assert len(result.json["csrf_token"]) >= 32
    cookie = result.cookies[SESSION_COOKIE]
    assert cookie.http_only
    assert cookie.same_site == "Strict"
    assert cookie.max_age == 12 * 3600
    assert cookie.path == "/"
    assert cookie.value != result.json["csrf_token"]


def test_login_with_a_wrong_password_is_401_and_sets_no_cookie(client, agent):
    result = login(client, password="wrong password")
    assert result.status_code == 401
    assert result.json["code"] == "invalid_credentials"
    assert SESSION_COOKIE not in result.cookies


def test_login_with_an_unknown_name_says_the_same_as_a_wrong_password(client, agent):
    wrong_name = login(client, username="mallory")
    wrong_password = login(client, password="nope nope nope")
    assert wrong_name.status_code == wrong_password.status_code == 401
    assert wrong_name.json == wrong_password.json


def test_login_without_a_password_is_422_naming_the_field(client, agent):
    result = client.simulate_post("/api/session", json={"username": "alice"})
    assert result.status_code == 422
    assert "password" in result.json["fields"]


def test_login_body_must_be_a_json_object(client, agent):
    result = client.simulate_post("/api/session", body="[1]", headers={"Content-Type": "application/json"})
    assert result.status_code == 400


def test_the_session_cookie_reads_the_api_and_the_current_session(client, agent):
    signed_in = login(client)
    headers = session_headers(signed_in, csrf=False)
    assert client.simulate_get("/api/chats", headers=headers).status_code == 200
    current = client.simulate_get("/api/session", headers=headers)
    assert current.status_code == 200
    assert current.json["agent"]["username"] == "alice"
    assert current.json["csrf_token"] == signed_in.json["csrf_token"]


def test_current_session_without_a_cookie_is_401(client):
    result = client.simulate_get("/api/session")
    assert result.status_code == 401
    assert result.json["code"] == "unauthorized"


def test_a_write_with_the_cookie_but_without_the_csrf_token_is_403(client, agent, make_chat):
    chat_id = make_chat(unread=2)
    signed_in = login(client)
    result = client.simulate_post(f"/api/chats/{chat_id}/read", headers=session_headers(signed_in, csrf=False))
    assert result.status_code == 403
    assert result.json["code"] == "csrf_failed"
    ok = client.simulate_post(f"/api/chats/{chat_id}/read", headers=session_headers(signed_in))
    assert ok.status_code == 200
    assert ok.json["unread_count"] == 0


def test_a_write_with_another_sessions_csrf_token_is_403(client, agent, make_chat):
    chat_id = make_chat()
    first, second = login(client), login(client)
    headers = session_headers(first, csrf=False) | {"X-CSRF-Token": second.json["csrf_token"]}
    assert client.simulate_post(f"/api/chats/{chat_id}/read", headers=headers).status_code == 403


def test_an_expired_session_is_rejected(client, agent, clock, helpdesk):
    signed_in = login(client)
    headers = session_headers(signed_in)
    clock.advance(helpdesk.config.session_ttl_seconds - 1)
    assert client.simulate_get("/api/chats", headers=headers).status_code == 200
    clock.advance(1)
    expired = client.simulate_get("/api/chats", headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.json["message"]
    assert client.simulate_get("/api/session", headers=headers).status_code == 401


def test_logout_ends_the_session_and_clears_the_cookie(client, agent):
    signed_in = login(client)
    headers = session_headers(signed_in)
    result = client.simulate_delete("/api/session", headers=headers)
    assert result.status_code == 204
    cleared = result.cookies[SESSION_COOKIE]
    assert cleared.value == ""
    assert cleared.max_age == 0 or cleared.expires is not None
    assert client.simulate_get("/api/chats", headers=headers).status_code == 401


def test_logout_needs_the_csrf_token(client, agent):
    signed_in = login(client)
    result = client.simulate_delete("/api/session", headers=session_headers(signed_in, csrf=False))
    assert result.status_code == 403
    assert client.simulate_get("/api/session", headers=session_headers(signed_in)).status_code == 200


def test_logout_ends_only_that_session(client, agent):
    first, second = login(client), login(client)
    assert client.simulate_delete("/api/session", headers=session_headers(first)).status_code == 204
    assert client.simulate_get("/api/session", headers=session_headers(second)).status_code == 200


def test_logout_with_an_api_token_is_refused(client, auth):
    result = client.simulate_delete("/api/session", headers=auth)
    assert result.status_code == 409
    assert result.json["code"] == "not_a_session"


def test_signing_in_drops_expired_sessions(client, agent, clock, helpdesk):
    import sqlalchemy as sa

    from host_stub.models import AgentSession

    login(client)
    clock.advance(helpdesk.config.session_ttl_seconds + 1)
    login(client)
    with helpdesk.db.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(AgentSession.__table__)).scalar()
    assert count == 1
