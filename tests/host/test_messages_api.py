"""``GET /api/chats/{id}/messages``: the latest page, older history, what is new, what changed."""

import sqlalchemy as sa


def _get(client, auth, chat_id, **params):
    result = client.simulate_get(f"/api/chats/{chat_id}/messages", params=params, headers=auth)
    assert result.status_code == 200, result.json
    return result.json


def test_message_json_has_the_documented_fields(client, auth, make_chat, make_message):
    chat_id = make_chat(type="wazzup")
    message_id = make_message(chat_id, text="Привет")
    message = _get(client, auth, chat_id)["items"][0]
    assert {"id", "chat_id", "direction", "status", "type", "text", "content_uri", "created_at",
            "wazzup_message_id"} <= set(message)
    assert (message["id"], message["chat_id"], message["direction"], message["status"], message["text"]) == (
        message_id, chat_id, "in", "inbound", "Привет")


def test_first_page_is_the_latest_messages_oldest_to_newest(client, auth, make_chat, make_message):
    chat_id = make_chat()
    ids = [make_message(chat_id, text=f"m{i}") for i in range(5)]
    page = _get(client, auth, chat_id, limit=2)
    assert [m["id"] for m in page["items"]] == ids[3:]
    assert page["next_cursor"]


def test_next_cursor_pages_back_through_older_history(client, auth, make_chat, make_message):
    chat_id = make_chat()
    ids = [make_message(chat_id, text=f"m{i}") for i in range(5)]
    first = _get(client, auth, chat_id, limit=2)
    second = _get(client, auth, chat_id, limit=2, cursor=first["next_cursor"])
    third = _get(client, auth, chat_id, limit=2, cursor=second["next_cursor"])
    assert [m["id"] for m in second["items"]] == ids[1:3]
    assert [m["id"] for m in third["items"]] == ids[:1]
    assert third["next_cursor"] is None


def test_after_returns_what_is_new_and_pages_forward(client, auth, make_chat, make_message):
    chat_id = make_chat()
    ids = [make_message(chat_id, text=f"m{i}") for i in range(5)]
    page = _get(client, auth, chat_id, after=ids[0], limit=2)
    assert [m["id"] for m in page["items"]] == ids[1:3]
    rest = _get(client, auth, chat_id, cursor=page["next_cursor"], limit=2)
    assert [m["id"] for m in rest["items"]] == ids[3:]
    assert rest["next_cursor"] is None
    assert _get(client, auth, chat_id, after=ids[-1])["items"] == []


def test_changed_since_returns_created_and_changed_messages(client, auth, helpdesk, make_chat, make_message):
    chat_id = make_chat()
    old, edited = make_message(chat_id, text="old"), make_message(chat_id, text="to edit")
    seq = _get(client, auth, chat_id)["change_seq"]
    messages = helpdesk.tables.messages
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.update(messages).where(messages.c.id == edited).values(
            text="edited", previous_text="to edit", edited_at=helpdesk.clock(), change_seq=tx.change_seq))
    new = make_message(chat_id, text="new")
    changed = _get(client, auth, chat_id, changed_since=seq)
    assert [(m["id"], m["text"]) for m in changed["items"]] == [(edited, "edited"), (new, "new")]
    assert old not in [m["id"] for m in changed["items"]]
    assert changed["change_seq"] > seq
    assert _get(client, auth, chat_id, changed_since=changed["change_seq"])["items"] == []


def test_changed_since_pages_in_change_order(client, auth, make_chat, make_message):
    chat_id = make_chat()
    ids = [make_message(chat_id, text=f"m{i}") for i in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        page = _get(client, auth, chat_id, changed_since=0, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_messages_of_another_chat_never_appear(client, auth, make_chat, make_message):
    mine, other = make_chat(), make_chat()
    make_message(other, text="not mine")
    assert _get(client, auth, mine)["items"] == []


def test_a_cursor_of_one_mode_is_refused_by_another(client, auth, make_chat, make_message):
    chat_id = make_chat()
    ids = [make_message(chat_id) for _ in range(3)]
    older = _get(client, auth, chat_id, limit=1)["next_cursor"]
    changes = _get(client, auth, chat_id, changed_since=0, limit=1)["next_cursor"]
    for params in ({"changed_since": 0, "cursor": older}, {"cursor": changes}, {"after": ids[0], "cursor": older}):
        result = client.simulate_get(f"/api/chats/{chat_id}/messages", params=params, headers=auth)
        assert result.status_code == 422, params
        assert result.json["code"] == "invalid_cursor"


def test_after_and_changed_since_together_are_refused(client, auth, make_chat):
    chat_id = make_chat()
    result = client.simulate_get(f"/api/chats/{chat_id}/messages", params={"after": 1, "changed_since": 1},
                                 headers=auth)
    assert result.status_code == 422 and "after" in result.json["fields"]


def test_messages_of_an_unknown_chat_is_404(client, auth):
    result = client.simulate_get("/api/chats/424242/messages", headers=auth)
    assert result.status_code == 404 and result.json["code"] == "chat_not_found"


def test_one_app_answers_each_chat_mode_and_cursor_with_its_own_values(client, auth, make_chat, make_message):
    """Statements are built once per mode; the chat, cursor and limit of every request still apply."""
    first, second = make_chat(title="one"), make_chat(title="two")
    a = [make_message(first, text=f"a{i}") for i in range(4)]
    b = [make_message(second, text=f"b{i}") for i in range(3)]

    def ids(chat_id, **params):
        return [m["id"] for m in _get(client, auth, chat_id, **params)["items"]]

    assert ids(first) == a and ids(second) == b
    assert ids(first, limit=2) == a[2:] and ids(second, limit=1) == b[2:]
    assert ids(first, limit=1, cursor=_get(client, auth, first, limit=1)["next_cursor"]) == a[2:3]
    assert ids(second, limit=5, cursor=_get(client, auth, second, limit=1)["next_cursor"]) == b[:2]
    assert ids(first, after=a[1]) == a[2:] and ids(second, after=b[0]) == b[1:]
    assert ids(first, changed_since=0) == a and ids(second, changed_since=0) == b
    assert client.simulate_get("/api/chats/424242/messages", headers=auth).status_code == 404
