"""Reference §0: a field the helpdesk does not need, or a number where text belongs, never costs a message.

Quarantine stays for what is genuinely unusable: ids, the time, the chat type, an echo's ticks.
"""

from __future__ import annotations

import json

from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"


def _message(n, **extra):
    item = incoming_message(channel_id=CHANNEL, chat_id=f"7916123456{n}", text=f"message {n}", message_id=f"t-{n}")
    item.update(extra)
    return item


def test_an_incoming_message_with_a_status_wazzup_has_not_documented_is_stored_as_inbound(deliver, wazzup_rows):
    result = deliver(delivery(messages=[_message(1, status="pending"), _message(2, status="EDITED")]))

    assert result.status_code == 200
    assert (result.json["new_messages"], result.json["quarantined"]) == (2, 0)
    for wid in ("t-1", "t-2"):
        message = wazzup_rows.message(wid)
        assert (message["direction"], message["status"]) == ("in", "inbound")
    assert wazzup_rows.table("quarantine") == []


def test_a_contact_name_given_as_a_number_is_kept_as_its_text(deliver, wazzup_rows):
    result = deliver(delivery(messages=[_message(1, contact={"name": 79990000002})]))

    assert (result.json["new_messages"], result.json["quarantined"]) == (1, 0)
    [chat] = wazzup_rows.chats()
    assert chat["contact_name"] == "79990000002"
    assert chat["title"] == "79990000002"


def test_an_echo_with_a_numeric_author_id_and_name_keeps_them_as_text(deliver, payload, wazzup_rows):
    echo = payload("echo_from_phone")["messages"][0]
    echo.update(authorId=12345, authorName=777)

    result = deliver({"messages": [echo]})

    assert (result.json["new_messages"], result.json["quarantined"]) == (1, 0)
    message = wazzup_rows.message(echo["messageId"])
    assert (message["author_id"], message["author_name"]) == ("12345", "777")
    assert message["direction"] == "out"


def test_only_genuinely_unusable_items_are_still_quarantined(deliver, wazzup_rows):
    tolerated = [_message(1, status="pending"), _message(2, contact={"name": 42}), _message(3, authorId=9)]
    unusable = {
        "t-4": _message(4, chatType="pigeon"),
        "t-5": _message(5, dateTime="06.05.2025 14:16"),
        "t-6": _message(6, channelId=""),
        "t-7": _message(7, isEcho=True, status="pending"),  # an echo's status is its ticks: it matters
    }
    result = deliver(delivery(messages=tolerated + list(unusable.values())))

    assert result.status_code == 200
    assert (result.json["new_messages"], result.json["quarantined"]) == (3, 4)
    assert sorted(m["wazzup_message_id"] for m in wazzup_rows.messages()) == ["t-1", "t-2", "t-3"]
    reasons = {q["wazzup_message_id"]: json.loads(q["reason"]) for q in wazzup_rows.table("quarantine")}
    assert sorted(reasons) == sorted(unusable)
    assert "chatType" in reasons["t-4"] and "dateTime" in reasons["t-5"]
    assert "channelId" in reasons["t-6"] and "status" in reasons["t-7"]
