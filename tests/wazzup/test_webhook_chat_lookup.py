"""A delivery finds each message's chat by its exact (channel, chat type, chat id).

The chat lookup asks the database one IN per key column (so SQLite seeks the unique index instead
of scanning every chat) and keeps only the asked combinations: a stored chat that merely shares
values with the asked keys must never receive a message.
"""

from __future__ import annotations

from wazzup_plugin.sandbox.deliveries import incoming_message

CHANNEL_A = "11111111-1111-4111-8111-111111111111"
CHANNEL_B = "22222222-2222-4222-8222-222222222222"


def test_messages_go_to_their_exact_chat_when_other_chats_share_key_values(deliver, wazzup_rows):
    # Chats whose keys mix the values of the next delivery's keys.
    first = deliver({"messages": [
        incoming_message(channel_id=CHANNEL_A, chat_type="telegram", chat_id="222", text="a-telegram-222"),
        incoming_message(channel_id=CHANNEL_B, chat_type="whatsapp", chat_id="79000000111", text="b-wa-111"),
    ]})
    assert first.status_code == 200, first.text
    second = deliver({"messages": [
        incoming_message(channel_id=CHANNEL_A, chat_type="whatsapp", chat_id="79000000111", text="a-wa-111"),
        incoming_message(channel_id=CHANNEL_B, chat_type="telegram", chat_id="222", text="b-telegram-222"),
        incoming_message(channel_id=CHANNEL_A, chat_type="telegram", chat_id="222", text="a-telegram-222 again"),
    ]})
    assert second.status_code == 200, second.text
    assert second.json["new_messages"] == 3

    chats = {(c["channel_id"], c["chat_type"], c["wazzup_chat_id"]): c for c in wazzup_rows.chats()}
    assert len(chats) == 4
    texts = {}
    for m in wazzup_rows.messages():
        texts.setdefault(m["chat_id"], []).append(m["text"])
    assert texts[chats[(CHANNEL_A, "telegram", "222")]["id"]] == ["a-telegram-222", "a-telegram-222 again"]
    assert texts[chats[(CHANNEL_B, "whatsapp", "79000000111")]["id"]] == ["b-wa-111"]
    assert texts[chats[(CHANNEL_A, "whatsapp", "79000000111")]["id"]] == ["a-wa-111"]
    assert texts[chats[(CHANNEL_B, "telegram", "222")]["id"]] == ["b-telegram-222"]
    assert chats[(CHANNEL_A, "telegram", "222")]["unread_count"] == 2
