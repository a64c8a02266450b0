"""Rotating the webhook secret without losing a delivery: WAZZUP24_WEBHOOK_SECRET_PREVIOUS and ``set-webhook --rotate``."""

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from tests.wazzup.conftest import OUR_URL, SECRET
from wazzup_plugin.settings import SettingsError, WazzupSettings

NEW_SECRET = "new-secret-0123456789abcdefghij"
OLD_SECRET = "old-secret-0123456789abcdefghij"


@pytest.fixture
def settings(settings):
    return {**settings, "WAZZUP24_WEBHOOK_SECRET": NEW_SECRET, "WAZZUP24_WEBHOOK_SECRET_PREVIOUS": OLD_SECRET}


def _stored(helpdesk) -> int:
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar()


def _incoming(payload, message_id: str) -> dict:
    body = payload("incoming_text")
    body["messages"][0]["messageId"] = message_id
    return body


@pytest.mark.parametrize("how", ["query", "bearer"])
def test_the_webhook_accepts_the_new_and_the_previous_secret_and_refuses_any_other(deliver, payload, helpdesk, how):
    def carrying(secret):
        return ({"params": {"token": secret}} if how == "query" else
                {"headers": {"Authorization": f"Bearer {secret}"}})

    refused = _incoming(payload, "a0000000-0000-4000-8000-000000000003")
    assert deliver(refused).status_code == 401
    for other in ("neither-secret-0123456789abc", OLD_SECRET[:-1], NEW_SECRET + "x"):
        assert deliver(refused, **carrying(other)).status_code == 401
    assert _stored(helpdesk) == 0
    assert deliver(_incoming(payload, "a0000000-0000-4000-8000-000000000001"), **carrying(NEW_SECRET)).status_code == 200
    assert deliver(_incoming(payload, "a0000000-0000-4000-8000-000000000002"), **carrying(OLD_SECRET)).status_code == 200
    assert _stored(helpdesk) == 2


def test_a_delivery_with_the_previous_secret_is_logged_once_a_minute_with_a_count_and_no_secret(
        deliver, payload, clock, caplog):
    with caplog.at_level(logging.INFO, logger="wazzup_plugin"):
        for n in range(3):
            deliver(_incoming(payload, f"b0000000-0000-4000-8000-00000000000{n}"), params={"token": OLD_SECRET})
            clock.advance(10)
        deliver(_incoming(payload, "b0000000-0000-4000-8000-000000000009"), params={"token": NEW_SECRET})
        clock.advance(60)
        deliver(_incoming(payload, "b0000000-0000-4000-8000-000000000010"), params={"token": OLD_SECRET})
    lines = [r for r in caplog.records if "previous webhook secret" in r.getMessage()]
    assert [r.getMessage() for r in lines] == [
        "a delivery still used the previous webhook secret; run set-webhook again if this persists"] * 2
    assert all(r.levelno == logging.INFO for r in lines)
    assert [r.context["deliveries"] for r in lines] == [1, 3]  # the second counts the two between the lines
    for record in caplog.records:
        text = record.getMessage() + json.dumps(getattr(record, "context", None), default=str)
        assert OLD_SECRET not in text and NEW_SECRET not in text


def test_the_status_report_shows_the_previous_secret_and_when_a_delivery_last_used_it(
        deliver, payload, helpdesk, clock):
    from wazzup_plugin.health import build_report, collect
    from wazzup_plugin.state import get_state

    state = get_state(helpdesk)
    used_at = clock()
    deliver(_incoming(payload, "c0000000-0000-4000-8000-000000000001"), params={"token": OLD_SECRET})
    clock.advance(120)
    report = build_report(collect(helpdesk, state, list), state.settings, clock())
    assert report["webhook"]["previous_secret_configured"] is True
    assert report["webhook"]["previous_secret_last_used_at"] == used_at.isoformat()
    assert report["webhook"]["previous_secret_last_used_age_seconds"] == 120
    assert any("previous webhook secret 2 min ago" in note for note in report["notes"])


def test_a_previous_secret_needs_the_secret_and_16_characters():
    with pytest.raises(SettingsError, match="WAZZUP24_WEBHOOK_SECRET_PREVIOUS is set without WAZZUP24_WEBHOOK_SECRET"):
        WazzupSettings.from_env({"WAZZUP24_WEBHOOK_SECRET_PREVIOUS": OLD_SECRET})
    with pytest.raises(SettingsError, match="WAZZUP24_WEBHOOK_SECRET_PREVIOUS must be at least 16 characters"):
        WazzupSettings.from_env({"WAZZUP24_WEBHOOK_SECRET": NEW_SECRET, "WAZZUP24_WEBHOOK_SECRET_PREVIOUS": "short"})


def _patched(wazzup_api) -> list[dict]:
    return [json.loads(c.request.body) for c in wazzup_api.calls if c.request.method == "PATCH"]


def test_set_webhook_rotate_registers_a_new_secret_and_prints_both_env_lines(run, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    wazzup_api.patch(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_patched"))
    result = run("set-webhook", "--rotate", input="y\n")   # the operator put both lines in .env and restarted
    assert result.exit_code == 0, result.output
    [body] = _patched(wazzup_api)
    url = urlsplit(body["webhooksUri"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == OUR_URL
    new = parse_qs(url.query)["token"][0]
    assert new != SECRET and len(new) >= 16
    assert body["subscriptions"]["messagesAndStatuses"] is True
    lines = result.output.splitlines()
    assert f"WAZZUP24_WEBHOOK_SECRET={new}" in lines
    assert f"WAZZUP24_WEBHOOK_SECRET_PREVIOUS={SECRET}" in lines
    assert "remove WAZZUP24_WEBHOOK_SECRET_PREVIOUS" in result.output


def test_set_webhook_rotate_registers_nothing_until_the_helpdesk_runs_with_both_lines(run, wazzup_api):
    result = run("set-webhook", "--rotate", input="n\n")
    assert result.exit_code == 1
    assert "WAZZUP24_WEBHOOK_SECRET_PREVIOUS=" in result.output and "Not registered yet" in result.output
    assert _patched(wazzup_api) == []


def test_set_webhook_rotate_without_a_secret_says_there_is_none_to_rotate(run, wazzup_api):
    result = run("set-webhook", "--rotate", WAZZUP24_WEBHOOK_SECRET=None, WAZZUP24_WEBHOOK_INSECURE="1")
    assert result.exit_code == 2
    assert "no secret to rotate" in result.output
    assert _patched(wazzup_api) == []


def test_set_webhook_rotate_refuses_yes_as_no_helpdesk_can_know_the_secret_it_makes(run, wazzup_api):
    result = run("set-webhook", "--rotate", "--yes")
    assert result.exit_code == 2
    assert "--rotate and --yes cannot go together" in result.output
    assert "WAZZUP24_WEBHOOK_SECRET=" not in result.output and _patched(wazzup_api) == []
