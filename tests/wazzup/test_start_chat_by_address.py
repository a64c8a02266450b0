"""Writing first on Telegram and MAX: a chat started by phone or Telegram username goes out by that
address, and takes the chat id Wazzup answers with, so the customer's answer lands in it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from wazzup_plugin.outbound.addresses import address_of, recipient_fields, telegram_username
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message

TELEGRAM = "3f9d2c10-6b1e-4f0a-a7c4-51e2d8b0c7a1"   # a personal Telegram account (transport tgapi)
MAX = "c2b7e5d4-8a90-4e1f-b3c6-7d0a9f1e2b35"
BOT = "7a1c0f43-3d51-4d7e-9d58-0c4bd6f1e2aa"        # a Telegram bot: it cannot write first
WHATSAPP = "e0629e11-0f67-4567-92a9-2237e91ec1b9"
TELEGRAM_ID = "512345678"


@pytest.fixture
def start(client, auth, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_write_first"))

    def post(body):
        return client.simulate_post("/api/wazzup24/chats", json=body, headers=auth)
    return post


@pytest.fixture
def wazzup_answers(wazzup_api, wazzup_url):
    """Wazzup accepts the next send and names the chat ``chat_id``."""
    def answer(chat_id=TELEGRAM_ID):
        wazzup_api.post(f"{wazzup_url}/v3/message", status=201,
                        json={"messageId": "f66c53a6-957a-46b2-b41b-5a2ef4844bcb", "chatId": chat_id})
    return answer


def _chat_count(helpdesk):
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.chats)).scalar()


@pytest.mark.parametrize("written, username", [
    ("@Ivan_Petrov", "ivan_petrov"), ("ivan_petrov", "ivan_petrov"), ("https://t.me/ivan_petrov", "ivan_petrov"),
    (" t.me/Ivan_Petrov ", "ivan_petrov"),
])
def test_a_telegram_username_is_read_as_people_write_it(written, username):
    assert telegram_username(written) == username


@pytest.mark.parametrize("written", ["@ivan", "1van_petrov", "ivan petrov", "иван_петров", "@" + "a" * 33,
                                     "ivan_t.me/petrov", "@@ivan_petrov", "t.me/@t.me/ivan_petrov"])
def test_a_string_that_is_no_telegram_username_is_refused(written):
    with pytest.raises(ValueError, match="5-32 Latin letters"):
        telegram_username(written)


def test_the_documented_username_shape_is_what_the_server_reads():
    import re

    from wazzup_plugin.outbound.start_chat import USERNAME_PATTERN

    for written in ("@Ivan_Petrov", "ivan_petrov", "https://t.me/ivan_petrov", " T.ME/Ivan_Petrov ", "t.me/@ivan_petrov"):
        assert re.search(USERNAME_PATTERN, written) and telegram_username(written), written
    for written in ("@ivan", "1van_petrov", "ivan_t.me/petrov", "@@ivan_petrov", "@" + "a" * 33):
        assert not re.search(USERNAME_PATTERN, written), written


def test_a_provisional_chat_id_reads_back_into_the_address_and_a_wazzup_id_stays_as_it_is():
    assert recipient_fields("phone:79161234567") == {"phone": "79161234567"}
    assert recipient_fields("username:ivan_petrov") == {"username": "ivan_petrov"}
    assert recipient_fields("512345678") == {"chatId": "512345678"}
    assert address_of("79161234567") is None and address_of("phone:") is None


def test_a_telegram_chat_started_by_phone_goes_out_by_phone_and_keeps_the_chat_id_wazzup_names(
        start, send, wazzup_answers, sent_bodies, helpdesk, deliver, client, auth, chat_identity):
    started = start({"phone": "+7 916 123-45-67", "channel_id": TELEGRAM})
    assert started.status_code == 201, started.text
    chat = started.json
    assert (chat["title"], chat["phone"], chat["wazzup_chat_type"]) == ("+79161234567", "79161234567", "telegram")
    assert chat_identity(chat["id"]) == (TELEGRAM, "telegram", "phone:79161234567")
    assert start({"phone": "8 916 123 45 67", "channel_id": TELEGRAM}).json["id"] == chat["id"]  # one chat

    wazzup_answers()
    sent = send(chat["id"], {"text": "Your order 1042 is ready"})
    assert sent.status_code == 201, sent.text
    [body] = sent_bodies()
    assert (body["channelId"], body["chatType"], body["phone"]) == (TELEGRAM, "telegram", "79161234567")
    assert "chatId" not in body
    assert chat_identity(chat["id"]) == (TELEGRAM, "telegram", TELEGRAM_ID)

    answer = incoming_message(channel_id=TELEGRAM, chat_id=TELEGRAM_ID, chat_type="telegram", text="Thanks!",
                              name="Ivan")
    assert deliver(delivery(messages=[answer])).status_code == 200
    chats = client.simulate_get("/api/chats", headers=auth).json["items"]
    assert [(c["id"], c["title"], c["unread_count"]) for c in chats] == [(chat["id"], "Ivan", 1)]


def test_the_next_message_after_wazzup_named_the_chat_goes_to_its_chat_id(start, send, wazzup_answers, sent_bodies):
    chat_id = start({"username": "@Ivan_Petrov"}).json["id"]   # the account's only Telegram channel
    wazzup_answers()
    assert send(chat_id, {"text": "Hello"}).status_code == 201
    wazzup_answers()
    assert send(chat_id, {"text": "Are you there?"}).status_code == 201
    first, second = sent_bodies()
    assert (first["chatType"], first["username"], "chatId" in first) == ("telegram", "ivan_petrov", False)
    assert (second["chatId"], "username" in second) == (TELEGRAM_ID, False)


def test_a_max_chat_is_started_by_phone(start, send, wazzup_answers, sent_bodies, helpdesk, chat_identity):
    started = start({"phone": "+7 916 123 45 67", "channel_id": MAX, "name": "Ivan Petrov"})
    assert started.status_code == 201, started.text
    assert started.json["title"] == "Ivan Petrov"
    wazzup_answers("88123456")
    assert send(started.json["id"], {"text": "Hello"}).status_code == 201
    [body] = sent_bodies()
    assert (body["channelId"], body["chatType"], body["phone"]) == (MAX, "max", "79161234567")
    assert chat_identity(started.json["id"]) == (MAX, "max", "88123456")


def test_a_telegram_chat_whose_customer_showed_this_number_is_found_not_started(start, deliver, helpdesk):
    item = incoming_message(channel_id=TELEGRAM, chat_id=TELEGRAM_ID, chat_type="telegram", text="Hi", name="Ivan",
                            contact={"name": "Ivan", "phone": "79161234567"})
    assert deliver(delivery(messages=[item])).status_code == 200
    found = start({"phone": "+7 916 123 45 67", "channel_id": TELEGRAM})
    assert found.status_code == 200, found.text
    assert found.json["title"] == "Ivan" and _chat_count(helpdesk) == 1


def test_when_wazzup_names_a_chat_the_helpdesk_has_the_messages_move_there_and_one_chat_is_left(
        start, send, wazzup_answers, deliver, client, auth, helpdesk, clock, chat_identity):
    # The customer wrote yesterday, under a name that did not show how the agent knows them.
    item = incoming_message(channel_id=TELEGRAM, chat_id=TELEGRAM_ID, chat_type="telegram", text="Hi", name="Ivan",
                            at=clock() - timedelta(days=1))
    assert deliver(delivery(messages=[item])).status_code == 200
    [known] = client.simulate_get("/api/chats", headers=auth).json["items"]
    started = start({"username": "ivan_petrov", "channel_id": TELEGRAM})
    assert started.status_code == 201 and started.json["id"] != known["id"]

    wazzup_answers(TELEGRAM_ID)
    sent = send(started.json["id"], {"text": "Your order is ready"})
    assert sent.status_code == 201, sent.text
    assert sent.json["chat_id"] == known["id"]
    chats = client.simulate_get("/api/chats", headers=auth).json["items"]
    assert [(c["id"], c["last_message_preview"]) for c in chats] == [(known["id"], "Your order is ready")]
    messages = client.simulate_get(f"/api/chats/{known['id']}/messages", headers=auth).json["items"]
    assert sorted((m["direction"], m["text"]) for m in messages) == [("in", "Hi"), ("out", "Your order is ready")]
    assert client.simulate_get(f"/api/chats/{started.json['id']}/messages", headers=auth).status_code == 404
    assert chat_identity(started.json["id"]) is None


def test_a_first_message_wazzup_refuses_leaves_the_chat_under_its_address(start, send, wazzup_api, wazzup_url,
                                                                         helpdesk, chat_identity):
    chat_id = start({"phone": "+7 916 123 45 67", "channel_id": TELEGRAM}).json["id"]
    wazzup_api.post(f"{wazzup_url}/v3/message", status=400, json={
        "status": 400, "error": "BAD_CONTACT", "description": "No Telegram account with this number"})
    refused = send(chat_id, {"text": "Hello"})
    assert refused.status_code == 422 and refused.json["wazzup_code"] == "BAD_CONTACT"
    assert chat_identity(chat_id) == (TELEGRAM, "telegram", "phone:79161234567")


@pytest.mark.parametrize("body, field, said", [
    ({"phone": "+79161234567", "username": "ivan_petrov"}, "phone", "exactly one of phone and username"),
    ({"username": "ivan"}, "username", "5-32 Latin letters"),
    ({"username": "ivan_petrov", "channel_id": WHATSAPP}, "username", "usernames are for Telegram channels"),
    ({"username": "ivan_petrov", "channel_id": MAX}, "username", "usernames are for Telegram channels"),
    ({"phone": "+79161234567", "channel_id": BOT}, "channel_id", "a bot cannot write first"),
])
def test_an_address_the_channel_cannot_write_to_is_refused_naming_the_field(start, helpdesk, body, field, said):
    result = start(body)
    assert result.status_code == 422, result.text
    assert said.lower() in " ".join(result.json["fields"][field]).lower()
    assert _chat_count(helpdesk) == 0


def test_a_username_without_a_channel_needs_exactly_one_telegram_channel(client, auth, wazzup_api, wazzup_url,
                                                                         api_payload):
    channels = api_payload("channels_write_first")
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=channels + [{**channels[1], "channelId": "second-telegram"}])
    result = client.simulate_post("/api/wazzup24/chats", json={"username": "ivan_petrov"}, headers=auth)
    assert result.status_code == 409 and result.json["code"] == "wazzup_channel_not_selected"
    assert "2 active Telegram channels" in result.json["message"]


def _stored_for_an_inline_send(helpdesk, outbox_ctx, clock, chat_id, text, owner):
    """A message stored as the send route stores one it sends at once: under the request's lease, with the
    row as written handed to its attempt (``outbox.attempt``'s ``as_written``)."""
    from wazzup_plugin.outbound import outbox

    written = {}
    with helpdesk.db.write() as tx:
        message_id = outbox.enqueue(tx, outbox_ctx, chat_id=chat_id, now=clock(), lease_owner=owner, text=text,
                                    written=written)
    return message_id, written["row"]


def test_a_second_message_in_flight_when_the_chat_moved_releases_what_waited_in_the_chat_it_is_in_now(
        start, deliver, wazzup_api, wazzup_url, helpdesk, outbox_ctx, clock, client, auth):
    from wazzup_plugin.outbound import outbox
    from wazzup_plugin.state import get_state

    item = incoming_message(channel_id=TELEGRAM, chat_id=TELEGRAM_ID, chat_type="telegram", text="Hi", name="Ivan")
    assert deliver(delivery(messages=[item])).status_code == 200
    [known] = client.simulate_get("/api/chats", headers=auth).json["items"]
    started = start({"username": "ivan_petrov", "channel_id": TELEGRAM}).json["id"]
    # Two agents' sends at once: both go by username, neither knows of the other.
    first, first_row = _stored_for_an_inline_send(helpdesk, outbox_ctx, clock, started, "Hello", "web:first")
    second, second_row = _stored_for_an_inline_send(helpdesk, outbox_ctx, clock, started, "Are you there?",
                                                    "web:second")
    for wazzup_id in ("0d6f0c2e-1111-4a7e-9c1e-5f2b8a3c4d01", "0d6f0c2e-2222-4a7e-9c1e-5f2b8a3c4d02"):
        wazzup_api.post(f"{wazzup_url}/v3/message", status=201, json={"messageId": wazzup_id, "chatId": TELEGRAM_ID})
    assert outbox.attempt(outbox_ctx, first, "web:first", as_written=first_row).kind == "accepted"  # moved over

    # Typed on the phone while the second send is in flight there: parked until that send's answer.
    typed = incoming_message(channel_id=TELEGRAM, chat_id=TELEGRAM_ID, chat_type="telegram", text="From my phone",
                             is_echo=True)
    assert deliver(delivery(messages=[typed])).json["parked"] == 1
    assert outbox.attempt(outbox_ctx, second, "web:second", as_written=second_row).kind == "accepted"

    with helpdesk.db.read() as conn:
        parked = conn.execute(sa.select(sa.func.count()).select_from(get_state(helpdesk).tables["parked"])).scalar()
    assert parked == 0
    messages = client.simulate_get(f"/api/chats/{known['id']}/messages", headers=auth).json["items"]
    assert sorted(m["text"] for m in messages) == ["Are you there?", "From my phone", "Hello", "Hi"]


@pytest.mark.parametrize("transport, chat_type", [("tgapi", "telegram"), ("max", "max")])
def test_a_channel_setting_naming_a_telegram_or_max_channel_starts_a_chat_of_that_messenger(
        build_app, pm, auth, wazzup_api, helpdesk, chat_identity, transport, chat_type):
    import falcon.testing

    from wazzup_plugin.state import get_state

    with helpdesk.db.write() as tx:  # as the outbox worker keeps Wazzup's channel list
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id=TELEGRAM, transport=transport, plain_id="helpdesk_support", state="active",
            updated_at=helpdesk.clock()))
    app = build_app(pm, WAZZUP24_CHANNEL_ID=TELEGRAM)
    result = falcon.testing.TestClient(app).simulate_post("/api/wazzup24/chats", json={"phone": "+79161234567"},
                                                          headers=auth)
    assert result.status_code == 201, result.text
    assert chat_identity(result.json["id"]) == (TELEGRAM, chat_type, "phone:79161234567")
    assert not wazzup_api.calls


def test_a_channel_setting_naming_a_telegram_bot_starts_nothing(build_app, pm, auth, helpdesk):
    import falcon.testing

    from wazzup_plugin.state import get_state

    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id=BOT, transport="telegram", plain_id="helpdesk_bot", state="active",
            updated_at=helpdesk.clock()))
    app = build_app(pm, WAZZUP24_CHANNEL_ID=BOT)
    result = falcon.testing.TestClient(app).simulate_post("/api/wazzup24/chats", json={"phone": "+79161234567"},
                                                          headers=auth)
    assert result.status_code == 409 and result.json["code"] == "wazzup_channel_not_selected", result.text
    assert "a bot cannot write first" in result.json["message"] and "channel_id" in result.json["message"]
    assert _chat_count(helpdesk) == 0


def test_the_first_send_and_the_customers_answer_at_once_leave_one_chat_with_both(
        app, start, auth, wazzup_answers, helpdesk):
    """The customer answers (the webhook makes their chat) while Wazzup's answer to the first send is
    being recorded (the started chat takes their chat id): whichever commits first, one chat is left."""
    import falcon.testing

    started = start({"phone": "+7 916 123 45 67", "channel_id": TELEGRAM}).json["id"]
    wazzup_answers(TELEGRAM_ID)
    answer = incoming_message(channel_id=TELEGRAM, chat_id=TELEGRAM_ID, chat_type="telegram", text="Thanks!",
                              name="Ivan", contact={"name": "Ivan", "phone": "79161234567"})
    barrier = threading.Barrier(2)
    results = []

    def run(call):
        client = falcon.testing.TestClient(app)
        barrier.wait(timeout=30)
        results.append(call(client).status_code)

    calls = [lambda c: c.simulate_post(f"/api/chats/{started}/wazzup24/send", json={"text": "Your order is ready"},
                                       headers=auth),
             lambda c: c.simulate_post("/api/webhook", json=delivery(messages=[answer]))]
    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [200, 201]
    chats, messages = helpdesk.tables.chats, helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        [chat_id] = conn.execute(sa.select(chats.c.id)).scalars().all()
        texts = conn.execute(sa.select(messages.c.text).where(messages.c.chat_id == chat_id)).scalars().all()
    assert sorted(texts) == ["Thanks!", "Your order is ready"]


@pytest.mark.parametrize("key", [None, "send-once-1"])
def test_a_send_to_a_started_chat_that_moved_away_meanwhile_is_404_with_nothing_stored(
        start, send, helpdesk, monkeypatch, key):
    from wazzup_plugin.outbound.send import SendResource

    started = start({"phone": "+7 916 123 45 67", "channel_id": TELEGRAM}).json["id"]
    checked = SendResource._send_chat

    def moved_into_the_customers_chat_right_after(self, conn, chat_id, now, backlog=None):
        found = checked(self, conn, chat_id, now, backlog)
        with helpdesk.db.write() as tx:  # as another message's answer does (addresses.py), committed
            _ = tx.change_seq
            tx.conn.execute(sa.delete(helpdesk.tables.chats).where(helpdesk.tables.chats.c.id == started))
        return found

    monkeypatch.setattr(SendResource, "_send_chat", moved_into_the_customers_chat_right_after)
    result = send(started, {"text": "Hello"}, headers={"Idempotency-Key": key} if key else None)
    assert result.status_code == 404 and result.json["code"] == "chat_not_found", result.text
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0


def test_a_number_that_led_to_the_customers_chat_finds_that_chat_next_time(start, send, wazzup_answers, deliver,
                                                                          client, auth, helpdesk):
    # The customer's messages do not show their number (Telegram's privacy settings).
    item = incoming_message(channel_id=TELEGRAM, chat_id=TELEGRAM_ID, chat_type="telegram", text="Hi", name="Ivan")
    assert deliver(delivery(messages=[item])).status_code == 200
    [known] = client.simulate_get("/api/chats", headers=auth).json["items"]
    started = start({"phone": "+7 916 123 45 67", "channel_id": TELEGRAM}).json["id"]
    wazzup_answers(TELEGRAM_ID)
    assert send(started, {"text": "Your order is ready"}).json["chat_id"] == known["id"]

    again = start({"phone": "+7 916 123 45 67", "channel_id": TELEGRAM})
    assert again.status_code == 200, again.text
    assert (again.json["id"], again.json["phone"]) == (known["id"], "79161234567")
    assert _chat_count(helpdesk) == 1
