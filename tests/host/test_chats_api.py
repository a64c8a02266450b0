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
