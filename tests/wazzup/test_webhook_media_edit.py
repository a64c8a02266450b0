"""An edited media message (``isEdited`` with a new ``contentUri``, reference §3.6/§5.1) replaces the media."""

from __future__ import annotations

OLD_URI = "https://store.wazzup24.com/e5115a1e0046d628b3924161d411e5812d2546/?filename=photo.jpg"


def _edited(payload, uri, at, **extra):
    body = payload("incoming_image")
    item = body["messages"][0]
    item.update(isEdited=True, dateTime=at, contentUri=uri, **extra)
    return body


def test_an_edited_copy_with_a_new_content_uri_replaces_the_media_and_marks_it_edited(deliver, payload,
                                                                                      wazzup_rows, clock):
    original = payload("incoming_image")
    wid = original["messages"][0]["messageId"]
    deliver(original)
    clock.advance(60)

    deliver(_edited(payload, "https://store.wazzup24.com/b2c3/?filename=invoice.pdf", "2025-05-06T14:17:00Z"))

    [message] = wazzup_rows.messages()
    assert message["wazzup_message_id"] == wid
    assert message["content_uri"] == "https://store.wazzup24.com/b2c3/?filename=invoice.pdf"
    assert (message["content_name"], message["content_type"]) == ("invoice.pdf", "application/pdf")
    assert message["edited_at"] == clock()
    assert message["text"] is None and message["deleted_at"] is None


def test_an_older_media_copy_never_undoes_a_newer_media_edit(deliver, payload, wazzup_rows):
    deliver(payload("incoming_image"))
    deliver(_edited(payload, "https://store.wazzup24.com/c/?filename=newest.jpg", "2025-05-06T14:30:00Z"))
    deliver(_edited(payload, "https://store.wazzup24.com/b/?filename=older.jpg", "2025-05-06T14:20:00Z"))
    deliver(payload("incoming_image"))  # a late redelivery of the original

    [message] = wazzup_rows.messages()
    assert message["content_name"] == "newest.jpg"
    assert message["content_uri"] == "https://store.wazzup24.com/c/?filename=newest.jpg"


def test_the_chat_preview_follows_a_media_edit_of_its_last_message(deliver, payload, wazzup_rows):
    deliver(payload("incoming_image"))
    assert wazzup_rows.chats()[0]["last_message_preview"] == "[Image] photo.jpg"

    deliver(_edited(payload, "https://store.wazzup24.com/d/?filename=better.png", "2025-05-06T14:17:00Z"))

    assert wazzup_rows.chats()[0]["last_message_preview"] == "[Image] better.png"


def test_a_caption_edit_without_a_link_keeps_the_edited_media(deliver, payload, wazzup_rows):
    deliver(payload("incoming_image"))
    deliver(_edited(payload, "https://store.wazzup24.com/e/?filename=second.jpg", "2025-05-06T14:17:00Z"))
    caption = payload("incoming_image")
    item = caption["messages"][0]
    del item["contentUri"]  # Wazzup need not repeat the link when only the caption changes
    item.update(isEdited=True, dateTime="2025-05-06T14:18:00Z", text="Look at this")
    deliver(caption)

    [message] = wazzup_rows.messages()
    assert message["text"] == "Look at this"
    assert message["content_name"] == "second.jpg"
    assert message["content_type"] == "image/jpeg"


def test_a_media_edit_that_brings_another_kind_of_file_takes_the_edits_type(deliver, payload, wazzup_rows, client,
                                                                          auth):
    deliver(payload("incoming_image"))
    deliver(_edited(payload, "https://store.wazzup24.com/b2c3/?filename=invoice.pdf", "2025-05-06T14:17:00Z",
                    type="document"))

    [message] = wazzup_rows.messages()
    assert (message["type"], message["content_name"]) == ("document", "invoice.pdf")
    assert wazzup_rows.chats()[0]["last_message_preview"] == "[Document] invoice.pdf"
    listed = client.simulate_get(f"/api/chats/{message['chat_id']}/messages", headers=auth).json["items"]
    assert [m["type"] for m in listed] == ["document"]
