"""The hand-written fast paths of item validation agree with the marshmallow schemas.

The fast paths (``parse._fast_load_message``, ``parse._fast_load_status``) exist for speed only: for
any item each either returns exactly what its schema's ``load`` returns, or declines (None) and leaves
the item to marshmallow. Neither accepts an item marshmallow rejects.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from wazzup_plugin.inbound import parse
from wazzup_plugin.sandbox.deliveries import incoming_message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "wazzup"


def _marshmallow(item):
    try:
        return parse._MESSAGE.load(item)
    except ValidationError:
        return None


def _assert_agree(item) -> None:
    fast = parse._fast_load_message(item)
    if fast is not None:
        assert fast == _marshmallow(item), item


def _fixture_message_items():
    for path in sorted(FIXTURES.glob("*.json")):
        body = json.loads(path.read_text())
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            for item in body["messages"]:
                yield path.name, item


def test_fast_path_accepts_every_fixture_message_as_marshmallow_does():
    items = list(_fixture_message_items())
    assert len(items) >= 15
    for name, item in items:
        fast = parse._fast_load_message(item)
        assert fast is not None, name  # the documented shapes never need the slow path
        assert fast == parse._MESSAGE.load(item), name


def test_parse_message_is_the_same_with_and_without_the_fast_path(monkeypatch):
    items = [item for _, item in _fixture_message_items()]
    fast = [parse.parse_message(item) for item in items]
    monkeypatch.setattr(parse, "_fast_load_message", lambda raw: None)
    assert fast == [parse.parse_message(item) for item in items]


def test_fast_path_declines_what_marshmallow_rejects():
    base = {"messageId": "m-1", "channelId": "c-1", "chatType": "whatsapp", "chatId": "79001234567"}
    odd = [
        {**base, "messageId": ""}, {**base, "messageId": None}, {**base, "chatType": "fax"},
        {**base, "isEcho": "maybe"}, {**base, "contact": "Ivan"}, {**base, "contact": {"username": 5}},
        {**base, "dateTime": True}, {**base, "dateTime": "yesterday"}, {**base, "type": "x" * 101},
        {k: v for k, v in base.items() if k != "chatId"}, {**base, "oldInfo": []},
        # A status matters on an echo only (its ticks): there an unknown word is still refused.
        {**base, "isEcho": True, "status": "lost"}, {**base, "isEcho": True, "status": 3},
        {**base, "contact": {"name": True}}, {**base, "authorId": [1]}, {**base, "authorName": {"a": 1}},
    ]
    for item in odd:
        assert parse._fast_load_message(item) is None, item
        assert _marshmallow(item) is None, item


json_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False)
                | st.text(max_size=12) | st.sampled_from(["", " WhatsApp ", "read", "1", "true", "\x00a", "\ud800",
                                                          "2025-01-02T03:04:05", "2025-01-02T03:04:05+03:00",
                                                          "https://x.example/a.jpg?filename=b.pdf"]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["name", "phone", "avatarUri", "username", "error",
                                                              "description", "oldText", "messageId", "x"]),
                                             inner, max_size=4), max_leaves=8)
FIELDS = sorted(parse.MessageItemSchema().fields) + ["unknownKey"]


@st.composite
def items(draw):
    item = incoming_message(channel_id=draw(st.sampled_from(["c-1", "", "c" * 65])),
                            chat_id=draw(st.text(min_size=0, max_size=8)), text=draw(st.text(max_size=20)))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.booleans()):
            item.pop(name, None)
        else:
            item[name] = draw(json_values)
    return item


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items())
def test_fast_path_agrees_with_marshmallow_on_generated_items(item):
    _assert_agree(item)


def _status_marshmallow(item):
    try:
        return parse._STATUS.load(item)
    except ValidationError:
        return None


def _fixture_status_items():
    for path in sorted(FIXTURES.glob("*.json")):
        body = json.loads(path.read_text())
        if isinstance(body, dict) and isinstance(body.get("statuses"), list):
            for item in body["statuses"]:
                yield path.name, item


def test_status_fast_path_accepts_every_fixture_status_as_marshmallow_does(monkeypatch):
    items = list(_fixture_status_items())
    assert len(items) >= 3
    for name, item in items:
        fast = parse._fast_load_status(item)
        assert fast is not None, name
        assert fast == parse._STATUS.load(item), name
    reports = [parse.parse_status(item) for _, item in items]
    monkeypatch.setattr(parse, "_fast_load_status", lambda raw: None)
    assert reports == [parse.parse_status(item) for _, item in items]


def test_status_fast_path_declines_what_marshmallow_rejects():
    base = {"messageId": "m-1", "status": "read", "timestamp": "2025-01-02T03:04:05Z"}
    odd = [{**base, "messageId": ""}, {**base, "status": "lost"}, {**base, "status": None},
           {**base, "timestamp": "soon"}, {**base, "error": "BAD"}, {**base, "error": {"error": 1}},
           {k: v for k, v in base.items() if k != "status"}]
    for item in odd:
        assert parse._fast_load_status(item) is None, item
        assert _status_marshmallow(item) is None, item


STATUS_FIELDS = sorted(parse.StatusItemSchema().fields) + ["unknownKey"]


@st.composite
def status_items(draw):
    item = {"messageId": draw(st.sampled_from(["m-1", "", "m" * 65, "a\x00b"])),
            "status": draw(st.sampled_from(["read", " Delivered ", "error", "edited", "lost"])),
            "timestamp": draw(st.sampled_from(["2025-01-02T03:04:05", 1735787045000, "x", None]))}
    for name in draw(st.lists(st.sampled_from(STATUS_FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            item.pop(name, None)
        else:
            item[name] = draw(json_values)
    return item


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status_items())
def test_status_fast_path_agrees_with_marshmallow_on_generated_items(item):
    fast = parse._fast_load_status(item)
    if fast is not None:
        assert fast == _status_marshmallow(item), item


TOLERATED = {
    "an unknown status of an incoming message": ({"status": "pending"}, {"status": None}),
    "a status that is a new word of a non-echo": ({"isEcho": False, "status": " Edited "}, {"status": None}),
    "a contact name given as a number": ({"contact": {"name": 79990000002}}, {"contact": {"name": "79990000002"}}),
    "an author id given as a number": ({"authorId": 12345}, {"authorId": "12345"}),
    "an author name given as a whole float": ({"authorName": 7.0}, {"authorName": "7"}),
}


def test_fast_path_and_marshmallow_both_tolerate_numbers_as_names_and_unknown_incoming_statuses():
    base = {"messageId": "m-1", "channelId": "c-1", "chatType": "whatsapp", "chatId": "79001234567", "text": "hi"}
    for case, (extra, expected) in TOLERATED.items():
        item = {**base, **extra}
        fast = parse._fast_load_message(item)
        assert fast is not None, case  # no detour through marshmallow for these
        assert fast == parse._MESSAGE.load(item), case
        for key, value in expected.items():
            assert fast[key] == value, case


def test_an_unknown_status_is_dropped_on_an_incoming_message_and_refused_on_an_echo_by_both_paths():
    item = {"messageId": "m-1", "channelId": "c-1", "chatType": "whatsapp", "chatId": "79001234567", "text": "hi",
            "isEcho": False, "status": "pending"}
    for load in (parse._fast_load_message, parse._MESSAGE.load):
        assert load(item)["status"] is None, load
    item["isEcho"] = True
    assert parse._fast_load_message(item) is None
    try:
        parse._MESSAGE.load(item)
    except ValidationError as exc:
        assert list(exc.messages) == ["status"]
    else:
        raise AssertionError("an echo with an unknown status was accepted")
