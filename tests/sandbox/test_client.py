"""The product's Wazzup client (wazzup_plugin/client.py) against the sandbox over real HTTP: every
answer the sandbox can give is read the way the outbox needs it."""

from __future__ import annotations

import pytest
import requests

from wazzup_plugin.client import (WazzupApiError, WazzupAuthError, WazzupClient, WazzupRateLimited,
                                  WazzupUnavailable)


@pytest.fixture
def wazzup(sandbox_server):
    session = requests.Session()
    yield WazzupClient(session, sandbox_server.url, sandbox_server.app.sandbox.config.api_key,
                       connect_timeout=2, read_timeout=2)
    session.close()


@pytest.fixture
def sb(sandbox_server):
    return sandbox_server.app.sandbox


def message(sb, **fields):
    body = {"channelId": sb.config.channels[0].channelId, "chatType": "whatsapp", "chatId": "79161234567",
            "text": "Hello"}
    body.update(fields)
    return body


def test_the_client_reads_channels_and_a_201(wazzup, sb):
    assert [c["state"] for c in wazzup.channels()] == ["active"]
    sent = wazzup.send_message(message(sb, crmMessageId="k1"))
    assert sent["messageId"] and sent["chatId"] == "79161234567"
    assert sb.received("k1")["accepted"] == 1


@pytest.mark.parametrize("body", ["json", "empty"])
def test_a_wrong_key_is_an_auth_error_whatever_the_401_body(sandbox_server, sb, body):
    sb.update_config({"unauthorized_body": body})
    client = WazzupClient(requests.Session(), sandbox_server.url, "wrong-key")
    with pytest.raises(WazzupAuthError):
        client.channels()


def test_repeated_crm_message_id_is_an_api_error_with_its_code(wazzup, sb):
    wazzup.send_message(message(sb, crmMessageId="k2"))
    with pytest.raises(WazzupApiError) as caught:
        wazzup.send_message(message(sb, crmMessageId="k2"))
    assert caught.value.is_code("REPEATED_CRM_MESSAGE_ID")
    assert caught.value.data == {"crmMessageId": "k2"}


@pytest.mark.parametrize("field, code", [({"text": "x" * 10_001}, "MESSAGE_TEXT_TOO_LONG"),
                                         ({"channelId": "nope"}, "CHANNEL_NOT_FOUND"),
                                         ({"chatId": "+7 (916)"}, "INVALID_MESSAGE_DATA")])
def test_refusals_are_api_errors_with_their_codes(wazzup, sb, field, code):
    with pytest.raises(WazzupApiError) as caught:
        wazzup.send_message(message(sb, **field))
    assert caught.value.is_code(code)


@pytest.mark.parametrize("retry_after, expected", [(True, 5.0), (False, None)])
def test_429_is_rate_limited_with_or_without_retry_after(wazzup, sb, retry_after, expected):
    sb.update_config({"rate_limit": 1, "rate_window": 5.0, "retry_after": retry_after})
    wazzup.channels()
    with pytest.raises(WazzupRateLimited) as caught:
        wazzup.send_message(message(sb, crmMessageId="k3"))
    assert caught.value.maybe_sent is False
    assert (caught.value.retry_after is None) == (expected is None)
    assert sb.received("k3")["accepted"] == 0


def test_a_5xx_after_accepting_may_have_sent(wazzup, sb):
    sb.faults.add({"kind": "fail", "afterAccept": True, "status": 502}, sb.now())
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.send_message(message(sb, crmMessageId="k4"))
    assert caught.value.maybe_sent is True
    assert sb.received("k4")["accepted"] == 1


def test_a_dropped_connection_may_have_sent(wazzup, sb):
    sb.faults.add({"kind": "drop"}, sb.now())
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.send_message(message(sb, crmMessageId="k5"))
    assert caught.value.maybe_sent is True
    assert sb.received("k5")["accepted"] == 1


def test_a_slow_answer_is_a_timeout_that_may_have_sent(wazzup, sb):
    sb.faults.add({"kind": "slow", "seconds": 3}, sb.now())
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.send_message(message(sb, crmMessageId="k6"))
    assert caught.value.maybe_sent is True
    assert sb.received("k6")["accepted"] == 1


def test_a_refused_connection_surely_sent_nothing(wazzup, sb):
    import time

    sb.faults.add({"kind": "downtime", "seconds": 2, "mode": "refuse"}, sb.now())
    time.sleep(0.3)   # the listener closes within its poll interval
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.send_message(message(sb, crmMessageId="k7"))
    assert caught.value.maybe_sent is False
    assert sb.received("k7")["accepted"] == 0


def test_the_client_registers_a_webhook_and_reads_it_back(wazzup, webhook_receiver):
    wazzup.set_webhooks(webhook_receiver.url, {"messagesAndStatuses": True, "channelsUpdates": True})
    assert webhook_receiver.wait_for(1) == [{"test": True}]
    assert wazzup.get_webhooks()["webhooksUri"] == webhook_receiver.url


def test_a_webhook_that_fails_the_probe_is_an_api_error(wazzup, webhook_receiver):
    webhook_receiver.answers = [404]
    with pytest.raises(WazzupApiError) as caught:
        wazzup.set_webhooks(webhook_receiver.url, {"messagesAndStatuses": True})
    assert caught.value.is_code("testPostNotPassed")


def test_the_client_deletes_a_user_and_reads_a_second_delete_as_removed_already(wazzup, sb):
    wazzup.upsert_users([{"id": "7", "name": "Alice"}, {"id": "8", "name": "Bob"}])
    assert wazzup.delete_user("7") is True
    assert sb.listed_users() == [{"id": "8", "name": "Bob"}]
    assert wazzup.delete_user("7") is False  # 404 USER_NOT_FOUND: gone already


def test_the_client_gets_an_iframe_url(wazzup, sandbox_server):
    url = wazzup.iframe({"user": {"id": "u-1", "name": "Alice"}, "scope": "global"})
    assert url.startswith(sandbox_server.url + "/_sandbox/iframe/")
    assert requests.get(url, timeout=5).status_code == 200
