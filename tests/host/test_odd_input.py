"""Input no route can store or look up answers a 4xx naming what was wrong, never a 500."""

import base64
import json

import pytest

from host_stub.pagination import MAX_ID, MAX_SEQ


def _cursor(*key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path, params", [
    ("/api/chats", {"cursor": _cursor("a", "2026-01-01T00:00:00+00:00", MAX_ID + 1)}),
    ("/api/chats", {"cursor": _cursor("a", "2026-01-01T00:00:00+00:00", 10**30)}),
    ("/api/chats", {"cursor": _cursor("a", "2026-01-01T00:00:00+00:00", -1)}),
    ("/api/chats", {"cursor": _cursor("a", "0001-01-01T00:00:00+14:00", 1)}),
    ("/api/chats", {"cursor": _cursor("a", "9999-12-31T23:59:59-14:00", 1)}),
    ("/api/chats", {"changed_since": 0, "cursor": _cursor("c", MAX_SEQ + 1, 1)}),
    ("/api/chats", {"changed_since": 0, "cursor": _cursor("c", 5, 2**64)}),
    ("/api/chats/{chat}/messages", {"cursor": _cursor("b", 10**30)}),
    ("/api/chats/{chat}/messages", {"after": 0, "cursor": _cursor("f", MAX_ID + 1)}),
    ("/api/chats/{chat}/messages", {"changed_since": 0, "cursor": _cursor("c", 2**63, 1)}),
])
def test_cursors_with_numbers_or_times_never_given_out_are_refused_with_422(client, auth, make_chat, path, params):
    chat = make_chat()
    result = client.simulate_get(path.format(chat=chat), params=params, headers=auth)
    assert result.status_code == 422, result.text
    assert result.json["code"] == "invalid_cursor"


@pytest.mark.parametrize("params, field", [
    ({"after": MAX_ID + 1}, "after"),
    ({"changed_since": MAX_SEQ + 1}, "changed_since"),
])
def test_numbers_past_their_columns_are_refused_with_422(client, auth, make_chat, params, field):
    result = client.simulate_get(f"/api/chats/{make_chat()}/messages", params=params, headers=auth)
    assert result.status_code == 422 and field in result.json["fields"]


def test_the_largest_id_a_cursor_may_hold_is_answered(client, auth, make_chat):
    result = client.simulate_get(f"/api/chats/{make_chat()}/messages", params={"after": MAX_ID}, headers=auth)
    assert result.status_code == 200 and result.json["items"] == []


@pytest.mark.parametrize("params, field", [({"q": "a\x00b"}, "q"), ({"type": "wazzup\x00"}, "type")])
def test_a_nul_in_a_search_is_refused_with_422_naming_the_parameter(client, auth, params, field):
    result = client.simulate_get("/api/chats", params=params, headers=auth)
    assert result.status_code == 422
    assert "NUL" in result.json["fields"][field][0]


@pytest.mark.parametrize("body, field", [
    ('{"username": "\\ud800", "password": "correct horse battery"}', "username"),
    ('{"username": "alice", "password": "pass\\udfffword"}', "password"),
    ('{"username": "ali\\u0000ce", "password": "correct horse battery"}', "username"),
])
def test_a_login_with_text_no_database_stores_is_refused_with_422(client, agent, body, field):
    result = client.simulate_post("/api/session", body=body, headers={"Content-Type": "application/json"})
    assert result.status_code == 422, result.text
    assert field in result.json["fields"]


def test_a_deeply_nested_login_body_is_refused_by_its_size_before_it_is_parsed(client):
    # Any route that parses the body refuses nesting deeper than JSON goes with 400 (test_errors.py);
    # the public login takes 4 KiB and refuses this one before it is read.
    body = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    result = client.simulate_post("/api/session", body=body, headers={"Content-Type": "application/json"})
    assert result.status_code == 413 and result.json["code"] == "payload_too_large"
