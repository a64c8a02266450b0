"""Hostile and unusual texts are stored and returned byte for byte, in both directions."""

from __future__ import annotations

import json
import uuid

import pytest
import responses

from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

from fire_support import CHANNEL_ID

WAZZUP_API = "https://api.wazzup.test"  # tests/conftest.py's test API URL

TEXTS = {
    "sql": "'); DROP TABLE messages; -- \" OR 1=1; SELECT * FROM agents WHERE '' = '",
    "like": "100% _done_ \\ [a-z]% ESCAPE '\\'",
    "emoji": "👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0001FAE0",
    "rtl": "\u202eمرحبا بالعالم\u202c שלום עולם \u200fעברית\u200f",
    "script": "<script>alert(1)</script><img src=x onerror=alert(2)>&amp;&lt;",
    "whitespace": "  line one\r\nline two\n\ttabbed\u00a0nbsp\u2028sep  ",
    "combining": "e\u0301 vs \u00e9, Ã©, \ufeffbom, zero\u200bwidth",
    "long_ascii": ("0123456789" * 1000),
    "long_cyrillic": ("Привет, мир! " * 800)[:10_000],
    "long_astral": "😀" * 10_000,  # 10,000 code points: the limit counts code points
}


def _incoming(chat: str, text: str) -> dict:
    return incoming_message(channel_id=CHANNEL_ID, chat_id=chat, name="Ivan", text=text,
                            message_id=str(uuid.uuid4()))


def _messages(client, auth, chat_id: int) -> list[dict]:
    items, cursor = [], None
    for _ in range(50):
        params = {"limit": 200, "after": 0} | ({"cursor": cursor} if cursor else {})
        page = client.simulate_get(f"/api/chats/{chat_id}/messages", params=params, headers=auth).json
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("message pages never ended")


def _wazzup_chat_id(client, auth, phone: str) -> int:
    chats = client.simulate_get("/api/chats", params={"type": "wazzup", "limit": 200}, headers=auth).json["items"]
    return next(c["id"] for c in chats if c["wazzup_chat_id"] == phone)


def test_incoming_texts_are_stored_and_returned_byte_for_byte(client, auth):
    body = delivery(messages=[_incoming("79160000101", text) for text in TEXTS.values()])
    # Sent as UTF-8 bytes, exactly as Wazzup would.
    result = client.simulate_post("/api/webhook", body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                  headers={"Content-Type": "application/json; charset-utf-8"})
    assert result.status_code == 200, result.text

    stored = {m["wazzup_message_id"]: m["text"] for m in _messages(client, auth, _wazzup_chat_id(client, auth, "79160000101"))}
    for item, (name, text) in zip(body["messages"], TEXTS.items()):
        assert stored.get(item["messageId"]) == text, f"{name} text changed on the way in"


def test_outgoing_texts_reach_wazzup_and_the_api_byte_for_byte(client, auth, wazzup_api):
    seen: list[dict] = []

    def accept(request):
        sent = json.loads(request.body)
        seen.append(sent)
        return 201, {"Content-Type": "application/json"}, json.dumps({"messageId": str(uuid.uuid4()),
                                                                      "chatId": sent.get("chatId")})

    wazzup_api.add_callback(responses.POST, f"{WAZZUP_API}/v3/message", callback=accept)
    wazzup_api.get(f"{WAZZUP_API}/v3/channels", json=[{"channelId": CHANNEL_ID, "transport": "whatsapp",
                                                        "plainId": "79990000000", "state": "active"}])
    assert client.simulate_post("/api/webhook", json=delivery(messages=[_incoming("79160000102", "hi")])).status_code == 200
    chat_id = _wazzup_chat_id(client, auth, "79160000102")

    sent_ids = {}
    for name, text in TEXTS.items():
        result = client.simulate_post(f"/api/chats/{chat_id}/wazzup24/send", json={"text": text}, headers=auth)
        assert result.status_code == 201, f"{name}: {result.status} {result.text[:300]}"
        assert result.json["text"] == text, f"{name} text changed in the send response"
        sent_ids[result.json["id"]] = name

    assert [s["text"] for s in seen] == list(TEXTS.values()), "a text changed on its way to Wazzup"
    stored = {m["id"]: m["text"] for m in _messages(client, auth, chat_id)}
    for message_id, name in sent_ids.items():
        assert stored[message_id] == TEXTS[name], f"{name} text changed in storage"


def test_a_text_one_code_point_over_the_limit_is_refused_before_anything_is_sent(client, auth, wazzup_api):
    wazzup_api.get(f"{WAZZUP_API}/v3/channels", json=[{"channelId": CHANNEL_ID, "transport": "whatsapp",
                                                        "plainId": "79990000000", "state": "active"}])
    assert client.simulate_post("/api/webhook", json=delivery(messages=[_incoming("79160000103", "hi")])).status_code == 200
    chat_id = _wazzup_chat_id(client, auth, "79160000103")
    result = client.simulate_post(f"/api/chats/{chat_id}/wazzup24/send", json={"text": "😀" * 10_001}, headers=auth)
    assert result.status_code == 422
    assert not [c for c in wazzup_api.calls if c.request.method == "POST"], "an over-long text was sent to Wazzup"


@pytest.mark.parametrize("name", ["sql", "script", "emoji"])
def test_hostile_texts_are_searchable_as_plain_text_in_chat_titles(client, auth, name):
    # The contact name becomes the chat title: search must treat it as text, never as SQL or a pattern.
    item = incoming_message(channel_id=CHANNEL_ID, chat_id="79160000104", name=TEXTS[name], text="hello",
                            message_id=str(uuid.uuid4()))
    assert client.simulate_post("/api/webhook", json=delivery(messages=[item])).status_code == 200
    chats = client.simulate_get("/api/chats", params={"q": TEXTS[name][:50]}, headers=auth)
    assert chats.status_code == 200
    assert [c["title"] for c in chats.json["items"]] == [TEXTS[name]]
