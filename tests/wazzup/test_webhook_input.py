"""What the webhook accepts: the secret, the body, odd items, channel updates, failures, fuzzing."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from host_stub.app import create_app
from host_stub.db import make_engine
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message, status_update

SECRET = "s3cret-webhook-token-0123456789"
CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"


@pytest.fixture
def secret(settings):
    """Set the secret; request it before ``deliver`` (the app is built from settings once)."""
    settings["WAZZUP24_WEBHOOK_SECRET"] = SECRET
    return SECRET


# ---------------------------------------------------------------- the secret


@pytest.mark.parametrize("how", ["query", "bearer"])
def test_delivery_with_the_secret_is_stored(secret, deliver, payload, wazzup_rows, how):
    kwargs = {"params": {"token": secret}} if how == "query" else {"headers": {"Authorization": f"Bearer {secret}"}}
    assert deliver(payload("incoming_text"), **kwargs).status_code == 200
    assert len(wazzup_rows.messages()) == 1


@pytest.mark.parametrize("kwargs", [
    {"params": {"token": SECRET}, "headers": {"Authorization": "Bearer the-accounts-crm-key-0001"}},
    {"params": {"token": "an-old-secret-0123456789"}, "headers": {"Authorization": f"Bearer {SECRET}"}},
])
def test_the_secret_is_found_in_the_url_or_the_header_whatever_the_other_holds(secret, deliver, payload,
                                                                                wazzup_rows, kwargs):
    """An account with a crmKey sends ``Authorization: Bearer <crmKey>`` with every delivery, to the
    URL set-webhook registered with our token."""
    assert deliver(payload("incoming_text"), **kwargs).status_code == 200
    assert len(wazzup_rows.messages()) == 1


@pytest.mark.parametrize("kwargs", [
    {},
    {"params": {"token": "wrong-secret-wrong-secret"}},
    {"headers": {"Authorization": "Bearer wrong-secret-wrong"}},
    {"headers": {"Authorization": f"Basic {SECRET}"}},
    {"params": {"token": SECRET[:-1]}},
    {"params": {"token": "секрет-не-тот-совсем"}},
])
def test_delivery_without_the_right_secret_is_refused_and_nothing_stored(secret, deliver, payload, wazzup_rows,
                                                                         kwargs):
    result = deliver(payload("incoming_text"), **kwargs)
    assert result.status_code == 401
    assert result.json["code"] == "unauthorized"
    assert SECRET not in result.text
    assert wazzup_rows.messages() == [] and wazzup_rows.table("quarantine") == []


def test_test_request_needs_the_secret_too_when_one_is_set(secret, deliver):
    assert deliver({"test": True}).status_code == 401
    assert deliver({"test": True}, params={"token": secret}).status_code == 200


def test_without_a_secret_deliveries_are_accepted_and_startup_warns(deliver, payload, caplog, config, pm, engine,
                                                                    http, clock):
    with caplog.at_level(logging.WARNING):
        create_app(config, pm, engine=engine, http=http, clock=clock)
    assert any("WAZZUP24_WEBHOOK_SECRET is not set" in r.getMessage() for r in caplog.records)
    assert deliver(payload("incoming_text")).status_code == 200


# ---------------------------------------------------------------- the body


def test_test_request_is_answered_at_once(deliver, payload, wazzup_rows):
    result = deliver(payload("test"))
    assert (result.status_code, result.json) == (200, {"ok": True})
    assert wazzup_rows.chats() == []


@pytest.mark.parametrize("body", [b"", b"not json", b"{\"messages\": [", b"\xff\xfe\x00", "[1, 2]", "\"text\"",
                                  "null", "42", b"[" * 100000 + b"]" * 100000])
def test_body_that_is_not_a_json_object_is_refused_with_400(deliver, wazzup_rows, body):
    result = deliver(body)
    assert result.status_code == 400
    assert result.json["code"] == "bad_request"
    assert wazzup_rows.table("quarantine") == []


def test_body_over_the_limit_is_refused_with_413(settings, pm, engine, http, clock, config):
    import dataclasses

    import falcon.testing

    small = dataclasses.replace(config, max_body_bytes=4096)
    client = falcon.testing.TestClient(create_app(small, pm, engine=engine, http=http, clock=clock))
    body = json.dumps(delivery(messages=[incoming_message(channel_id=CHANNEL, chat_id="79161234567",
                                                          text="ж" * 5000)]))
    result = client.simulate_post("/api/webhook", body=body, headers={"Content-Type": "application/json"})
    assert result.status_code == 413
    assert result.json["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_refused_with_413(settings, pm, engine, http, clock, config):
    import dataclasses
    import io

    from falcon import testing

    small = dataclasses.replace(config, max_body_bytes=4096)
    app = create_app(small, pm, engine=engine, http=http, clock=clock)
    body = json.dumps({"messages": [], "pad": "x" * 10000}).encode()
    environ = testing.create_environ(path="/api/webhook", method="POST", headers={"Content-Type": "application/json"})
    environ.pop("CONTENT_LENGTH", None)  # no Content-Length: only reading tells the size
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True  # as gunicorn marks a chunked request
    status = {}

    def start_response(s, headers, exc_info=None):
        status["code"] = int(s.split()[0])

    b"".join(app(environ, start_response))
    assert status["code"] == 413


def test_default_body_limit_is_32_mib_and_several_mb_of_cyrillic_fit(deliver, wazzup_rows, helpdesk):
    assert helpdesk.config.max_body_bytes == 32 * 1024 * 1024
    items = [incoming_message(channel_id=CHANNEL, chat_id="79161234567", text="Здравствуйте! " * 2800)
             for _ in range(100)]
    body = json.dumps(delivery(messages=items), ensure_ascii=False).encode()
    assert len(body) > 7_000_000
    result = deliver(body)
    assert result.status_code == 200 and result.json["new_messages"] == 100


def test_unknown_keys_and_fields_are_ignored(deliver, payload, wazzup_rows):
    body = payload("incoming_text")
    body["somethingNew"] = {"a": 1}
    body["messages"][0]["brandNewField"] = [1, 2, 3]
    body["messages"][0]["contact"]["nickname"] = "vanya"
    assert deliver(body).status_code == 200
    assert len(wazzup_rows.messages()) == 1 and wazzup_rows.table("quarantine") == []


# ---------------------------------------------------------------- odd items


@pytest.mark.parametrize("bend, reason_field", [
    (lambda i: i.pop("messageId"), "messageId"),
    (lambda i: i.update(chatId=12345), "chatId"),
    # An unknown status matters on an echo only (an incoming message is stored as inbound whatever it says).
    (lambda i: i.update(isEcho=True, status="teleported"), "status"),
    (lambda i: i.update(chatType="pigeon"), "chatType"),
    (lambda i: i.update(dateTime="yesterday"), "dateTime"),
    (lambda i: i.update(isEcho="perhaps"), "isEcho"),
    (lambda i: i.update(messageId="x" * 65), "messageId"),
    (lambda i: i.update(contact=42), "contact"),
])
def test_an_odd_item_is_quarantined_with_its_reason_and_the_rest_is_stored(deliver, wazzup_rows, bend,
                                                                          reason_field, caplog):
    items = [incoming_message(channel_id=CHANNEL, chat_id="79161234567", text=f"m{n}", message_id=f"id-{n}")
             for n in range(5)]
    bend(items[2])
    with caplog.at_level(logging.WARNING, logger="wazzup_plugin.inbound.store"):
        result = deliver(delivery(messages=items))
    assert result.status_code == 200
    assert result.json["quarantined"] == 1 and result.json["new_messages"] == 4
    assert sorted(m["wazzup_message_id"] for m in wazzup_rows.messages()) == ["id-0", "id-1", "id-3", "id-4"]
    [q] = wazzup_rows.table("quarantine")
    assert q["section"] == "messages"
    assert reason_field in json.loads(q["reason"])
    assert json.loads(q["item"]) == items[2]
    assert any(r.getMessage() == "webhook item quarantined" for r in caplog.records)


def test_odd_status_items_and_sections_are_quarantined(deliver, wazzup_rows):
    body = {"statuses": [{"messageId": "WZ-1", "status": "vanished"}, "not an object"],
            "channelsUpdates": {"not": "a list"},
            "messages": [incoming_message(channel_id=CHANNEL, chat_id="79161234567", text="ok")]}
    result = deliver(body)
    assert result.status_code == 200
    quarantined = wazzup_rows.table("quarantine")
    assert sorted(q["section"] for q in quarantined) == ["channelsUpdates", "statuses", "statuses"]
    assert {q["wazzup_message_id"] for q in quarantined} == {"WZ-1", None}
    assert len(wazzup_rows.messages()) == 1


def test_a_redelivered_odd_item_is_quarantined_once(deliver, wazzup_rows):
    odd = {**incoming_message(channel_id=CHANNEL, chat_id="79161234567", message_id="odd-1"), "chatType": "pigeon"}
    body = delivery(messages=[odd, incoming_message(channel_id=CHANNEL, chat_id="79161234567", message_id="ok-1")],
                    statuses=[{"messageId": "WZ-1", "status": "vanished"}])
    for _ in range(3):  # at least once: Wazzup may send the same delivery again
        assert deliver(body).status_code == 200
    # The same item twice in one delivery, with its keys in another order, is still the one item.
    assert deliver({"messages": [dict(reversed(list(odd.items()))), odd]}).status_code == 200
    quarantined = wazzup_rows.table("quarantine")
    assert sorted((q["section"], q["wazzup_message_id"]) for q in quarantined) == [
        ("messages", "odd-1"), ("statuses", "WZ-1")]
    assert len(wazzup_rows.messages()) == 1


def test_odd_items_that_differ_in_any_field_are_each_kept(deliver, wazzup_rows):
    odd = {**incoming_message(channel_id=CHANNEL, chat_id="79161234567", message_id="odd-1"), "chatType": "pigeon"}
    assert deliver(delivery(messages=[odd, {**odd, "text": "another text"}])).status_code == 200
    assert deliver({"channelsUpdates": [odd]}).status_code == 200  # the same item in another section
    assert sorted(q["section"] for q in wazzup_rows.table("quarantine")) == ["channelsUpdates", "messages", "messages"]


def test_text_with_nul_and_lone_surrogates_is_stored_cleaned(deliver, wazzup_rows):
    raw = ('{"messages": [{"messageId": "nul-1", "channelId": "%s", "chatType": "whatsapp", "chatId": "79161234567",'
           ' "type": "text", "text": "a\\u0000b\\ud800c", "contact": {"name": "N\\u0000ame"}}]}' % CHANNEL)
    assert deliver(raw).status_code == 200
    message = wazzup_rows.message("nul-1")
    assert message["text"] == "ab?c"
    assert wazzup_rows.chats()[0]["title"] == "Name"


# ---------------------------------------------------------------- other sections


def test_channels_updates_are_stored_and_an_older_update_never_wins(deliver, payload, wazzup_rows):
    deliver(payload("channels_updates"))
    channels = {c["channel_id"]: c for c in wazzup_rows.table("channels")}
    assert channels["d9e5721c-ce2b-444f-9627-60a8129d7e1f"]["state"] == "qr"
    assert (channels[CHANNEL]["state"], channels[CHANNEL]["tier"]) == ("active", "TIER_1K")

    deliver({"channelsUpdates": [{"channelId": CHANNEL, "state": "disabled", "timestamp": 1603977100000}]})
    assert {c["channel_id"]: c["state"] for c in wazzup_rows.table("channels")}[CHANNEL] == "active"
    deliver({"channelsUpdates": [{"channelId": CHANNEL, "state": "unauthorized", "timestamp": 1703977100000}]})
    assert {c["channel_id"]: c["state"] for c in wazzup_rows.table("channels")}[CHANNEL] == "unauthorized"


@pytest.mark.parametrize("name", ["create_contact", "create_deal", "template_status"])
def test_contact_deal_and_template_notices_are_answered_200_and_logged(deliver, payload, wazzup_rows, caplog, name):
    with caplog.at_level(logging.INFO, logger="wazzup_plugin.inbound.webhook"):
        result = deliver(payload(name))
    assert result.status_code == 200
    assert any(getattr(r, "context", {}).get("kind") == next(iter(payload(name))) for r in caplog.records)
    assert wazzup_rows.chats() == []


def test_each_delivery_is_logged_with_counts_chat_ids_and_message_ids(deliver, payload, caplog):
    with caplog.at_level(logging.INFO, logger="wazzup_plugin.inbound.webhook"):
        deliver(payload("messages_and_statuses"))
    [record] = [r for r in caplog.records if r.getMessage() == "webhook delivery stored"]
    assert record.context["new_messages"] == 2
    assert record.context["parked"] == 2
    assert len(record.context["chat_ids"]) == 1
    assert record.context["wazzup_message_ids"] == ["d0c1a7e2-1111-4c4c-9a9a-000000000001",
                                                    "d0c1a7e2-1111-4c4c-9a9a-000000000002"]


# ---------------------------------------------------------------- failures


def test_database_unavailable_answers_503(config, pm, http, clock, payload, tmp_path):
    import falcon.testing

    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}")
    client = falcon.testing.TestClient(create_app(config, pm, engine=engine, http=http, clock=clock))
    result = client.simulate_post("/api/webhook", json=payload("incoming_text"))
    assert result.status_code == 503
    assert result.headers.get("Retry-After")


def test_a_failure_mid_delivery_leaves_nothing_half_stored(deliver, payload, wazzup_rows, engine):
    def fail_on_message_insert(conn, cursor, statement, parameters, context, executemany):
        # After the chat is created; on PostgreSQL the Wazzup row goes in with its message, in one statement.
        if "INSERT INTO WAZZUP_MESSAGES" in statement.upper():
            raise sa.exc.OperationalError(statement, parameters, Exception("connection lost"))

    sa.event.listen(engine, "before_cursor_execute", fail_on_message_insert)
    try:
        result = deliver(payload("incoming_text"))
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_on_message_insert)
    assert result.status_code == 503
    assert wazzup_rows.chats() == [] and wazzup_rows.messages() == []
    assert deliver(payload("incoming_text")).status_code == 200  # Wazzup's redelivery is stored whole
    assert len(wazzup_rows.messages()) == 1 and len(wazzup_rows.chats()) == 1


def test_one_delivery_uses_a_fixed_number_of_statements_whatever_its_size(deliver, engine):
    counts = {}

    def count(conn, cursor, statement, parameters, context, executemany):
        counts["n"] = counts.get("n", 0) + 1

    def statements_for(n, prefix):
        items = [incoming_message(channel_id=CHANNEL, chat_id=f"7916{prefix}{k % 5:05d}", text="hi",
                                  message_id=f"{prefix}-{k}") for k in range(n)]
        statuses = [status_update(message_id=f"{prefix}-s{k}", status="sent") for k in range(n)]
        counts["n"] = 0
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert deliver(delivery(messages=items, statuses=statuses)).status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        return counts["n"]

    statements_for(3, "warm")  # first write of the app (change counter row, housekeeping)
    assert statements_for(10, "a") == statements_for(200, "b")


# ---------------------------------------------------------------- fuzzing

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=6)
MESSAGE_FIELDS = ["channelId", "chatType", "chatId", "dateTime", "type", "isEcho", "contact", "text", "contentUri",
                  "status", "authorName", "isEdited", "isDeleted", "oldInfo", "error"]


@st.composite
def message_items(draw):
    item = incoming_message(channel_id=draw(st.sampled_from([CHANNEL, "ch-2"])),
                            chat_id=draw(st.sampled_from(["79161234567", "79990001122", "group@g.us"])),
                            text=draw(st.text(max_size=30)), message_id=f"fz-{uuid.uuid4()}",
                            type=draw(st.sampled_from(["text", "image", "geo", "sticker", "missing_call"])),
                            is_echo=draw(st.booleans()))
    for name in draw(st.lists(st.sampled_from(MESSAGE_FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            item.pop(name, None)
        else:
            item[name] = draw(values)
    return item


@st.composite
def status_items(draw):
    item = status_update(message_id=f"fz-{uuid.uuid4()}", status=draw(st.sampled_from(
        ["sent", "delivered", "read", "error", "edited", "SENT", "lost"])))
    for name in draw(st.lists(st.sampled_from(["timestamp", "status", "error"]), max_size=2, unique=True)):
        item[name] = draw(values)
    return item


@hsettings(max_examples=60, deadline=None, derandomize=True, database=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(messages=st.lists(message_items(), max_size=6), statuses=st.lists(status_items(), max_size=4),
       extra=st.dictionaries(st.text(max_size=8), values, max_size=2))
def test_any_payload_shape_gives_no_5xx_and_every_item_is_stored_parked_or_quarantined(
        deliver, helpdesk, wazzup_rows, messages, statuses, extra):
    body = {**{k: v for k, v in extra.items() if k not in ("test", "messages", "statuses")},
            "messages": messages, "statuses": statuses}
    result = deliver(body)
    assert result.status_code == 200, result.text

    ids = [i["messageId"] for i in messages] + [i["messageId"] for i in statuses]
    with helpdesk.db.read() as conn:
        t = wazzup_rows.t
        stored = set(conn.execute(sa.select(t["messages"].c.wazzup_message_id)
                                  .where(t["messages"].c.wazzup_message_id.in_(ids))).scalars())
        parked = set(conn.execute(sa.select(t["parked"].c.wazzup_message_id)
                                  .where(t["parked"].c.wazzup_message_id.in_(ids))).scalars())
        quarantined = set(conn.execute(sa.select(t["quarantine"].c.wazzup_message_id)
                                       .where(t["quarantine"].c.wazzup_message_id.in_(ids))).scalars())
    for item in messages:
        assert item["messageId"] in stored | parked | quarantined, item
    for item in statuses:
        assert item["messageId"] in parked | quarantined, item


@pytest.mark.parametrize("uri", ["http://[broken/photo.jpg", "https://[::1/a.png", "javascript:alert(1)"])
def test_unparseable_media_link_is_dropped_and_the_message_still_stored(deliver, wazzup_rows, uri):
    # An unclosed IPv6 bracket makes urllib raise: it must cost the link, never the delivery.
    item = incoming_message(channel_id="b96a353b-06f5-4cac-8413-ba1d8e93f981", chat_id="79161234567",
                            content_uri=uri, message_id="WZ-odd-link", avatar_uri=uri)
    result = deliver(delivery(messages=[item]))
    assert result.status_code == 200
    message = wazzup_rows.message("WZ-odd-link")
    assert message["content_uri"] is None


def _set_path(item: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    target = item
    for name in parents:
        target = target.setdefault(name, {})
    target[last] = value
    return item


ODD_TEXT = {"nul": "x\u0000y", "lone surrogate": "x\ud800y"}
MESSAGE_PATHS = ["messageId", "channelId", "chatId", "chatType", "type", "text", "status", "contentUri",
                 "authorName", "authorId", "crmMessageId", "contact.name", "contact.avatarUri", "contact.phone",
                 "contact.username", "error.error", "error.description", "oldInfo.oldText",
                 "quotedMessage.messageId", "extraField"]


@pytest.mark.parametrize("odd", ODD_TEXT)
@pytest.mark.parametrize("path", MESSAGE_PATHS)
def test_a_nul_or_lone_surrogate_in_any_field_costs_at_most_its_own_item(deliver, wazzup_rows, path, odd):
    """Either character fails a whole transaction in some database (PostgreSQL refuses NUL in text,
    and no driver writes a lone surrogate): the item is cleaned, dropped to a placeholder or
    quarantined, and the delivery's other message is stored."""
    value = "https://cdn.example/" + ODD_TEXT[odd] + ".png" if path.endswith(("Uri", "uri")) else ODD_TEXT[odd]
    odd_item = _set_path(incoming_message(channel_id=CHANNEL, chat_id="79161234567", message_id="odd-1",
                                          text="hello", is_echo=path in ("authorName", "authorId")), path, value)
    if path == "type":
        odd_item.pop("text")  # an unknown type without text is shown with a placeholder naming the type
    good = incoming_message(channel_id=CHANNEL, chat_id="79990001122", message_id="good-1", text="fine")
    result = deliver(json.dumps(delivery(messages=[odd_item, good])))  # as Wazzup sends it: \u escapes
    assert result.status_code == 200, result.text
    assert wazzup_rows.message("good-1")["text"] == "fine"
    stored = {r["wazzup_message_id"]: r for r in wazzup_rows.messages()}
    quarantined = wazzup_rows.table("quarantine")
    assert len(stored) + len(quarantined) == 2
    for row in stored.values():
        for text in row.values():
            assert not isinstance(text, str) or ("\x00" not in text and "\ud800" not in text)


@pytest.mark.parametrize("odd", ODD_TEXT)
def test_a_nul_or_lone_surrogate_in_a_status_is_parked_or_quarantined_as_received(deliver, wazzup_rows, odd):
    statuses = [{**status_update(message_id="unknown-1", status="delivered"), "note": ODD_TEXT[odd]},
                status_update(message_id="unknown-2", status=ODD_TEXT[odd])]
    result = deliver(json.dumps(delivery(statuses=statuses)))
    assert result.status_code == 200, result.text
    (parked,) = wazzup_rows.table("parked")
    assert json.loads(parked["item"])["note"] == ODD_TEXT[odd]  # kept exactly, escaped if it must be
    (quarantined,) = wazzup_rows.table("quarantine")
    assert json.loads(quarantined["item"])["status"] == ODD_TEXT[odd]
