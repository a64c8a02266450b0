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
