"""Hypothesis on webhook deliveries: no 5xx, and every item stored, parked or quarantined — never half.

Deliveries are built from the documented shapes (``sandbox/deliveries.py``), then items are bent:
fields dropped, replaced by JSON of another type, enum values invented, unknown keys added. Each
item carries a fresh id (or, whose id is not one, a fresh unknown key: an odd item delivered again
is quarantined once), so the accounting is exact: after each delivery, the number of new stored
messages plus new quarantined message items equals the number of message items sent, and likewise
for statuses (parked, because their messages are unknown, or quarantined).
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wazzup_plugin.sandbox.deliveries import incoming_message, status_update
from wazzup_plugin.state import get_state

from fire_support import CHANNEL_ID

pytestmark = [pytest.mark.slow]

# 2,000 examples on SQLite; PostgreSQL (when CI gives it) runs a shorter pass of the same properties.
EXAMPLES = {"sqlite": int(os.environ.get("FIRE_FUZZ_EXAMPLES", 2000)), "postgres": 300}
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.fixture
def engine(database_url, fresh_tables):
    """The suite's engine, but SQLite without fsync: thousands of tiny transactions, durability not under test."""
    from host_stub.db import make_engine

    engine = make_engine(database_url, sqlite_synchronous="OFF")
    fresh_tables(engine)
    yield engine
    engine.dispose()

json_scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=8)
MESSAGE_TYPES = ["text", "image", "video", "audio", "document", "vcard", "geo", "missing_call",
                 "wapi_template", "unsupported", "sticker", "poll"]
CHAT_TYPES = ["whatsapp", "whatsgroup", "telegram", "instagram", "viber", "max", "newmessenger"]


@st.composite
def bent(draw, item: dict, keep: str) -> dict:
    """The item, maybe with fields removed, retyped or invented (never ``keep``, the accounting key)."""
    item = dict(item)
    for name in draw(st.lists(st.sampled_from(sorted(k for k in item if k != keep)), max_size=3, unique=True)):
        if draw(st.booleans()):
            item.pop(name)
        else:
            item[name] = draw(json_values)
    if draw(st.booleans()):
        item[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    return item


@st.composite
def message_items(draw) -> dict:
    chat = draw(st.sampled_from(["79160000001", "79160000002", "120363025246125486@g.us", "ivan_petrov"]))
    kind = draw(st.sampled_from(MESSAGE_TYPES))
    item = incoming_message(
        channel_id=draw(st.sampled_from([CHANNEL_ID, "c2a5f1de-0000-4000-8000-00000000000c"])),
        chat_id=chat, chat_type=draw(st.sampled_from(CHAT_TYPES)), type=kind,
        name=draw(st.text(max_size=40)),
        text=draw(st.text(max_size=80)) if kind == "text" else None,
        content_uri=(draw(st.sampled_from(["https://store.wazzup24.com/f/1?filename=a.jpg", "javascript:alert(1)",
                                           "ftp://x/y", ""])) if kind != "text" else None),
        message_id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4)),
        avatar_uri=draw(st.sampled_from([None, "https://store.wazzup24.com/a", "data:image/png;base64,AA"])),
        is_echo=draw(st.booleans()) and draw(st.booleans()),
    )
    if draw(st.integers(0, 9)) == 0:
        item.update(isEdited=True, oldInfo={"oldText": draw(st.text(max_size=20))})
    if draw(st.integers(0, 9)) == 0:
        item.update(isDeleted=True)
    if draw(st.integers(0, 19)) == 0:
        item["messageId"] = draw(json_values.filter(lambda v: not isinstance(v, str)))
    return draw(bent(item, keep="messageId")) if draw(st.booleans()) else item


@st.composite
def status_items(draw) -> dict:
    status = draw(st.sampled_from(["sent", "delivered", "read", "error", "edited", "exploded"]))
    item = status_update(message_id=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)), version=4)), status=status,
                         error={"error": "BAD_CONTACT", "description": "no such account"} if status == "error" else None)
    return draw(bent(item, keep="messageId")) if draw(st.booleans()) else item


deliveries = st.fixed_dictionaries(
    {},
    optional={
        "messages": st.lists(message_items(), max_size=6),
        "statuses": st.lists(status_items(), max_size=4),
        "channelsUpdates": st.lists(st.fixed_dictionaries({"channelId": st.just(CHANNEL_ID),
                                                           "state": st.sampled_from(["active", "qr", "mystery"])}),
                                    max_size=2) | json_values,
        "createContact": json_values,
        "templateStatus": json_values,
        "test": st.booleans(),
    },
)


def _accounting(helpdesk, message_ids: set[str], status_ids: set[str]) -> tuple[int, int, int, int, int]:
    tables = get_state(helpdesk).tables
    wm, parked, q = tables["messages"], tables["parked"], tables["quarantine"]
    with helpdesk.db.read() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(wm)
                              .where(wm.c.wazzup_message_id.in_(message_ids or {""}))).scalar()
        parked_n = conn.execute(sa.select(sa.func.count(sa.distinct(parked.c.wazzup_message_id)))
                                .where(parked.c.wazzup_message_id.in_(status_ids or {""}))).scalar()
        q_messages = conn.execute(sa.select(sa.func.count()).select_from(q).where(q.c.section == "messages")).scalar()
        q_statuses = conn.execute(sa.select(sa.func.count()).select_from(q).where(q.c.section == "statuses")).scalar()
        host_messages = conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar()
    return stored, parked_n, q_messages, q_statuses, host_messages


def test_fuzzed_deliveries_never_fail_and_never_half_store(client, helpdesk, backend):
    @settings(max_examples=EXAMPLES[backend], deadline=None, derandomize=True, database=None,
              suppress_health_check=HEALTH)
    @given(body=deliveries)
    def check(body):
        messages = body.get("messages", [])
        statuses = body.get("statuses", [])
        for item in messages + statuses:  # fresh ids: every example's items are new to the database
            if isinstance(item["messageId"], str):
                item["messageId"] = str(uuid.uuid4())
            else:  # an id that is not one: a key of its own keeps the item new (a repeat is quarantined once)
                item["fuzzCopy"] = str(uuid.uuid4())
        message_ids = {m["messageId"] for m in messages if isinstance(m["messageId"], str)}
        status_ids = {s["messageId"] for s in statuses if isinstance(s["messageId"], str)}
        _, _, q_m0, q_s0, host0 = _accounting(helpdesk, message_ids, status_ids)

        result = client.simulate_post("/api/webhook", body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                      headers={"Content-Type": "application/json"})

        assert result.status_code == 200, f"{result.status}: {result.text[:500]}"
        if body.get("test") is True and len(body) == 1:
            return
        stored, parked_n, q_m1, q_s1, host1 = _accounting(helpdesk, message_ids, status_ids)
        if not body.get("test"):
            assert stored + (q_m1 - q_m0) == len(messages), (
                f"{len(messages)} message items: {stored} stored, {q_m1 - q_m0} quarantined")
            assert host1 - host0 == stored, "host messages written without their wazzup row (a partial write)"
            assert parked_n + (q_s1 - q_s0) == len(statuses), (
                f"{len(statuses)} status items: {parked_n} parked, {q_s1 - q_s0} quarantined")

    check()


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | json_values.filter(lambda v: not isinstance(v, dict)).map(
    lambda v: json.dumps(v).encode()))
def test_bodies_that_are_not_a_json_object_are_refused_with_400_and_store_nothing(client, helpdesk, raw):
    try:
        if isinstance(json.loads(raw), dict):
            return
    except ValueError:
        pass
    result = client.simulate_post("/api/webhook", body=raw, headers={"Content-Type": "application/json"})
    assert result.status_code == 400, f"{result.status}: {result.text[:300]}"
    assert result.json["code"]
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 0
