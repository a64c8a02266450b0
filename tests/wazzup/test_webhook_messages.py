"""The webhook's `messages`: chats created once, every type kept and shown, echoes, edits, deletions."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"


def test_first_incoming_message_creates_a_wazzup_chat_with_phone_title_and_avatar(deliver, payload, wazzup_rows):
    result = deliver(payload("incoming_text"))

    assert result.status_code == 200, result.text
    assert result.json["new_messages"] == 1
    [chat] = wazzup_rows.chats()
    assert chat["type"] == "wazzup"
    assert chat["phone"] == "79161234567"
    assert chat["wazzup_chat_id"] == "79161234567"
    assert (chat["channel_id"], chat["chat_type"]) == (CHANNEL, "whatsapp")
    assert chat["title"] == "Ivan Petrov"
    assert chat["avatar_uri"] == "https://store.wazzup24.com/0e82ead97ae07d"
    assert chat["unread_count"] == 1
    assert chat["last_message_preview"] == "Hello, is my order ready?"
    assert chat["last_message_at"] == datetime(2025, 5, 6, 14, 18, 0, 1000, tzinfo=timezone.utc)
    message = wazzup_rows.message("caa1f2b4-cce3-424c-86cd-05f4e2a95073")
    assert (message["direction"], message["status"], message["type"]) == ("in", "inbound", "text")
    assert message["text"] == "Hello, is my order ready?"
    assert message["messenger_at"] == datetime(2025, 5, 6, 14, 18, 0, 1000, tzinfo=timezone.utc)
    assert message["chat_id"] == chat["id"]
    assert message["change_seq"] == chat["change_seq"] > 0


def test_webhook_is_served_at_the_seed_url_and_under_the_plugin_segment(deliver, payload, wazzup_rows):
    assert deliver(payload("incoming_text"), path="/api/webhook").status_code == 200
    assert deliver(payload("incoming_image"), path="/api/wazzup24/webhook").status_code == 200
    assert len(wazzup_rows.messages()) == 2
    assert len(wazzup_rows.chats()) == 1


def test_duplicate_webhook_stores_one_message(deliver, payload, wazzup_rows):
    for _ in range(3):
        assert deliver(payload("incoming_text")).status_code == 200
    assert len(wazzup_rows.messages()) == 1
    [chat] = wazzup_rows.chats()
    assert chat["unread_count"] == 1


def test_chat_without_contact_name_is_titled_with_the_phone(deliver, payload, wazzup_rows):
    body = payload("incoming_text")
    del body["messages"][0]["contact"]
    deliver(body)
    assert wazzup_rows.chats()[0]["title"] == "79161234567"


@pytest.mark.parametrize("name, type_, text, uri, content_name", [
    ("incoming_image", "image", None, "https://store.wazzup24.com/e5115a1e0046d628b3924161d411e5812d2546/"
                                      "?filename=photo.jpg", "photo.jpg"),
    ("incoming_document", "document", None, "https://store.wazzup24.com/9f8e7d6c5b4a/invoice%20May.pdf",
     "invoice May.pdf"),
    ("incoming_audio", "audio", None, "https://store.wazzup24.com/1a2b3c4d5e6f/?filename=voice.ogg", "voice.ogg"),
    ("incoming_video", "video", None, "https://store.wazzup24.com/6f5e4d3c2b1a/?filename=clip.mp4", "clip.mp4"),
    ("incoming_vcard", "vcard", None, "https://store.wazzup24.com/aa11bb22cc33/?filename=contact.vcf",
     "contact.vcf"),
    ("incoming_geo", "geo", "55.751244, 37.618423", None, None),
    ("incoming_missing_call", "missing_call", "Missed call", None, None),
    ("incoming_wapi_template", "wapi_template", "Your order 1234 has shipped", None, None),
])
def test_every_documented_type_is_stored_and_shown(deliver, payload, wazzup_rows, name, type_, text, uri,
                                                   content_name):
    body = payload(name)
    assert deliver(body).status_code == 200
    message = wazzup_rows.message(body["messages"][0]["messageId"])
    assert message["type"] == type_
    assert message["text"] == text
    assert message["content_uri"] == uri
    assert message["content_name"] == content_name
    assert message["text"] or message["content_uri"]  # something to show
    assert wazzup_rows.chats()[0]["last_message_preview"]


@pytest.mark.parametrize("name, change, shown", [
    ("incoming_vcard", {"contentUri": None, "text": "BEGIN:VCARD\nVERSION:3.0\nFN;CHARSET=UTF-8:Анна Смирнова\n"
                                                    "TEL:+79990001122\nEND:VCARD"}, "[Contact card] Анна Смирнова"),
    ("incoming_vcard", {}, "[Contact card] contact.vcf"),
    ("incoming_geo", {}, "[Location] 55.751244, 37.618423"),
])
def test_a_contact_card_or_a_location_reads_as_such_in_the_chat_list(deliver, payload, wazzup_rows, name, change,
                                                                      shown):
    body = payload(name)
    body["messages"][0].update({k: v for k, v in change.items() if v is not None})
    for key in [k for k, v in change.items() if v is None]:
        body["messages"][0].pop(key)
    assert deliver(body).status_code == 200
    assert wazzup_rows.chats()[0]["last_message_preview"] == shown


def test_media_message_gets_its_mime_type_from_the_file_name(deliver, payload, wazzup_rows):
    deliver(payload("incoming_image"))
    assert wazzup_rows.messages()[0]["content_type"] == "image/jpeg"
    assert wazzup_rows.chats()[0]["last_message_preview"] == "[Image] photo.jpg"


@pytest.mark.parametrize("name, shown", [
    ("incoming_unsupported", "[A message of a type Wazzup does not support: open it on the phone]"),
    ("incoming_unknown_type", "[Unknown message type: poll_v2]"),
])
def test_unsupported_and_unknown_types_get_a_visible_placeholder(deliver, payload, wazzup_rows, name, shown):
    body = payload(name)
    deliver(body)
    message = wazzup_rows.message(body["messages"][0]["messageId"])
    assert message["type"] in ("unsupported", "unknown")
    assert message["text"] == shown
    assert wazzup_rows.chats()[0]["last_message_preview"] == shown


@pytest.mark.parametrize("uri", ["javascript:alert(1)", "data:text/html,<b>x</b>", "file:///etc/passwd",
                                 "ftp://example.com/a.jpg", "//evil.example/a.jpg", "https://" + "a" * 2100])
def test_content_and_avatar_links_are_kept_only_when_http(deliver, payload, wazzup_rows, uri):
    body = payload("incoming_image")
    body["messages"][0]["contentUri"] = uri
    body["messages"][0]["contact"]["avatarUri"] = uri
    assert deliver(body).status_code == 200
    message = wazzup_rows.messages()[0]
    assert message["content_uri"] is None
    assert message["text"] == "[Image]"  # still shown, as an image without a usable link
    assert wazzup_rows.chats()[0]["avatar_uri"] is None


def test_whatsgroup_chat_is_kept_opaque_without_phone(deliver, payload, wazzup_rows):
    deliver(payload("incoming_whatsgroup"))
    [chat] = wazzup_rows.chats()
    assert chat["chat_type"] == "whatsgroup"
    assert chat["wazzup_chat_id"] == "120363025246125486@g.us"
    assert chat["phone"] is None
    assert chat["title"] == "Suppliers group"


def group_message(payload, message_id: str, name: str | None, text: str, **contact) -> dict:
    """An incoming item of the incoming_whatsgroup chat, written by ``name`` (its contact, as Wazzup
    documents no participant field)."""
    body = payload("incoming_whatsgroup")
    item = body["messages"][0]
    item.update(messageId=message_id, text=text)
    item["contact"] = {**({"name": name} if name else {}), **contact}
    return body


@pytest.mark.parametrize("chat_type", ["whatsgroup", "telegroup", "maxgroup"])
def test_two_senders_in_a_group_chat_leave_its_title_and_each_message_names_its_sender(
        deliver, payload, wazzup_rows, chat_type):
    first = payload("incoming_whatsgroup")
    first["messages"][0]["chatType"] = chat_type
    deliver(first)
    for n, (name, text) in enumerate([("Anna", "Who has the invoice?"), ("Boris", "I do, sending it now")], 1):
        body = group_message(payload, f"0b1f6c0e-0000-4000-8000-00000000000{n}", name, text,
                             avatarUri=f"https://store.wazzup24.com/{name.lower()}", phone=f"7916000000{n}")
        body["messages"][0]["chatType"] = chat_type
        assert deliver(body).json["new_messages"] == 1
    [chat] = wazzup_rows.chats()
    assert (chat["title"], chat["contact_name"], chat["avatar_uri"], chat["phone"]) == (
        "Suppliers group", "Suppliers group", None, None)
    assert chat["unread_count"] == 3
    assert chat["last_message_preview"] == "I do, sending it now"
    assert [(m["text"], m["author_name"], m["direction"]) for m in wazzup_rows.messages()] == [
        ("Hi all", "Suppliers group", "in"), ("Who has the invoice?", "Anna", "in"),
        ("I do, sending it now", "Boris", "in")]


def test_two_senders_in_one_delivery_to_a_new_group_chat_each_name_their_message(deliver, payload, wazzup_rows):
    anna = group_message(payload, "0b1f6c0e-0000-4000-8000-000000000001", "Anna", "Who has the invoice?")
    boris = group_message(payload, "0b1f6c0e-0000-4000-8000-000000000002", "Boris", "I do")
    anna["messages"][0]["dateTime"], boris["messages"][0]["dateTime"] = ("2025-05-06T14:28:00.000Z",
                                                                         "2025-05-06T14:29:00.000Z")
    assert deliver({"messages": anna["messages"] + boris["messages"]}).json["new_messages"] == 2
    [chat] = wazzup_rows.chats()
    assert chat["title"] == "Boris"  # named once, at creation, after the newest item's contact
    assert [(m["text"], m["author_name"]) for m in wazzup_rows.messages()] == [
        ("Who has the invoice?", "Anna"), ("I do", "Boris")]
    deliver(group_message(payload, "0b1f6c0e-0000-4000-8000-000000000003", "Anna", "Thanks"))
    assert wazzup_rows.chats()[0]["title"] == "Boris"


def test_a_group_chat_without_a_contact_name_is_titled_group_and_the_end_of_its_id(deliver, payload, wazzup_rows):
    deliver(group_message(payload, "0b1f6c0e-0000-4000-8000-000000000001", None, "Hi all"))
    deliver(group_message(payload, "0b1f6c0e-0000-4000-8000-000000000002", "Anna", "Hello"))
    [chat] = wazzup_rows.chats()
    assert chat["title"] == "Group 125486"
    assert [m["author_name"] for m in wazzup_rows.messages()] == [None, "Anna"]


def test_an_echo_in_a_group_chat_names_the_agent_not_the_contact(deliver, payload, wazzup_rows):
    deliver(payload("incoming_whatsgroup"))
    echo = payload("echo_from_phone")
    echo["messages"][0].update(chatType="whatsgroup", chatId="120363025246125486@g.us",
                               contact={"name": "Someone else"})
    deliver(echo)
    message = wazzup_rows.message(echo["messages"][0]["messageId"])
    assert (message["direction"], message["author_name"]) == ("out", "Alex Salesman")
    assert wazzup_rows.chats()[0]["title"] == "Suppliers group"


def test_a_one_to_one_chat_follows_its_contacts_rename_and_names_no_author(deliver, payload, wazzup_rows):
    deliver(payload("incoming_text"))
    renamed = payload("incoming_text")
    renamed["messages"][0].update(messageId="0b8f9a4e-0000-4000-8000-000000000009", text="It's me again")
    renamed["messages"][0]["contact"]["name"] = "Ivan P."
    deliver(renamed)
    [chat] = wazzup_rows.chats()
    assert (chat["title"], chat["contact_name"]) == ("Ivan P.", "Ivan P.")
    assert [m["author_name"] for m in wazzup_rows.messages()] == [None, None]


def test_same_chat_id_on_another_channel_or_chat_type_is_another_chat(deliver, payload, wazzup_rows):
    body = payload("incoming_text")
    other_channel = copy.deepcopy(body)
    other_channel["messages"][0].update(messageId="11111111-0000-4000-8000-000000000001",
                                        channelId="00000000-0000-4000-8000-00000000000c")
    telegram = copy.deepcopy(body)
    telegram["messages"][0].update(messageId="11111111-0000-4000-8000-000000000002", chatType="telegram")
    for b in (body, other_channel, telegram):
        assert deliver(b).status_code == 200
    assert len(wazzup_rows.chats()) == 3


def test_chat_follows_last_activity_preview_and_unread_count(deliver, payload, wazzup_rows, helpdesk):
    body = payload("messages_and_statuses")
    del body["statuses"]
    deliver(body)
    [chat] = wazzup_rows.chats()
    assert chat["unread_count"] == 2
    assert chat["last_message_preview"] == "Second"
    assert chat["last_message_at"] == datetime(2025, 5, 6, 14, 30, 5, tzinfo=timezone.utc)
    assert chat["last_activity_at"] >= chat["last_message_at"]

    older = payload("incoming_text")  # written earlier than what the chat shows: no preview change
    deliver(older)
    [chat] = wazzup_rows.chats()
    assert chat["unread_count"] == 3
    assert chat["last_message_preview"] == "Second"


def test_contact_rename_and_new_avatar_update_the_chat(deliver, payload, wazzup_rows):
    deliver(payload("incoming_text"))
    body = payload("messages_and_statuses")
    del body["statuses"]
    body["messages"][1]["contact"] = {"name": "Ivan P.", "avatarUri": "https://store.wazzup24.com/new"}
    deliver(body)
    [chat] = wazzup_rows.chats()
    assert (chat["title"], chat["contact_name"], chat["avatar_uri"]) == (
        "Ivan P.", "Ivan P.", "https://store.wazzup24.com/new")


def test_echo_typed_on_the_phone_appears_as_outgoing(deliver, payload, wazzup_rows):
    body = payload("echo_from_phone")
    deliver(body)
    message = wazzup_rows.message(body["messages"][0]["messageId"])
    assert (message["direction"], message["status"], message["is_echo"]) == ("out", "sent", True)
    assert message["author_name"] == "Alex Salesman"
    assert message["sent_at"] == datetime(2025, 5, 6, 14, 20, 11, tzinfo=timezone.utc)
    assert wazzup_rows.chats()[0]["unread_count"] == 0  # our side wrote it: nothing unread


@pytest.mark.parametrize("status, error, stored, stamp", [
    ("delivered", None, "delivered", "delivered_at"),
    ("read", None, "read", "read_at"),
    ("error", {"error": "SOMETHING_NEW", "description": "The number is not on WhatsApp"}, "failed", "failed_at"),
])
def test_echo_typed_on_the_phone_keeps_the_status_wazzup_gives_it(deliver, payload, wazzup_rows, status, error,
                                                                   stored, stamp):
    body = payload("echo_from_phone")
    body["messages"][0]["status"] = status
    if error:
        body["messages"][0]["error"] = error
    deliver(body)
    message = wazzup_rows.message(body["messages"][0]["messageId"])
    assert (message["direction"], message["status"]) == ("out", stored)
    assert message[stamp] == datetime(2025, 5, 6, 14, 20, 11, tzinfo=timezone.utc)
    # A code we have no words for keeps Wazzup's (a known one: tests/wazzup/test_webhook_error_texts.py).
    assert (message["error_code"], message["error_text"]) == ((error["error"], error["description"]) if error
                                                              else (None, None))


def test_echo_of_our_own_send_matches_the_stored_message(deliver, payload, wazzup_rows, outgoing_send):
    deliver(payload("incoming_text"))
    send = outgoing_send(wazzup_rows.chats()[0]["id"], text="Yes, it is ready")
    send.settle("6f1b3c67-3008-488b-9abc-12fcac6de134")

    body = payload("echo_from_phone")
    body["messages"][0]["status"] = "delivered"
    assert deliver(body).status_code == 200

    rows = wazzup_rows.messages(direction="out")
    assert len(rows) == 1  # no second copy
    assert rows[0]["id"] == send.id
    assert rows[0]["status"] == "delivered"
    assert rows[0]["crm_message_id"] == send.crm_message_id


def test_echo_naming_our_crm_message_id_settles_the_send(deliver, payload, wazzup_rows, outgoing_send):
    deliver(payload("incoming_text"))
    send = outgoing_send(wazzup_rows.chats()[0]["id"], text="Yes, it is ready")
    body = payload("echo_from_phone")
    body["messages"][0]["crmMessageId"] = send.crm_message_id
    deliver(body)
    rows = wazzup_rows.messages(direction="out")
    assert [(r["id"], r["wazzup_message_id"], r["status"]) for r in rows] == [
        (send.id, "6f1b3c67-3008-488b-9abc-12fcac6de134", "sent")]


def test_edit_updates_the_message_and_keeps_the_previous_text(deliver, payload, wazzup_rows, clock):
    deliver(payload("echo_from_phone"))
    clock.advance(60)
    assert deliver(payload("edited")).status_code == 200
    message = wazzup_rows.message("6f1b3c67-3008-488b-9abc-12fcac6de134")
    assert message["text"] == "Yes, it is ready (corrected)"
    assert message["previous_text"] == "Yes, it is ready"
    assert message["edited_at"] == clock.now
    assert len(wazzup_rows.messages()) == 1


def test_an_older_copy_never_undoes_a_newer_edit(deliver, payload, wazzup_rows):
    deliver(payload("echo_from_phone"))
    deliver(payload("edited"))
    deliver(payload("echo_from_phone"))   # the original, redelivered late
    first_edit = payload("edited")        # an edit older than the one we hold
    first_edit["messages"][0].update(text="Yes, it is ready!", dateTime="2025-05-06T14:20:00.000Z",
                                     oldInfo={"oldText": "Yes, it is ready"})
    deliver(first_edit)
    assert wazzup_rows.message("6f1b3c67-3008-488b-9abc-12fcac6de134")["text"] == "Yes, it is ready (corrected)"


def test_edits_with_the_same_time_apply_in_their_chain_order(deliver, payload, wazzup_rows):
    deliver(payload("echo_from_phone"))
    second = payload("edited")
    second["messages"][0].update(text="third version", oldInfo={"oldText": "Yes, it is ready (corrected)"})
    deliver(second)                # arrives first; builds on a text we do not hold yet, but is an edit
    deliver(payload("edited"))     # the earlier edit, same dateTime: does not start from our text
    assert wazzup_rows.message("6f1b3c67-3008-488b-9abc-12fcac6de134")["text"] == "third version"


def test_edit_of_a_message_never_seen_stores_it_edited(deliver, payload, wazzup_rows):
    deliver(payload("edited"))
    message = wazzup_rows.message("6f1b3c67-3008-488b-9abc-12fcac6de134")
    assert message["text"] == "Yes, it is ready (corrected)"
    assert message["previous_text"] == "Yes, it is ready"
    assert message["edited_at"] is not None


def test_deletion_marks_the_message_and_keeps_its_text(deliver, payload, wazzup_rows, clock):
    deliver(payload("incoming_text"))
    clock.advance(30)
    deliver(payload("deleted"))
    deliver(payload("incoming_text"))  # the original redelivered: still deleted
    message = wazzup_rows.message("caa1f2b4-cce3-424c-86cd-05f4e2a95073")
    assert message["deleted_at"] == clock.now
    assert message["previous_text"] == "Hello, is my order ready?"
    assert message["text"] == "Hello, is my order ready?"
    assert len(wazzup_rows.messages()) == 1


def test_edit_stamps_a_new_change_seq_so_pollers_see_it(deliver, payload, wazzup_rows, client, auth):
    deliver(payload("echo_from_phone"))
    before = wazzup_rows.messages()[0]
    deliver(payload("edited"))
    after = wazzup_rows.messages()[0]
    assert after["change_seq"] > before["change_seq"]
    listed = client.simulate_get(f"/api/chats/{after['chat_id']}/messages",
                                 params={"changed_since": before["change_seq"]}, headers=auth)
    assert [m["text"] for m in listed.json["items"]] == ["Yes, it is ready (corrected)"]
    assert listed.json["items"][0]["wazzup_message_id"] == "6f1b3c67-3008-488b-9abc-12fcac6de134"


def test_editing_a_chats_last_message_updates_its_preview_for_pollers(deliver, payload, wazzup_rows, client, auth):
    deliver(payload("echo_from_phone"))
    before = wazzup_rows.chats()[0]
    deliver(payload("edited"))
    listed = client.simulate_get("/api/chats", params={"changed_since": before["change_seq"]}, headers=auth)
    assert [c["last_message_preview"] for c in listed.json["items"]] == ["Yes, it is ready (corrected)"]


def test_deleting_a_chats_last_message_hides_its_text_from_the_chat_list(deliver, payload, wazzup_rows, client,
                                                                          auth):
    deliver(payload("incoming_text"))
    before = wazzup_rows.chats()[0]
    assert before["last_message_preview"] == "Hello, is my order ready?"
    deliver(payload("deleted"))
    listed = client.simulate_get("/api/chats", params={"changed_since": before["change_seq"]}, headers=auth)
    assert [c["last_message_preview"] for c in listed.json["items"]] == ["[Deleted message]"]


def test_editing_an_older_message_leaves_the_chats_preview_on_its_last_one(deliver, payload, wazzup_rows):
    deliver(payload("incoming_text"))
    later = payload("incoming_text")
    later["messages"][0].update(messageId="0b7c0f0e-0000-4000-8000-000000000001", text="And one more thing",
                                dateTime="2030-01-01T00:00:00.000Z")
    deliver(later)
    deliver(payload("deleted"))  # the first message
    assert wazzup_rows.chats()[0]["last_message_preview"] == "And one more thing"


def test_a_customers_reply_names_the_message_it_quotes_in_the_api(deliver, payload, client, auth):
    deliver(payload("incoming_text"))
    reply = payload("incoming_text")
    reply["messages"][0].update(messageId="0b7c0f0e-0000-4000-8000-000000000002", text="Yes, that one",
                                quotedMessage={"messageId": "caa1f2b4-cce3-424c-86cd-05f4e2a95073"})
    deliver(reply)
    chat = client.simulate_get("/api/chats", headers=auth).json["items"][0]
    for page in (client.simulate_get(f"/api/chats/{chat['id']}/messages", headers=auth),
                 client.simulate_get(f"/api/chats/{chat['id']}/messages", params={"changed_since": 0}, headers=auth)):
        by_text = {m["text"]: m for m in page.json["items"]}
        quoted = by_text["Hello, is my order ready?"]
        assert by_text["Yes, that one"]["wazzup_reply_to"] == quoted["wazzup_message_id"]
        assert quoted["wazzup_reply_to"] is None


def test_stored_chat_and_message_appear_in_the_host_api(deliver, payload, client, auth):
    deliver(payload("incoming_text"))
    chats = client.simulate_get("/api/chats", headers=auth).json["items"]
    assert [(c["type"], c["phone"], c["wazzup_chat_id"]) for c in chats] == [("wazzup", "79161234567", "79161234567")]
    messages = client.simulate_get(f"/api/chats/{chats[0]['id']}/messages", headers=auth).json["items"]
    assert [(m["direction"], m["status"], m["wazzup_message_id"]) for m in messages] == [
        ("in", "inbound", "caa1f2b4-cce3-424c-86cd-05f4e2a95073")]


def test_a_name_that_is_just_the_number_never_renames_a_chat(deliver, payload, wazzup_rows):
    deliver(payload("incoming_text"))
    deliver(payload("incoming_image"))  # contact.name is "79161234567", as WhatsApp may send it
    assert wazzup_rows.chats()[0]["title"] == "Ivan Petrov"


def test_a_message_first_seen_as_its_deletion_keeps_its_text_out_of_the_chat_list(deliver, payload, wazzup_rows):
    # The original delivery never came (or came later): the deletion is the first copy stored.
    deliver(payload("deleted"))
    [chat] = wazzup_rows.chats()
    assert chat["last_message_preview"] == "[Deleted message]"
    assert wazzup_rows.message("caa1f2b4-cce3-424c-86cd-05f4e2a95073")["deleted_at"] is not None
