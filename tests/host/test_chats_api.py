import pytest
from datetime import timedelta


def test_chat_list_needs_a_token(client):
    result = client.simulate_get("/api/chats")
    assert result.status_code == 401
    assert result.json["code"] == "unauthorized"


def test_chat_list_is_newest_activity_first_with_cursor_pages(client, auth, make_chat, clock):
    start = clock()
    ids = [make_chat(title=f"chat {i}", at=start + timedelta(minutes=i)) for i in range(5)]
    first = client.simulate_get("/api/chats", params={"limit": 2}, headers=auth).json
    assert [c["id"] for c in first["items"]] == [ids[4], ids[3]]
    second = client.simulate_get("/api/chats", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth).json
    assert [c["id"] for c in second["items"]] == [ids[2], ids[1]]
    third = client.simulate_get("/api/chats", params={"limit": 2, "cursor": second["next_cursor"]}, headers=auth).json
    assert [c["id"] for c in third["items"]] == [ids[0]]
    assert third["next_cursor"] is None


def test_chat_list_changed_since_returns_only_later_changes(client, auth, make_chat, make_message):
    old = make_chat(title="old")
    seq = client.simulate_get("/api/chats", headers=auth).json["change_seq"]
    new = make_chat(title="new")
    changed = client.simulate_get("/api/chats", params={"changed_since": seq}, headers=auth).json
    assert [c["id"] for c in changed["items"]] == [new]
    assert changed["change_seq"] > seq
    assert old not in [c["id"] for c in changed["items"]]


def test_read_marks_unread_count_zero(client, auth, make_chat):
    chat_id = make_chat(unread=3)
    result = client.simulate_post(f"/api/chats/{chat_id}/read", headers=auth)
    assert result.status_code == 200
    assert result.json["unread_count"] == 0


def test_unknown_chat_is_404_with_the_error_shape(client, auth):
    result = client.simulate_get("/api/chats/999", headers=auth)
    assert result.status_code == 404
    assert set(result.json) >= {"status", "code", "message"}
    assert result.json["status"] == 404


def test_chat_json_has_the_documented_fields_plus_plugin_fields(client, auth, make_chat):
    chat_id = make_chat(type="wazzup", title="Ivan", phone="79991234567")
    chat = client.simulate_get(f"/api/chats/{chat_id}", headers=auth).json
    assert {"id", "type", "title", "phone", "unread_count", "last_message_at", "last_message_preview",
            "wazzup_chat_id"} <= set(chat)
    assert (chat["id"], chat["type"], chat["phone"]) == (chat_id, "wazzup", "79991234567")
    assert chat["wazzup_chat_id"] is None  # no wazzup_chats row for this one


def test_chat_list_filters_by_type(client, auth, make_chat):
    note = make_chat(type="internal")
    wazzup = make_chat(type="wazzup")
    listed = client.simulate_get("/api/chats", params={"type": "wazzup"}, headers=auth).json["items"]
    assert [c["id"] for c in listed] == [wazzup]
    assert note not in [c["id"] for c in client.simulate_get("/api/chats", params={"type": "wazzup"},
                                                             headers=auth).json["items"]]


@pytest.mark.parametrize("q, expected", [
    ("иван", ["Иван Петров"]),           # case-insensitive beyond ASCII, on SQLite too
    ("ПЕТР", ["Иван Петров"]),
    ("+7 (999) 123", ["Иван Петров"]),     # a phone typed with formatting matches the stored digits
    ("4567", ["Иван Петров"]),
    ("8 (999) 123-45-67", ["Иван Петров"]),  # the national form with the trunk "8" finds the stored "7..."
    ("8999", ["Иван Петров"]),
    ("+8 999", []),                          # "+8" is no trunk prefix
    ("8 151", []),                           # the trunk "8" stands for Russia's and Kazakhstan's "7" only
    ("Acme", ["Acme 100%"]),
    ("100%", ["Acme 100%"]),               # LIKE wildcards in q are literal
    ("_", []),
    ("555", ["Support 555"]),              # digits also match titles
])
def test_chat_search_matches_name_or_phone(client, auth, make_chat, q, expected):
    make_chat(type="wazzup", title="Иван Петров", phone="79991234567")
    make_chat(type="wazzup", title="Acme 100%", phone="4915100000000")
    make_chat(type="internal", title="Support 555")
    listed = client.simulate_get("/api/chats", params={"q": q}, headers=auth).json["items"]
    assert sorted(c["title"] for c in listed) == expected


def test_chat_list_changed_since_pages_through_changes_in_order(client, auth, make_chat):
    seq = client.simulate_get("/api/chats", headers=auth).json["change_seq"]
    ids = [make_chat(title=f"c{i}") for i in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        params = {"changed_since": seq, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.simulate_get("/api/chats", params=params, headers=auth).json
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_marking_read_shows_up_in_changed_since(client, auth, make_chat):
    chat_id = make_chat(unread=2)
    seq = client.simulate_get("/api/chats", headers=auth).json["change_seq"]
    client.simulate_post(f"/api/chats/{chat_id}/read", headers=auth)
    changed = client.simulate_get("/api/chats", params={"changed_since": seq}, headers=auth).json["items"]
    assert [(c["id"], c["unread_count"]) for c in changed] == [(chat_id, 0)]


def test_chat_cursors_from_one_listing_are_refused_by_another(client, auth, make_chat):
    for i in range(3):
        make_chat(title=f"c{i}")
    by_activity = client.simulate_get("/api/chats", params={"limit": 1}, headers=auth).json["next_cursor"]
    result = client.simulate_get("/api/chats", params={"changed_since": 0, "cursor": by_activity}, headers=auth)
    assert result.status_code == 422
    assert result.json["code"] == "invalid_cursor" and "cursor" in result.json["fields"]
    assert client.simulate_get("/api/chats", params={"cursor": "not-a-cursor"}, headers=auth).status_code == 422


def test_chats_with_equal_activity_are_neither_skipped_nor_repeated(client, auth, make_chat, clock):
    ids = [make_chat(title=f"tie {i}", at=clock()) for i in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        page = client.simulate_get("/api/chats", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                                   headers=auth).json
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids, reverse=True)


def test_reading_an_unknown_chat_is_404(client, auth):
    result = client.simulate_post("/api/chats/424242/read", headers=auth)
    assert result.status_code == 404 and result.json["code"] == "chat_not_found"


def test_one_app_answers_each_search_filter_and_page_with_its_own_values(client, auth, make_chat, clock):
    """Statements are built once per shape of query; the values of every request still apply."""
    start = clock()
    ivan = make_chat(type="wazzup", title="Иван Петров", phone="79991234567", at=start)
    acme = make_chat(type="wazzup", title="Acme 100%", phone="4915100000000", at=start + timedelta(minutes=1))
    note = make_chat(type="internal", title="Support 555", at=start + timedelta(minutes=2))

    def ids(**params):
        return [c["id"] for c in client.simulate_get("/api/chats", params=params, headers=auth).json["items"]]

    assert ids(q="иван") == [ivan] and ids(q="acme") == [acme] and ids(q="nobody") == []
    assert ids(q="+7 (999) 123") == [ivan] and ids(q="49151") == [acme] and ids(q="555") == [note]
    assert ids(type="wazzup") == [acme, ivan] and ids(type="internal") == [note] and ids(type="sms") == []
    assert ids(type="wazzup", q="acme") == [acme] and ids(type="internal", q="acme") == []
    assert ids(limit=1) == [note] and ids(limit=2) == [note, acme] and ids(limit=3) == [note, acme, ivan]
    first = client.simulate_get("/api/chats", params={"limit": 1}, headers=auth).json["next_cursor"]
    second = client.simulate_get("/api/chats", params={"limit": 1, "cursor": first}, headers=auth).json["next_cursor"]
    assert ids(limit=5, cursor=first) == [acme, ivan] and ids(limit=5, cursor=second) == [ivan]
    assert ids(changed_since=0) == [ivan, acme, note] and ids(changed_since=2) == [note]
