"""POST /api/wazzup24/chats: the helpdesk writes first: a chat started with a phone number is the
chat the customer's answer lands in, and the send route writes to it."""

from __future__ import annotations

import re
import threading

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound.start_chat import whatsapp_number
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

CHANNEL = "e0629e11-0f67-4567-92a9-2237e91ec1b9"      # the only active WhatsApp channel of the fixtures
WABA_CHANNEL = "0b9f6a55-77c2-4f61-8c0e-5d8b2a9e3c10"
TELEGRAM_CHANNEL = "7a1c0f43-3d51-4d7e-9d58-0c4bd6f1e2aa"


@pytest.fixture
def start(client, auth):
    def post(body, headers=None):
        return client.simulate_post("/api/wazzup24/chats", json=body, headers={**auth, **(headers or {})})
    return post


@pytest.fixture
def channels(wazzup_api, wazzup_url, api_payload):
    """Wazzup's channel list as the fixture ``name`` gives it."""
    def answer(name="channels_one_active"):
        wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload(name))
    return answer


@pytest.mark.parametrize("written, digits", [
    ("+7 (916) 123-45-67", "79161234567"),
    ("79161234567", "79161234567"),
    ("8 916 123 45 67", "79161234567"),      # at home, Russians write 8 for +7
    ("8 (701) 234-56-78", "77012345678"),    # and so do Kazakhs
    ("+44 20 7946 0958", "442079460958"),
    ("+84 912 345 678", "84912345678"),      # with +, 8… is what it says: Vietnam
    ("  +1.415.555.0132 ", "14155550132"),
])
def test_a_number_is_read_as_people_write_it(written, digits):
    assert whatsapp_number(written) == digits


@pytest.mark.parametrize("written, why", [
    ("8 495 123 45 67", "with + and the country code"),   # Moscow with 8, or Vietnam without +?
    ("+7 916", "7-15 digits"),
    ("+1234567890123456", "7-15 digits"),
    ("call 79161234567", "write a phone number"),
    ("7916123456７", "write a phone number"),            # a full-width digit
    ("+7+916", "write a phone number"),
])
def test_a_number_that_cannot_be_read_surely_is_refused_saying_why(written, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        whatsapp_number(written)


def test_a_chat_started_with_a_number_is_created_once_and_found_after(start, channels, helpdesk, chat_identity):
    channels()
    first = start({"phone": "+7 916 123-45-67", "name": "Ivan Petrov"})
    assert first.status_code == 201, first.text
    chat = first.json
    assert (chat["type"], chat["title"], chat["phone"], chat["unread_count"]) == ("wazzup", "Ivan Petrov",
                                                                                  "79161234567", 0)
    assert chat["wazzup_chat_id"] == "79161234567"
    assert chat_identity(chat["id"]) == (CHANNEL, "whatsapp", "79161234567")

    again = start({"phone": "8 916 123 45 67", "name": "Someone Else"})
    assert again.status_code == 200
    assert again.json["id"] == chat["id"] and again.json["title"] == "Ivan Petrov"  # an existing chat keeps its title


def test_the_customers_answer_lands_in_the_chat_the_helpdesk_started(start, channels, deliver, helpdesk, client,
                                                                      auth):
    channels()
    chat_id = start({"phone": "+79161234567"}).json["id"]
    answer = incoming_message(channel_id=CHANNEL, chat_id="79161234567", text="Yes, tomorrow is fine",
                              name="Ivan P")
    assert deliver(delivery(messages=[answer])).status_code == 200
    chats = client.simulate_get("/api/chats", headers=auth).json["items"]
    assert [(c["id"], c["title"], c["unread_count"]) for c in chats] == [(chat_id, "Ivan P", 1)]


def test_a_chat_the_customer_started_is_found_not_made_again(start, channels, deliver):
    channels()
    item = incoming_message(channel_id=CHANNEL, chat_id="79161234567", text="Hello", name="Ivan")
    assert deliver(delivery(messages=[item])).status_code == 200
    result = start({"phone": "+7 916 123 45 67"})
    assert result.status_code == 200
    assert result.json["title"] == "Ivan" and result.json["unread_count"] == 1


def test_the_started_chat_sends_to_the_number_on_its_channel(start, channels, send, wazzup_api, wazzup_url,
                                                             api_payload, sent_bodies):
    channels()
    chat_id = start({"phone": "8 916 123 45 67"}).json["id"]
    wazzup_api.post(f"{wazzup_url}/v3/message", json=api_payload("message_created"), status=201)
    result = send(chat_id, {"text": "Your order 1042 is ready"})
    assert result.status_code == 201, result.text
    [body] = sent_bodies()
    assert (body["channelId"], body["chatType"], body["chatId"]) == (CHANNEL, "whatsapp", "79161234567")


def test_a_chat_on_a_whatsapp_business_channel_takes_a_template_until_the_customer_writes(
        start, channels, send, wazzup_api):
    channels("channels_two_active")
    result = start({"phone": "+7 916 123 45 67", "channel_id": WABA_CHANNEL})
    assert result.status_code == 201, result.text
    refused = send(result.json["id"], {"text": "Hello"})
    assert refused.status_code == 409 and refused.json["code"] == "wazzup_window_closed"
    assert not [c for c in wazzup_api.calls if c.request.url.endswith("/v3/message")]


def test_the_channel_setting_is_used_without_asking_wazzup(build_app, pm, auth, wazzup_api, helpdesk, chat_identity):
    import falcon.testing

    app = build_app(pm, WAZZUP24_CHANNEL_ID=WABA_CHANNEL)
    result = falcon.testing.TestClient(app).simulate_post("/api/wazzup24/chats", json={"phone": "+79161234567"},
                                                          headers=auth)
    assert result.status_code == 201, result.text
    assert chat_identity(result.json["id"]) == (WABA_CHANNEL, "whatsapp", "79161234567")
    assert not wazzup_api.calls


@pytest.mark.parametrize("body, field, said", [
    ({}, "phone", "exactly one of phone and username"),
    ({"phone": "8 495 123 45 67"}, "phone", "with + and the country code"),
    ({"phone": "not a number"}, "phone", "write a phone number"),
    ({"phone": 79161234567}, "phone", "Not a valid string"),
    ({"phone": "+79161234567", "name": ""}, "name", "Length"),
    ({"phone": "+79161234567", "channel_id": "no-such-channel"}, "channel_id", "not a channel of this Wazzup account"),
    ({"phone": "+79161234567", "channel_id": TELEGRAM_CHANNEL}, "channel_id", "a bot cannot write first"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(start, channels, helpdesk, body, field, said):
    channels()
    result = start(body)
    assert result.status_code == 422, result.text
    assert field in result.json["fields"] and said.lower() in " ".join(result.json["fields"][field]).lower()
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.chats)).scalar() == 0


def test_with_several_whatsapp_channels_and_none_chosen_it_says_which_to_choose(start, channels):
    channels("channels_two_active")
    result = start({"phone": "+79161234567"})
    assert result.status_code == 409
    assert result.json["code"] == "wazzup_channel_not_selected"
    assert CHANNEL in result.json["message"] and "channel_id" in result.json["message"]


def test_a_channel_that_needs_a_person_is_refused_saying_what_to_do(start, wazzup_api, wazzup_url):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=[
        {"channelId": CHANNEL, "transport": "whatsapp", "plainId": "79865784457", "state": "notEnoughMoney"}])
    result = start({"phone": "+79161234567", "channel_id": CHANNEL})
    assert result.status_code == 409 and result.json["code"] == "wazzup_channel_needs_attention"
    assert "pay for it in Wazzup" in result.json["message"]


def test_when_wazzup_cannot_be_asked_no_chat_is_started(start, wazzup_api, wazzup_url, helpdesk):
    wazzup_api.get(f"{wazzup_url}/v3/channels", status=503, json={"error": "down"})
    result = start({"phone": "+79161234567"})
    assert result.status_code == 502 and result.json["code"] == "wazzup_channels_failed"
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.chats)).scalar() == 0


def test_starting_a_chat_needs_an_agent(client, channels):
    assert client.simulate_post("/api/wazzup24/chats", json={"phone": "+79161234567"}).status_code == 401


def test_concurrent_starts_and_the_customers_first_message_make_one_chat(app, auth, channels, helpdesk):
    """Two agents start the same chat while the customer's first message arrives: one chat."""
    import falcon.testing

    channels()
    item = incoming_message(channel_id=CHANNEL, chat_id="79161234567", text="Hi", name="Ivan")
    barrier = threading.Barrier(3)
    results = []

    def run(call):
        client = falcon.testing.TestClient(app)
        barrier.wait(timeout=30)
        results.append(call(client).status_code)

    calls = [lambda c: c.simulate_post("/api/wazzup24/chats", json={"phone": "+79161234567"}, headers=auth)] * 2
    calls.append(lambda c: c.simulate_post("/api/webhook", json=delivery(messages=[item])))
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results)[0] in (200, 201) and all(s in (200, 201) for s in results)
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.chats)).scalar() == 1
