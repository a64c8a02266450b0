"""``helpdesk-stub wazzup24 quarantine list | replay``: quarantined webhook items can be seen and recovered."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from host_stub.cli import build_cli
from wazzup_plugin.inbound.parse import raw_json
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message
from wazzup_plugin.state import get_state

CHANNEL = "b96a353b-06f5-4cac-8413-ba1d8e93f981"
# The reason an earlier parser gave an incoming message whose status it did not know.
OLD_STATUS_REASON = '{"status": ["unknown value \'pending\'; expected one of inbound, sent, delivered, read, error"]}'


@pytest.fixture
def run(monkeypatch, tmp_path, engine, database_url, pm):
    """Run ``helpdesk-stub wazzup24 …`` on the test database; returns the click result."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key in list(__import__("os").environ):
        if key.startswith(("WAZZUP24_", "HELPDESK_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", database_url)

    def invoke(*args):
        return CliRunner().invoke(build_cli(pm), ["wazzup24", *args], catch_exceptions=False)

    yield invoke
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "helpdesk"]:
        root.removeHandler(handler)


@pytest.fixture
def quarantine(helpdesk):
    """Put an item in ``wazzup_quarantine`` as a webhook of an earlier version did; returns its id."""
    table = get_state(helpdesk).tables["quarantine"]

    def put(item, reason=OLD_STATUS_REASON, section="messages"):
        with helpdesk.db.write() as tx:
            return tx.conn.execute(sa.insert(table).values(
                section=section, wazzup_message_id=item.get("messageId") if isinstance(item, dict) else None,
                reason=reason, item=raw_json(item),
                received_at=datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc))).inserted_primary_key[0]

    return put


def _message(n, **extra):
    item = incoming_message(channel_id=CHANNEL, chat_id="79161234567", text=f"message {n}", message_id=f"q-{n}")
    item.update(extra)
    return item


def test_quarantine_list_shows_ids_time_reason_and_a_summary_but_never_the_content(deliver, run):
    odd = _message(1, chatType="pigeon", text="my card number is 4111 1111 1111 1111",
                   contentUri="https://store.example/secret-token-abc/?filename=a.jpg")
    assert deliver(delivery(messages=[odd, _message(2)])).json["quarantined"] == 1

    result = run("quarantine", "list")

    assert result.exit_code == 0, result.output
    assert "q-1" in result.output and "79161234567" in result.output and "messages" in result.output
    assert "chatType" in result.output and "pigeon" in result.output  # the reason
    assert "2026-11-26T12:00:00" in result.output  # received (the app's clock)
    assert "4111" not in result.output and "secret-token" not in result.output
    assert "1 quarantined item(s)" in result.output

    listed = json.loads(run("quarantine", "list", "--json").stdout)
    assert listed["total"] == 1
    [item] = listed["items"]
    assert item["summary"] == {"messageId": "q-1", "chatId": "79161234567", "chatType": "pigeon", "type": "text",
                               "isEcho": False, "status": "inbound"}
    assert "chatType" in json.loads(item["reason"])
    assert isinstance(item["id"], int) and item["received_at"].startswith("2026-11-26T12:00:00")


def test_quarantine_list_escapes_terminal_sequences_and_lone_surrogates_in_what_it_prints(deliver, run):
    escapes = r"\u001b]0;PWNED\u0007\u001b[2J\u001b[31mfake: all clear\u009b"
    # As posted: JSON escapes (a lone surrogate cannot even be encoded to be sent otherwise).
    assert deliver('{"statuses": [{"messageId": "%s", "status": "bogus"}]}' % escapes).json["quarantined"] == 1
    assert deliver('{"messages": [{"messageId": "ls-1", "channelId": "c", "chatType": "whatsapp", '
                   '"chatId": "7999\\ud800"}]}').json["quarantined"] == 1

    result = run("quarantine", "list", "--limit", "0")

    assert result.exit_code == 0, result.output
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]", result.output)
    assert "messageId=\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mfake: all clear\\x9b" in result.output
    assert "chatId=7999\\ud800" in result.output
    assert "2 quarantined item(s)" in result.output

    listed = run("quarantine", "list", "--json", "--limit", "0")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.isascii()
    summaries = [item["summary"] for item in json.loads(listed.stdout)["items"]]
    assert [s.get("messageId") for s in summaries] == [json.loads(f'"{escapes}"'), "ls-1"]
    assert summaries[1]["chatId"] == "7999\ud800"  # the JSON gives back exactly what was posted


def test_quarantine_list_says_when_the_quarantine_is_empty(run):
    result = run("quarantine", "list")
    assert result.exit_code == 0 and "empty" in result.output


def test_replay_stores_an_item_that_fits_now_exactly_as_the_webhook_would_and_removes_it(run, quarantine,
                                                                                          wazzup_rows):
    quarantine(_message(1, status="pending"))
    quarantine(_message(2, contact={"name": 79990000002}), reason='{"contact": {"name": ["Not a valid string."]}}')

    result = run("quarantine", "replay", "--all")

    assert result.exit_code == 0, result.output
    assert "replayed 2, still quarantined 0" in result.output and "new messages 2" in result.output
    assert wazzup_rows.table("quarantine") == []
    first, second = wazzup_rows.message("q-1"), wazzup_rows.message("q-2")
    assert (first["direction"], first["status"], first["text"]) == ("in", "inbound", "message 1")
    assert second["chat_id"] == first["chat_id"]  # one chat, found or created as the webhook does
    [chat] = wazzup_rows.chats()
    assert chat["unread_count"] == 2 and chat["last_message_preview"] in ("message 1", "message 2")


def test_replaying_a_message_already_stored_is_a_duplicate_not_a_second_copy(deliver, run, quarantine, wazzup_rows):
    item = _message(1)
    assert deliver(delivery(messages=[item])).json["new_messages"] == 1
    quarantine(dict(item, status="pending"))  # the same message, quarantined from another delivery

    result = run("quarantine", "replay", "--all", "--json")

    report = json.loads(result.stdout)
    assert (report["replayed"], report["new_messages"], report["duplicates"]) == (1, 0, 1)
    assert len(wazzup_rows.messages()) == 1
    assert wazzup_rows.chats()[0]["unread_count"] == 1
    assert wazzup_rows.table("quarantine") == []


def test_replay_can_be_repeated_without_storing_anything_twice(run, quarantine, wazzup_rows):
    quarantine(_message(1, status="pending"))
    assert json.loads(run("quarantine", "replay", "--all", "--json").stdout)["new_messages"] == 1
    quarantine(_message(1, status="pending"))  # the same item again (say, restored from a backup)
    again = json.loads(run("quarantine", "replay", "--all", "--json").stdout)
    assert (again["new_messages"], again["duplicates"]) == (0, 1)
    assert len(wazzup_rows.messages()) == 1


def test_an_item_that_still_does_not_fit_stays_with_the_reason_it_fails_now(run, quarantine, wazzup_rows):
    kept = quarantine(_message(1, chatType="pigeon"), reason="an outdated reason")
    quarantine(_message(2, status="pending"))

    result = run("quarantine", "replay", "--all")

    assert result.exit_code == 1, result.output  # something is still quarantined
    assert "replayed 1, still quarantined 1" in result.output and f"#{kept}" in result.output
    [row] = wazzup_rows.table("quarantine")
    assert row["id"] == kept and "chatType" in json.loads(row["reason"])
    assert [m["wazzup_message_id"] for m in wazzup_rows.messages()] == ["q-2"]


def test_replay_by_id_replays_only_the_items_named(run, quarantine, wazzup_rows):
    one = quarantine(_message(1, status="pending"))
    two = quarantine(_message(2, status="pending"))
    three = quarantine(_message(3, status="pending"))

    result = run("quarantine", "replay", "--id", str(one), "--id", str(three), "--batch", "1")

    assert result.exit_code == 0, result.output
    assert sorted(m["wazzup_message_id"] for m in wazzup_rows.messages()) == ["q-1", "q-3"]
    assert [r["id"] for r in wazzup_rows.table("quarantine")] == [two]


def test_replaying_an_id_not_in_the_quarantine_says_so_and_exits_1(run, quarantine, wazzup_rows):
    one = quarantine(_message(1, status="pending"))

    result = run("quarantine", "replay", "--id", str(one), "--id", "99")

    assert result.exit_code == 1, result.output
    assert "replayed 1, still quarantined 0" in result.stdout
    assert result.stderr.endswith("Error: not in the quarantine: #99 (replayed already, or no such item: "
                                  "see `quarantine list`)\n")
    assert [m["wazzup_message_id"] for m in wazzup_rows.messages()] == ["q-1"]
    again = run("quarantine", "replay", "--id", str(one), "--json")
    assert again.exit_code == 1 and json.loads(again.stdout)["missing_ids"] == [one], again.output


def test_replay_asks_for_ids_or_all(run):
    for args in ((), ("--id", "1", "--all")):
        result = run("quarantine", "replay", *args)
        assert result.exit_code == 2 and "give --id N (repeatable) or --all" in result.output, result.output


def test_a_replayed_status_is_applied_to_its_message_as_the_webhook_applies_it(deliver, payload, run, quarantine,
                                                                               wazzup_rows):
    echo = payload("echo_from_phone")["messages"][0]
    deliver({"messages": [echo]})
    quarantine({"messageId": echo["messageId"], "status": "read", "timestamp": "2025-05-06T14:30:00Z"},
               reason="an earlier parser refused it", section="statuses")

    report = json.loads(run("quarantine", "replay", "--all", "--json").stdout)

    assert (report["replayed"], report["statuses_applied"]) == (1, 1)
    assert wazzup_rows.message(echo["messageId"])["status"] == "read"
    assert wazzup_rows.table("quarantine") == []
