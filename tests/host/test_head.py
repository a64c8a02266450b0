"""HEAD answers wherever GET does: same authentication, status and headers, no body (RFC 9110)."""

import re

import pytest
import requests

from host_stub.auth import SESSION_COOKIE, create_session

# Headers that must match between GET and HEAD (Date and the like may not).
SAME = ("content-type", "content-length", "cache-control", "x-content-type-options", "www-authenticate")


def _get_routes(helpdesk):
    for route in helpdesk.registrations.routes:
        if hasattr(route.resource, "on_get" + (f"_{route.suffix}" if route.suffix else "")):
            yield route


def _path(template: str, chat_id: int) -> str:
    return re.sub(r"\{chat_id[^}]*\}", str(chat_id), template)


def test_head_answers_like_get_without_a_body_on_every_get_route(client, helpdesk, auth, make_wazzup_chat,
                                                                make_message):
    chat = make_wazzup_chat()
    make_message(chat, "hello")
    routes = list(_get_routes(helpdesk))
    assert {"/api/health", "/api/openapi.json", "/api/chats", "/api/chats/{chat_id:int}/wazzup24/info"} <= {
        r.template for r in routes}
    for route in routes:
        path = _path(route.template, chat)
        for headers in (auth, {}):
            got, head = client.simulate_get(path, headers=headers), client.simulate_head(path, headers=headers)
            assert head.status_code == got.status_code, f"HEAD {path}: {head.status} (GET {got.status})"
            assert head.content == b"", f"HEAD {path} sent a body"
            for name in SAME:
                assert head.headers.get(name) == got.headers.get(name), f"HEAD {path}: {name}"


def test_head_on_health_and_the_openapi_document_needs_no_token(client):
    for path in ("/api/health", "/api/openapi.json"):
        result = client.simulate_head(path)
        assert result.status_code == 200 and result.content == b""
        assert int(result.headers["content-length"]) > 0


def test_head_needs_the_same_credentials_as_get(client, auth):
    assert client.simulate_head("/api/chats").status_code == 401
    assert client.simulate_head("/api/chats", headers={"Authorization": "Bearer hdt_wrong"}).status_code == 401
    assert client.simulate_head("/api/chats", headers=auth).status_code == 200


def test_head_with_a_session_cookie_needs_no_csrf_token_like_get(client, helpdesk, agent, clock):
    from datetime import timedelta

    with helpdesk.db.write() as tx:
        token, _ = create_session(tx.conn, agent["id"], clock(), timedelta(hours=1))
    cookie = {"Cookie": f"{SESSION_COOKIE}={token}"}
    assert client.simulate_head("/api/chats", headers=cookie).status_code == 200
    assert client.simulate_head("/api/session", headers=cookie).status_code == 200


def test_head_of_a_missing_chat_is_404_as_get(client, auth):
    assert client.simulate_head("/api/chats/424242", headers=auth).status_code == 404
    assert client.simulate_head("/api/chats/424242/messages", headers=auth).status_code == 404


def test_a_wrong_method_lists_head_where_get_is_allowed(client, auth):
    result = client.simulate_delete("/api/chats", headers=auth)
    assert result.status_code == 405
    assert {m.strip() for m in result.headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}
    assert client.simulate_head("/api/chats/1/read", headers=auth).status_code == 405  # POST only


@pytest.mark.e2e
def test_head_over_gunicorn_answers_headers_and_no_body(gunicorn_host, tmp_path, engine_for_gunicorn):
    host = gunicorn_host({"HELPDESK_DATABASE_URL": engine_for_gunicorn}, workers=1)
    for path, status in (("/api/health", 200), ("/api/openapi.json", 200), ("/api/chats", 401)):
        got = requests.get(host.url + path, timeout=10)
        head = requests.head(host.url + path, timeout=10)
        assert (head.status_code, got.status_code) == (status, status), path
        assert head.content == b""
        assert head.headers.get("content-length") == got.headers.get("content-length"), path
        assert head.headers["content-type"] == got.headers["content-type"]


@pytest.fixture
def engine_for_gunicorn(tmp_path, pm):
    from host_stub.db import make_engine
    from host_stub.schema import create_all

    url = f"sqlite:///{tmp_path / 'head.sqlite3'}"
    engine = make_engine(url)
    create_all(engine, pm)
    engine.dispose()
    return url
