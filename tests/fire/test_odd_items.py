"""One odd item never costs the good ones: it is quarantined with its reason, the rest is stored."""

from __future__ import annotations

import json
import sys
import uuid

import pytest
import sqlalchemy as sa

from wazzup_plugin.sandbox.deliveries import delivery, incoming_message
from wazzup_plugin.state import get_state

from fire_support import CHANNEL_ID, phone

BREAKERS = {
    "chat id of the wrong type": ("chatId", lambda item: item.update(chatId={"not": "a string"})),
    "message id missing": ("messageId", lambda item: item.pop("messageId")),
    "date that is not a date": ("dateTime", lambda item: item.update(dateTime="yesterday at noon")),
    "contact that is a number": ("contact", lambda item: item.update(contact=42)),
    "text that is a list": ("text", lambda item: item.update(text=["a", "b"])),
}


@pytest.mark.parametrize("breaker", list(BREAKERS))
def test_a_100_message_delivery_with_one_malformed_item_stores_99_and_quarantines_1(client, helpdesk, breaker):
    field, breaks = BREAKERS[breaker]
    items = [incoming_message(channel_id=CHANNEL_ID, chat_id=phone(i % 10), text=f"message {i}",
                              message_id=str(uuid.uuid4())) for i in range(100)]
    odd = items[37]
    breaks(odd)

    result = client.simulate_post("/api/webhook", json=delivery(messages=items))

    assert result.status_code == 200, result.text
    tables = get_state(helpdesk).tables
    good = {i["messageId"] for n, i in enumerate(items) if n != 37}
    with helpdesk.db.read() as conn:
        stored = set(conn.execute(sa.select(tables["messages"].c.wazzup_message_id)).scalars())
        quarantined = conn.execute(sa.select(tables["quarantine"])).mappings().all()
    assert stored == good, f"{len(stored & good)} of 99 good messages stored, {len(stored - good)} unexpected"
    assert len(quarantined) == 1, f"{len(quarantined)} items quarantined"
    row = quarantined[0]
    assert row["section"] == "messages"
    assert field in row["reason"], f"the reason does not name the field {field!r}: {row['reason']!r}"
    assert json.loads(row["item"]) == odd, "the quarantined item is not kept as received"
    if isinstance(odd.get("messageId"), str):
        assert row["wazzup_message_id"] == odd["messageId"]


def test_an_odd_status_is_quarantined_and_the_other_statuses_and_messages_are_kept(client, helpdesk):
    from wazzup_plugin.sandbox.deliveries import status_update

    messages = [incoming_message(channel_id=CHANNEL_ID, chat_id=phone(1), text=f"m{i}", message_id=str(uuid.uuid4()))
                for i in range(5)]
    statuses = [status_update(message_id=str(uuid.uuid4()), status="delivered") for _ in range(5)]
    statuses[2]["status"] = {"weird": True}

    result = client.simulate_post("/api/webhook", json=delivery(messages=messages, statuses=statuses))

    assert result.status_code == 200, result.text
    tables = get_state(helpdesk).tables
    with helpdesk.db.read() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(tables["messages"])).scalar()
        parked = set(conn.execute(sa.select(tables["parked"].c.wazzup_message_id)).scalars())
        quarantined = conn.execute(sa.select(tables["quarantine"])).mappings().all()
    assert stored == 5
    # Statuses for messages not known yet are parked (they may arrive before the send call returns).
    assert parked == {s["messageId"] for n, s in enumerate(statuses) if n != 2}
    assert [(q["section"], q["wazzup_message_id"]) for q in quarantined] == [("statuses", statuses[2]["messageId"])]
    assert "status" in quarantined[0]["reason"]


def test_an_item_nested_as_deep_as_the_parser_goes_is_quarantined_and_the_good_message_stored(client, helpdesk):
    # The deepest body the webhook still parses: the deeper ones are refused whole (400, not JSON).
    # Writing that item back out for the quarantine runs deeper in the stack than parsing it did.
    good = incoming_message(channel_id=CHANNEL_ID, chat_id=phone(5), text="kept", message_id=str(uuid.uuid4()))
    odd = incoming_message(channel_id=CHANNEL_ID, chat_id=phone(6), text="odd", message_id=str(uuid.uuid4()))
    head = json.dumps(delivery(messages=[good, dict(odd, contact="DEEP")]))
    head, tail = head.split('"DEEP"')
    for depth in range(sys.getrecursionlimit(), 0, -1):
        result = client.simulate_post("/api/webhook", body=head + "[" * depth + "]" * depth + tail,
                                      headers={"Content-Type": "application/json"})
        if result.status_code != 400:
            break

    assert result.status_code == 200, result.text
    tables = get_state(helpdesk).tables
    with helpdesk.db.read() as conn:
        stored = set(conn.execute(sa.select(tables["messages"].c.wazzup_message_id)).scalars())
        quarantined = conn.execute(sa.select(tables["quarantine"])).mappings().all()
    assert stored == {good["messageId"]}
    assert [q["wazzup_message_id"] for q in quarantined] == [odd["messageId"]]
    kept = json.loads(quarantined[0]["item"])
    assert kept["messageId"] == odd["messageId"] and "contact" in quarantined[0]["reason"]


def test_an_item_too_deep_to_write_out_is_kept_cut_at_64_levels():
    from wazzup_plugin.inbound.parse import CUT, raw_json

    item = {"messageId": "m-1", "contact": []}
    inner = item["contact"]
    for _ in range(sys.getrecursionlimit() * 2):
        inner.append([])
        inner = inner[0]

    kept = json.loads(raw_json(item))

    assert kept["messageId"] == "m-1"
    level, depth = kept["contact"], 1
    while level != CUT:
        level, depth = level[0], depth + 1
    assert depth == 64
