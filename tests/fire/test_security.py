"""Security: authentication on every route, the webhook secret, CSRF, credentials at rest, body limits."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from host_stub.auth import SESSION_COOKIE, create_session, create_token
from host_stub.config import Config
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

from fire_support import CHANNEL_ID, FIRE_WEBHOOK_SECRET

# Routes anyone may call: Wazzup's callbacks, the health check, the OpenAPI document, the UI page
# (it holds no data; everything it shows comes from authenticated /api calls), the login, and the
# files agents upload, which Wazzup downloads, and the helpdesk's copies of customers' media, which the
# agent page shows in <img>/<audio> tags that carry no token (an unguessable token in the URL is their
# only key, masked in every log line).
PUBLIC = {"/api/webhook", "/api/wazzup24/webhook", "/api/health", "/api/openapi.json", "/",
          "/wazzup24/files/{token}/{name}", "/wazzup24/media/{token}/{name}"}
LOGIN = "/api/session"  # POST signs in; GET and DELETE authenticate inside the resource
METHODS = ("get", "post", "put", "patch", "delete")


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", template)


def _protected_operations(helpdesk):
    """(method, path) for every responder of every route that must require an agent."""
    ops = []
    for route in helpdesk.registrations.routes:
        for method in METHODS:
            name = f"on_{method}" + (f"_{route.suffix}" if route.suffix else "")
            if not hasattr(route.resource, name):
                continue
            if route.template in PUBLIC or (route.template == LOGIN and method == "post"):
                continue
            ops.append((method.upper(), _concrete(route.template)))
    return ops


def test_only_the_webhook_health_openapi_ui_page_login_and_stored_files_are_public(helpdesk):
    public = {r.template for r in helpdesk.registrations.routes if r.public}
    assert public <= PUBLIC | {LOGIN}, f"unexpected public routes: {sorted(public - PUBLIC - {LOGIN})}"
    assert {"/api/webhook", "/api/wazzup24/webhook"} <= public, "the webhook routes are missing"


def test_every_protected_route_refuses_missing_and_invalid_tokens(client, helpdesk):
    ops = _protected_operations(helpdesk)
    assert any("/wazzup24/" in path for _, path in ops), "the plugin's authenticated routes are missing"
    for method, path in ops:
        for headers in ({}, {"Authorization": "Bearer hdt_not-a-real-token"}, {"Authorization": "Basic YTpi"},
                        {"Authorization": "Bearer "}):
            result = client.simulate_request(method, path, headers=headers, json={})
            assert result.status_code == 401, f"{method} {path} with {headers or 'no credentials'}: {result.status}"
            assert result.json["code"] in ("unauthorized", "invalid_credentials")


def test_every_protected_route_refuses_an_expired_token_and_an_expired_session(client, helpdesk, agent, clock):
    with helpdesk.db.write() as tx:
        token = create_token(tx.conn, agent["id"], "short", clock(), timedelta(minutes=5))
        cookie, csrf = create_session(tx.conn, agent["id"], clock(), timedelta(minutes=5))
    ops = _protected_operations(helpdesk)
    # Still valid: the credentials themselves are good.
    assert client.simulate_get("/api/chats", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.simulate_get("/api/chats", cookies={SESSION_COOKIE: cookie}).status_code == 200

    clock.advance(minutes=6)
    for method, path in ops:
        expired_token = client.simulate_request(method, path, json={}, headers={"Authorization": f"Bearer {token}"})
        assert expired_token.status_code == 401, f"{method} {path} with an expired token: {expired_token.status}"
        expired_session = client.simulate_request(method, path, json={}, cookies={SESSION_COOKIE: cookie},
                                                  headers={"X-CSRF-Token": csrf})
        assert expired_session.status_code == 401, f"{method} {path} with an expired session: {expired_session.status}"


def test_ui_writes_without_the_csrf_token_are_refused(client, helpdesk, agent, clock):
    with helpdesk.db.write() as tx:
        cookie, csrf = create_session(tx.conn, agent["id"], clock(), timedelta(hours=1))
    writes = [(m, p) for m, p in _protected_operations(helpdesk) if m != "GET"]
    assert any("/wazzup24/send" in p for _, p in writes), "the send route is missing"
    for method, path in writes:
        for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": csrf[:-1]}):
            result = client.simulate_request(method, path, json={}, cookies={SESSION_COOKIE: cookie}, headers=headers)
            assert result.status_code == 403, f"{method} {path} without the right CSRF token: {result.status}"
    # With the session's token the write gets past the CSRF check (to the route's own answer).
    ok = client.simulate_post("/api/chats/999999/read", cookies={SESSION_COOKIE: cookie},
                              headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 404


# ---------------------------------------------------------------- the webhook secret


@pytest.fixture
def settings(settings):
    settings["WAZZUP24_WEBHOOK_SECRET"] = FIRE_WEBHOOK_SECRET
    return settings


@pytest.fixture
def config(database_url, settings):
    # A small body limit keeps the oversized-body tests light; the default (32 MiB) works the same way.
    return Config(database_url=database_url, env=dict(settings), max_body_bytes=64 * 1024)


def _message_count(helpdesk) -> int:
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar()


@pytest.mark.parametrize("route", ["/api/webhook", "/api/wazzup24/webhook"])
def test_webhook_secret_is_enforced_when_set(client, helpdesk, route):
    body = delivery(messages=[incoming_message(channel_id=CHANNEL_ID, chat_id="79160000001", text="hi",
                                               message_id="0b8d7e4c-0000-4000-8000-000000000001")])
    refused = [
        client.simulate_post(route, json=body),
        client.simulate_post(route, json=body, params={"token": "wrong-secret-0123456789"}),
        client.simulate_post(route, json=body, headers={"Authorization": "Bearer wrong-secret-0123456789"}),
        client.simulate_post(route, json=body, params={"token": FIRE_WEBHOOK_SECRET[:-1]}),
    ]
    assert [r.status_code for r in refused] == [401] * 4
    assert _message_count(helpdesk) == 0, "a refused delivery stored something"
    for r in refused:
        assert FIRE_WEBHOOK_SECRET not in r.text

    by_query = client.simulate_post(route, json=body, params={"token": FIRE_WEBHOOK_SECRET})
    by_header = client.simulate_post(route, json=body, headers={"Authorization": f"Bearer {FIRE_WEBHOOK_SECRET}"})
    assert (by_query.status_code, by_header.status_code) == (200, 200)
    assert _message_count(helpdesk) == 1


# ---------------------------------------------------------------- credentials at rest


def _all_stored_text(helpdesk) -> str:
    """Every value of every table, as one string: what someone reading the database would see."""
    parts = []
    with helpdesk.db.read() as conn:
        for table in helpdesk.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


def test_passwords_are_stored_under_scrypt_and_tokens_only_as_digests(client, helpdesk, agent):
    agents, tokens = helpdesk.tables.agents, helpdesk.metadata.tables["api_tokens"]
    with helpdesk.db.read() as conn:
        password_hash = conn.execute(sa.select(agents.c.password_hash).where(agents.c.id == agent["id"])).scalar()
        digests = conn.execute(sa.select(tokens.c.token_sha256)).scalars().all()
    scheme, n, r, p, salt, digest = password_hash.split("$")
    assert scheme == "scrypt" and int(n) >= 2**14 and int(r) >= 8, password_hash
    assert len(bytes.fromhex(salt)) >= 16 and len(bytes.fromhex(digest)) >= 32
    assert hashlib.sha256(agent["token"].encode()).hexdigest() in digests

    login = client.simulate_post("/api/session", json={"username": "alice", "password": "correct horse battery"})
    assert login.status_code == 200
    cookie = login.cookies[SESSION_COOKIE].value
    assert login.cookies[SESSION_COOKIE].http_only

    stored = _all_stored_text(helpdesk)
    for secret in (agent["token"], cookie, "correct horse battery"):
        assert secret not in stored, "a credential is stored in clear"


# ---------------------------------------------------------------- body limits


@pytest.mark.parametrize("route", ["/api/webhook", "/api/chats/1/wazzup24/send", "/api/session"])
def test_oversized_bodies_are_refused_with_413(client, helpdesk, auth, route):
    limit = helpdesk.config.max_body_bytes
    body = b'{"text": "' + b"x" * (limit + 1) + b'"}'
    headers = {"Content-Type": "application/json", **auth}
    result = client.simulate_post(route, body=body, headers=headers, params={"token": FIRE_WEBHOOK_SECRET})
    assert result.status_code == 413, result.status
    assert result.json["code"] == "payload_too_large"
    assert _message_count(helpdesk) == 0
