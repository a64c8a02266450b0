"""Auth: slow-KDF passwords, SHA-256 token digests, and every non-public route behind a token."""

import hashlib
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from host_stub.auth import authenticate_password, create_token, hash_password, token_digest, verify_password

# Routes that must answer without an agent: health, the OpenAPI document, the UI's sign-in, webhooks.
PUBLIC_API = {"/api/health", "/api/openapi.json", "/api/session"}
_METHODS = ("get", "post", "put", "patch", "delete")


def test_passwords_are_hashed_with_scrypt_and_salted():
    first, second = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert first.startswith("scrypt$") and first != second
    assert "correct horse" not in first
    assert verify_password("correct horse battery", first)
    assert not verify_password("correct horse batterY", first)
    assert not verify_password("anything", "md5$abc")


def test_tokens_are_stored_only_as_sha256_digests(helpdesk, agent):
    with helpdesk.db.read() as conn:
        stored = conn.execute(sa.text("SELECT token_sha256 FROM api_tokens")).scalars().all()
    assert stored == [hashlib.sha256(agent["token"].encode()).hexdigest()]
    assert agent["token"] not in stored and len(agent["token"]) >= 40


def test_password_sign_in_checks_the_password(helpdesk, agent):
    with helpdesk.db.read() as conn:
        assert authenticate_password(conn, "alice", "correct horse battery").username == "alice"
        assert authenticate_password(conn, "alice", "wrong") is None
        assert authenticate_password(conn, "nobody", "correct horse battery") is None


def test_a_valid_token_authenticates(client, auth):
    assert client.simulate_get("/api/chats", headers=auth).status_code == 200


@pytest.mark.parametrize("header, message", [
    ("Bearer hdt_not-a-real-token", "invalid, expired or revoked"),
    ("Basic YWxpY2U6cHc=", "must be 'Bearer <token>'"),
    ("Bearer ", "must be 'Bearer <token>'"),
])
def test_a_wrong_token_is_401_with_a_clear_message(client, agent, header, message):
    result = client.simulate_get("/api/chats", headers={"Authorization": header})
    assert result.status_code == 401 and message in result.json["message"]


def test_an_expired_token_is_refused(client, helpdesk, agent, clock):
    with helpdesk.db.write() as tx:
        token = create_token(tx.conn, agent["id"], "short", clock(), timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.simulate_get("/api/chats", headers=headers).status_code == 200
    clock.advance(hours=1)
    result = client.simulate_get("/api/chats", headers=headers)
    assert result.status_code == 401 and "expired" in result.json["message"]


def test_a_revoked_token_is_refused(client, helpdesk, agent, auth, clock):
    with helpdesk.db.write() as tx:
        tokens = helpdesk.metadata.tables["api_tokens"]
        tx.conn.execute(sa.update(tokens).where(tokens.c.token_sha256 == token_digest(agent["token"]))
                        .values(revoked_at=clock()))
    assert client.simulate_get("/api/chats", headers=auth).status_code == 401


def test_a_deactivated_agents_token_is_refused(client, helpdesk, agent, auth):
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(helpdesk.tables.agents).values(is_active=False))
    assert client.simulate_get("/api/chats", headers=auth).status_code == 401


def test_a_token_accepted_before_is_refused_once_revoked_expired_or_its_agent_deactivated(client, helpdesk, agent,
                                                                                           clock):
    """The lookup is built once per app; each request still reads the token's current state."""
    tokens, agents = helpdesk.metadata.tables["api_tokens"], helpdesk.tables.agents
    with helpdesk.db.write() as tx:
        revoked = create_token(tx.conn, agent["id"], "revoked", clock())
        expiring = create_token(tx.conn, agent["id"], "expiring", clock(), timedelta(minutes=5))
        kept = create_token(tx.conn, agent["id"], "kept", clock())

    def status(token):
        return client.simulate_get("/api/chats", headers={"Authorization": f"Bearer {token}"}).status_code

    assert [status(t) for t in (revoked, expiring, kept)] == [200, 200, 200]
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(tokens).where(tokens.c.token_sha256 == token_digest(revoked))
                        .values(revoked_at=clock()))
    clock.advance(minutes=5)
    assert [status(t) for t in (revoked, expiring, kept)] == [401, 401, 200]
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(agents).values(is_active=False))
    assert status(kept) == 401
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(agents).values(is_active=True))
    assert status(kept) == 200


def test_a_session_accepted_before_is_refused_once_expired_or_its_agent_deactivated(client, helpdesk, agent, clock):
    from host_stub.auth import SESSION_COOKIE, create_session

    with helpdesk.db.write() as tx:
        short, _ = create_session(tx.conn, agent["id"], clock(), timedelta(minutes=5))
        long, _ = create_session(tx.conn, agent["id"], clock(), timedelta(hours=5))

    def status(cookie):
        return client.simulate_get("/api/chats", cookies={SESSION_COOKIE: cookie}).status_code

    assert [status(short), status(long), status("not-a-session")] == [200, 200, 401]
    clock.advance(minutes=5)
    assert [status(short), status(long)] == [401, 200]
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(helpdesk.tables.agents).values(is_active=False))
    assert status(long) == 401


def _sample_path(template: str) -> str:
    path = re.sub(r"{\w+:int[^}]*}", "1", template)
    return re.sub(r"{\w+[^}]*}", "x", path)


def test_every_non_public_route_requires_a_token(app, client):
    """Walk every registered route, the plugins' included: no credentials means 401, never data."""
    checked = 0
    for route in app.helpdesk.registrations.routes:
        if route.public:
            assert not route.template.startswith("/api/") or route.template in PUBLIC_API or \
                route.template.endswith("/webhook"), f"{route.template} of {route.plugin} is public"
            continue
        for method in _METHODS:
            responder = f"on_{method}" + (f"_{route.suffix}" if route.suffix else "")
            if not hasattr(route.resource, responder):
                continue
            result = client.simulate_request(method.upper(), _sample_path(route.template))
            assert result.status_code == 401, f"{method.upper()} {route.template} answered {result.status_code}"
            assert result.json["code"] == "unauthorized"
            checked += 1
    assert checked >= 5


def test_health_needs_no_token_and_checks_the_database(client):
    result = client.simulate_get("/api/health")
    assert result.status_code == 200
    assert result.json == {"status": "ok", "database": "ok"}


def test_health_reports_an_unreachable_database_as_503(build_app, pm_with, helpdesk):
    import falcon.testing

    app = build_app(pm_with())
    app.helpdesk.db.engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none",
                                              connect_args={"connect_timeout": 1})
    result = falcon.testing.TestClient(app).simulate_get("/api/health")
    assert result.status_code == 503 and result.json["code"] == "database_unavailable"


# ---------------------------------------------------------------- password guessing


def _login(client, username="alice", password="wrong guess", address="198.51.100.7"):
    return client.simulate_post("/api/session", json={"username": username, "password": password},
                                remote_addr=address)


@pytest.fixture
def password_checks(monkeypatch):
    """How many passwords the sign-in checked (each one an scrypt run)."""
    import host_stub.resources.session as session

    checked = []
    real = session.authenticate_password

    def counting(conn, username, password):
        checked.append(username)
        return real(conn, username, password)

    monkeypatch.setattr(session, "authenticate_password", counting)
    return checked


def test_a_name_that_failed_five_times_is_refused_with_429_and_retry_after_without_a_password_check(
        client, agent, password_checks):
    assert [_login(client).status_code for _ in range(5)] == [401] * 5
    refused = _login(client, password="correct horse battery")  # the right one too: no oracle while blocked
    assert refused.status_code == 429 and refused.json["code"] == "too_many_attempts"
    assert int(refused.headers["retry-after"]) == 15 and "15 seconds" in refused.json["message"]
    assert len(password_checks) == 5
    other = _login(client, username="bob", address="198.51.100.7")
    assert other.status_code == 401  # another name from the same address is still checked


def test_every_further_failure_doubles_the_wait_and_the_block_ends_on_its_own(client, agent, clock):
    waits = []
    for _ in range(5):
        _login(client)
    for _ in range(4):
        waits.append(int(_login(client).headers["retry-after"]))
        clock.advance(waits[-1])
        assert _login(client).status_code == 401  # checked again once the wait is over; failed again
    assert waits == [15, 30, 60, 120]
    assert int(_login(client).headers["retry-after"]) == 240
    clock.advance(240)
    assert _login(client, password="correct horse battery").status_code == 200


def test_the_longest_wait_is_fifteen_minutes_and_an_hour_without_failures_starts_the_count_again(
        client, agent, clock):
    from host_stub.auth import LoginThrottle

    for _ in range(12):
        clock.advance(LoginThrottle.MAX_DELAY.total_seconds())
        assert _login(client).status_code == 401
    assert int(_login(client).headers["retry-after"]) == 900
    clock.advance(hours=1)
    assert [_login(client).status_code for _ in range(5)] == [401] * 5
    assert int(_login(client).headers["retry-after"]) == 15


def test_a_successful_sign_in_resets_the_count_of_its_name_and_address(client, agent, helpdesk):
    for _ in range(4):
        _login(client)
    assert _login(client, password="correct horse battery").status_code == 200
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM login_failures")).scalar() == 0
    assert [_login(client).status_code for _ in range(5)] == [401] * 5  # five more, counted from zero
    assert _login(client, password="correct horse battery").status_code == 429


def test_failures_from_one_address_block_it_for_every_name_but_not_other_addresses(client, agent, password_checks):
    from host_stub.auth import LoginThrottle

    for i in range(LoginThrottle.ADDRESS_LIMIT):
        assert _login(client, username=f"user{i}", address="203.0.113.9").status_code == 401
    refused = _login(client, username="alice", password="correct horse battery", address="203.0.113.9")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 15
    assert _login(client, password="correct horse battery", address="203.0.113.10").status_code == 200
    assert len(password_checks) == LoginThrottle.ADDRESS_LIMIT + 1


def test_failed_sign_ins_keep_only_digests_of_names_and_addresses(client, agent, helpdesk):
    _login(client, username="my secret password typed as a name")
    with helpdesk.db.read() as conn:
        rows = conn.execute(sa.text("SELECT key_sha256, failures FROM login_failures")).all()
    assert len(rows) == 2 and all(re.fullmatch("[0-9a-f]{64}", key) and n == 1 for key, n in rows)


def test_sign_ins_beyond_the_workers_password_checks_are_refused_with_503_not_queued(app, client, agent,
                                                                                      password_checks):
    resource = next(r.resource for r in app.helpdesk.registrations.routes if r.template == "/api/session")
    resource.PASSWORD_CHECK_WAIT = 0.01
    held = 0
    while resource.password_checks.acquire(blocking=False):  # every check of this worker in progress
        held += 1
    try:
        busy = _login(client, password="correct horse battery")
    finally:
        for _ in range(held):
            resource.password_checks.release()
    assert held == resource.PASSWORD_CHECKS
    assert busy.status_code == 503 and busy.json["code"] == "login_busy" and busy.headers["retry-after"] == "1"
    assert password_checks == []
    assert _login(client, password="correct horse battery").status_code == 200
