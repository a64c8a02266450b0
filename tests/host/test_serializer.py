"""Chats and messages dump to the same JSON bytes as marshmallow's ``schema.dump``, only cheaper."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from dataclasses import dataclass

import falcon.media
import falcon.testing
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, post_dump, pre_dump

from host_stub import json_media
from host_stub.models import Message
from host_stub.schemas import ChatSchema, MessageSchema, extend_schema
from host_stub.serializer import CompiledDump
from wazzup_plugin.fields import chat_fields as wazzup_chat_fields
from wazzup_plugin.fields import message_fields as wazzup_message_fields

_JSON = falcon.media.JSONHandler(dumps=json_media.dumps)  # what the API answers with


def _bytes(obj) -> bytes:
    return _JSON.serialize(obj, falcon.MEDIA_JSON)


def _assert_same_json(schema: Schema, rows: list) -> None:
    """The compiled dump gives marshmallow's output: same keys in the same order, same values, same types."""
    expected = schema.dump([dict(r) for r in rows], many=True)
    assert _bytes(CompiledDump(schema)(rows)) == _bytes(expected)


def _marshmallow_page(helpdesk, conn, rows, schema_class, field_sets) -> list[dict]:
    """A page as the serializer made it before it was compiled: plugin values merged, then ``schema.dump``."""
    items = [dict(r) for r in rows]
    ids = [item["id"] for item in items]
    for fs in field_sets:
        extra = (fs.load(conn, ids) or {}) if ids else {}
        for item in items:
            values = extra.get(item["id"], {})
            for name in fs.fields:
                item[name] = values.get(name)
    return schema_class(many=True).dump(items)


# ---------------------------------------------------------------- rows the app stores


_DELIVERIES = ["incoming_text", "incoming_image", "incoming_audio", "incoming_document", "incoming_geo",
               "incoming_vcard", "incoming_whatsgroup", "incoming_unsupported", "echo_from_phone",
               "edited", "deleted", "messages_and_statuses", "statuses_error", "statuses_edited"]


def test_pages_from_stored_deliveries_are_byte_identical_to_marshmallow(helpdesk, client, auth, deliver, payload,
                                                                         make_chat, make_message):
    for name in _DELIVERIES:
        assert deliver(payload(name)).status_code == 200, name
    internal = make_chat(type="internal", title="Заметки 📝", phone=None)
    make_message(internal, text=None, direction="out", status="sent")
    serializer, regs = helpdesk.serializer, helpdesk.registrations
    chats_t, messages_t = helpdesk.tables.chats, helpdesk.tables.messages
    with helpdesk.db.read() as conn:
        chats = conn.execute(sa.select(chats_t).order_by(chats_t.c.id)).mappings().all()
        messages = conn.execute(sa.select(messages_t).order_by(messages_t.c.id)).mappings().all()
        assert len(chats) >= 3 and len(messages) >= 8
        assert _bytes(serializer.chats(conn, chats)) == _bytes(
            _marshmallow_page(helpdesk, conn, chats, serializer.chat_schema, regs.chat_fields))
        assert _bytes(serializer.messages(conn, messages)) == _bytes(
            _marshmallow_page(helpdesk, conn, messages, serializer.message_schema, regs.message_fields))
        assert serializer.chats(conn, []) == [] and serializer.messages(conn, []) == []
    # and the API serves exactly that: the page's items, to the byte
    page = client.simulate_get("/api/chats", params={"limit": 200}, headers=auth)
    with helpdesk.db.read() as conn:
        rows = conn.execute(sa.select(chats_t).order_by(chats_t.c.last_activity_at.desc(), chats_t.c.id.desc())
                            ).mappings().all()
        expected = _marshmallow_page(helpdesk, conn, rows, serializer.chat_schema, regs.chat_fields)
    assert page.content.startswith(b'{"items":' + _bytes(expected))
    for chat in chats:
        history = client.simulate_get(f"/api/chats/{chat['id']}/messages", params={"limit": 200}, headers=auth)
        with helpdesk.db.read() as conn:
            rows = conn.execute(sa.select(messages_t).where(messages_t.c.chat_id == chat["id"])
                                .order_by(messages_t.c.id)).mappings().all()
            expected = _marshmallow_page(helpdesk, conn, rows, serializer.message_schema, regs.message_fields)
        assert history.content.startswith(b'{"items":' + _bytes(expected))


def test_host_and_wazzup_fields_are_all_formatted_without_marshmallow(helpdesk):
    for dump in (helpdesk.serializer._chat_dump, helpdesk.serializer._message_dump):
        kinds = {name: kind for _, name, kind, _ in dump.plan}
        assert set(kinds.values()) == {"int", "text", "iso"} | ({"raw"} if "wazzup_is_echo" in kinds else set())
        assert kinds["created_at"] == "iso" and kinds["id"] == "int"


# ---------------------------------------------------------------- generated rows


def _wazzup_schema(base, fieldsets_factory, name):
    from wazzup_plugin.tables import define_tables

    fs = fieldsets_factory(define_tables(sa.MetaData()))
    return extend_schema(base, fs.fields, name)


CHAT_OUT = _wazzup_schema(ChatSchema, wazzup_chat_fields, "Chat")
MESSAGE_OUT = _wazzup_schema(MessageSchema, lambda t: wazzup_message_fields(t, Message.__table__), "Message")

_zones = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=3)),
                          dt.timezone(dt.timedelta(hours=-5, minutes=-30)), None])
# As the databases return them: aware UTC (the column type), naive (a raw SQLite value), other offsets.
# A stored stamp is a UTC instant: a local time within a day of year 1 or 9999 has none (0001-01-01
# 00:00+03:00 is before year 1 in UTC), and the webhook refuses times outside 1970-9000 anyway.
_datetimes = st.builds(lambda d, tz: d.replace(tzinfo=tz),
                       st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)), _zones)
# Any unicode a database can hold: every plane, control characters, quotes; not lone surrogates.
_texts = st.text(st.characters(blacklist_categories=("Cs",)))


def _value(field):
    if isinstance(field, fields.Integer):
        return st.one_of(st.none(), st.integers(min_value=-2**63, max_value=2**63))
    if isinstance(field, fields.DateTime):
        return st.one_of(st.none(), _datetimes)
    if isinstance(field, fields.Boolean):
        return st.one_of(st.none(), st.booleans())
    return st.one_of(st.none(), _texts)


def _rows(schema_class):
    columns = {name: _value(field) for name, field in schema_class._declared_fields.items()}
    return st.lists(st.fixed_dictionaries(columns), max_size=5)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows(CHAT_OUT))
def test_generated_chat_rows_dump_like_marshmallow(rows):
    _assert_same_json(CHAT_OUT(many=True), rows)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows(MESSAGE_OUT))
def test_generated_message_rows_dump_like_marshmallow(rows):
    _assert_same_json(MESSAGE_OUT(many=True), rows)


def _stored_sqlite_text(value):
    """A value as SQLite stores it, for date columns (read as stored text by the pages)."""
    from sqlalchemy.dialects import sqlite

    from host_stub.models import UTCDateTime

    if not isinstance(value, dt.datetime):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
    return UTCDateTime().dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())(aware)


def _assert_sequences_dump_like_marshmallow(schema: Schema, rows: list, shuffle) -> None:
    """Rows as a page fetches them (sequences in the order of the select's keys, SQLite's stamps as
    stored text) dump exactly as marshmallow dumps the rows as mappings of what the types read."""
    from host_stub.resources.pages import SQLITE_STAMPS

    stamps = {name for name, field in schema.fields.items() if isinstance(field, fields.DateTime)}
    keys = shuffle([*schema.fields, "page_change_seq"])
    read = [{k: (_stored_sqlite_text(v) if k in stamps else v) for k, v in row.items()} for row in rows]
    expected = schema.dump([{k: (SQLITE_STAMPS.value(v) if k in stamps and v is not None else v)
                             for k, v in row.items()} for row in read], many=True)
    sequences = [tuple(row.get(k, 1) for k in keys) for row in read]
    got = CompiledDump(schema).sequences(tuple(keys), sequences, {k: SQLITE_STAMPS for k in stamps})
    assert _bytes(got) == _bytes(expected)
    plain = [tuple(row.get(k, 1) for k in keys) for row in rows]  # PostgreSQL: datetimes, nothing stored
    assert _bytes(CompiledDump(schema).sequences(tuple(keys), plain, {})) == _bytes(schema.dump(rows, many=True))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows(CHAT_OUT), data=st.data())
def test_fetched_chat_rows_dump_like_marshmallow(rows, data):
    _assert_sequences_dump_like_marshmallow(CHAT_OUT(many=True), rows, lambda keys: data.draw(st.permutations(keys)))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows(MESSAGE_OUT), data=st.data())
def test_fetched_message_rows_dump_like_marshmallow(rows, data):
    _assert_sequences_dump_like_marshmallow(MESSAGE_OUT(many=True), rows, lambda keys: data.draw(st.permutations(keys)))


def test_fetched_rows_that_need_a_mapping_are_not_dumped_from_sequences():
    keys = tuple(_Anything._declared_fields)
    assert CompiledDump(_Anything(many=True)).sequences(keys, [], {}) is None  # marshmallow looks fields up by name
    chat = CompiledDump(CHAT_OUT(many=True))
    assert chat.sequences(("id", "title"), [(1, "x")], {}) is None  # a field the row lacks
    assert CompiledDump(_Stamped(many=True)).sequences(("at", "iso_at"), [], {"at": object()}) is None  # not ISO


_odd = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                 st.decimals(allow_nan=False, allow_infinity=False, places=3), _texts,
                 _texts.map(lambda s: s.encode("utf-8")), _datetimes, st.dates())


def _tagged_json(obj) -> str:
    """JSON that also shows values JSON has no type for (Decimal, bytes, dates) by type and repr."""
    return json.dumps(obj, ensure_ascii=False, default=lambda o: f"{type(o).__name__}:{o!r}")


class _Known(Schema):
    count = fields.Integer()
    label = fields.String(allow_none=True)
    flag = fields.Boolean()
    at = fields.AwareDateTime()
    naive_at = fields.NaiveDateTime()
    plain_at = fields.DateTime()


def _same_or_same_error(schema, rows):
    try:
        expected = schema.dump(rows, many=True)
    except Exception as exc:  # marshmallow cannot format the value: neither can the compiled dump
        with pytest.raises(type(exc)):
            CompiledDump(schema)(rows)
        return
    assert _tagged_json(CompiledDump(schema)(rows)) == _tagged_json(expected)


@settings(max_examples=200)
@given(rows=st.lists(st.fixed_dictionaries({name: _odd for name in _Known._declared_fields}), max_size=4))
def test_values_of_other_types_are_formatted_by_the_field_as_marshmallow_would(rows):
    _same_or_same_error(_Known(many=True), rows)


# ---------------------------------------------------------------- fields the compiled dump does not know


class _Address(Schema):
    city = fields.String()


class _Tagged(fields.String):
    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"#{value}"


class _Anything(Schema):
    id = fields.Integer(as_string=True)
    at = fields.DateTime(format="%Y/%m/%d %H:%M")
    stamp = fields.AwareDateTime(format="timestamp")
    day = fields.Date()
    price = fields.Decimal(places=2, as_string=True)
    ratio = fields.Float()
    tags = fields.List(fields.String())
    meta = fields.Dict(keys=fields.String(), values=fields.Integer())
    address = fields.Nested(_Address, allow_none=True)
    city = fields.String(attribute="address.city")  # a dotted path
    renamed = fields.String(data_key="shown-as", attribute="stored_as")
    tagged = _Tagged()
    email = fields.Email()
    secret = fields.String(load_only=True)
    shout = fields.Method("_shout")
    constant = fields.Constant("c")
    kind = fields.Function(lambda obj: type(obj).__name__)
    fallback = fields.String(dump_default="none given")

    def _shout(self, obj):
        return (obj.get("stored_as") or "").upper()


def _anything_row(i):
    return {"id": i, "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "stamp":
            dt.datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=dt.timezone.utc), "day": dt.date(2026, 1, i + 1),
            "price": decimal.Decimal("1.005") * i, "ratio": i / 3, "tags": ["a", "б"], "meta": {"x": i},
            "address": {"city": "Москва"} if i % 2 else None if i else {"city": None},
            "stored_as": f"name {i}", "tagged": "t", "email": "a@b.c", "secret": "s", "fallback": None}


def test_fields_of_any_other_type_are_dumped_by_marshmallow_with_the_same_result():
    rows = [_anything_row(i) for i in range(4)]
    rows[3].pop("fallback")  # missing: the dump default applies
    rows[2].pop("tags")  # missing, no default: the key is left out
    _assert_same_json(_Anything(many=True), rows)
    plan = {name: kind for _, name, kind, _ in CompiledDump(_Anything(many=True)).plan}
    assert plan["id"] == "formatted" and plan["at"] == "formatted" and plan["renamed"] == "text"
    assert {plan[n] for n in ("day", "price", "address", "city", "tagged", "shout", "kind")} == {"marshmallow"}


def test_only_and_exclude_of_the_schema_instance_are_kept():
    rows = [_anything_row(1)]
    _assert_same_json(_Anything(many=True, only=("id", "renamed", "shout")), rows)
    _assert_same_json(_Anything(many=True, exclude=("tags", "address")), rows)


class _Stamped(Schema):
    class Meta:
        datetimeformat = "timestamp"

    at = fields.AwareDateTime()
    iso_at = fields.DateTime(format="iso8601")


def test_a_schema_wide_datetime_format_is_kept():
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone.utc)
    rows = [{"at": at, "iso_at": at}, {"at": None, "iso_at": at.replace(tzinfo=None)}]
    _assert_same_json(_Stamped(many=True), rows)
    assert [kind for *_, kind, _ in CompiledDump(_Stamped(many=True)).plan] == ["formatted", "iso"]


class _Hooked(Schema):
    id = fields.Integer()
    text = fields.String()

    @pre_dump
    def _shorten(self, data, **kwargs):
        return {**data, "text": data["text"][:3]}

    @post_dump
    def _mark(self, data, **kwargs):
        return {**data, "hooked": True}


def test_a_schema_with_dump_hooks_is_dumped_by_marshmallow_whole():
    dump = CompiledDump(_Hooked(many=True))
    assert dump.plan is None
    assert dump([{"id": 1, "text": "hello"}]) == [{"id": 1, "text": "hel", "hooked": True}]


def test_a_row_missing_a_host_column_is_dumped_by_marshmallow():
    row = {"id": 1, "type": "wazzup", "title": "x"}  # everything else missing
    _assert_same_json(CHAT_OUT(many=True), [row, {**row, "phone": "1"}])


def test_sqlalchemy_row_mappings_dump_like_dicts(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT 7 AS id, 'тест' AS title, NULL AS phone")).mappings().all()
    _assert_same_json(CHAT_OUT(many=True, only=("id", "title", "phone")), rows)


# ---------------------------------------------------------------- plugin fields through the hook


@dataclass(frozen=True)
class _FieldSet:
    entity: str
    fields: dict
    load: object


def test_plugin_fields_of_any_marshmallow_type_are_served_as_marshmallow_dumps_them(build_app, pm_with, make_plugin,
                                                                                   make_chat, make_message, auth):
    def load(conn, ids):
        return {i: {"sms_price": decimal.Decimal(i) / 3, "sms_day": dt.date(2026, 1, 1), "sms_tags": ["a", "ж"],
                    "sms_sent_at": dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone.utc), "sms_count": i,
                    "sms_flag": i % 2 == 0} for i in ids if i % 3}

    message_fields = {"sms_price": fields.Decimal(places=2, as_string=True), "sms_day": fields.Date(),
                      "sms_tags": fields.List(fields.String()), "sms_sent_at": fields.AwareDateTime(),
                      "sms_count": fields.Integer(), "sms_flag": fields.Boolean(),
                      "sms_shown": fields.String(data_key="sms-shown")}
    plugin = make_plugin("sms", register_fields=lambda helpdesk: [
        _FieldSet("message", message_fields, load),
        _FieldSet("chat", {"sms_note": fields.Function(lambda chat: f"chat {chat['id']}")}, lambda conn, ids: {})])
    app = build_app(pm_with(plugin))
    client, helpdesk = falcon.testing.TestClient(app), app.helpdesk
    chat_id = make_chat(title="SMS")
    for i in range(7):
        make_message(chat_id, text=f"m{i}")
    page = client.simulate_get(f"/api/chats/{chat_id}/messages", headers=auth)
    chats = client.simulate_get("/api/chats", headers=auth)
    serializer, regs = helpdesk.serializer, helpdesk.registrations
    messages_t, chats_t = helpdesk.tables.messages, helpdesk.tables.chats
    with helpdesk.db.read() as conn:
        rows = conn.execute(sa.select(messages_t).order_by(messages_t.c.id)).mappings().all()
        expected = _marshmallow_page(helpdesk, conn, rows, serializer.message_schema, regs.message_fields)
        chat_rows = conn.execute(sa.select(chats_t)).mappings().all()
        expected_chats = _marshmallow_page(helpdesk, conn, chat_rows, serializer.chat_schema, regs.chat_fields)
    assert page.content.startswith(b'{"items":' + _bytes(expected))
    assert chats.content.startswith(b'{"items":' + _bytes(expected_chats))
    assert page.json["items"][0]["sms_price"] == "0.33" and page.json["items"][2]["sms_price"] is None
    assert chats.json["items"][0]["sms_note"] == f"chat {chat_id}"
