"""GET /api/wazzup24/connection checks the webhook's subscriptions, not only its URL (reference §4.1, §4.2)."""

import pytest

SECRET = "0123456789abcdef0123456789abcdef"
OUR_URL = "https://helpdesk.example.com/api/webhook"
OURS = f"{OUR_URL}?token={SECRET}"


@pytest.fixture
def settings(settings):
    return {**settings, "WAZZUP24_WEBHOOK_URL": OUR_URL, "WAZZUP24_WEBHOOK_SECRET": SECRET}


def report_for(client, auth, wazzup_api, wazzup_url, api_payload, webhooks):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=webhooks)
    result = client.simulate_get("/api/wazzup24/connection", headers=auth)
    assert result.status_code == 200
    return result.json


@pytest.mark.parametrize("off", [False, "false", "FALSE"])
def test_messages_and_statuses_switched_off_is_degraded_and_names_the_subscription(
        client, auth, wazzup_api, wazzup_url, api_payload, off):
    report = report_for(client, auth, wazzup_api, wazzup_url, api_payload, {"webhooksUri": OURS, "subscriptions": {
        "messagesAndStatuses": off, "contactsAndDealsCreation": False, "channelsUpdates": True,
        "templateStatus": False}})
    assert (report["status"], report["webhook"]["registration"]) == ("degraded", "same")
    [warning] = report["warnings"]
    assert "'messagesAndStatuses' is off" in warning and "`helpdesk-stub wazzup24 set-webhook`" in warning


def test_channels_updates_switched_off_is_degraded_and_names_the_subscription(
        client, auth, wazzup_api, wazzup_url, api_payload):
    report = report_for(client, auth, wazzup_api, wazzup_url, api_payload, {"webhooksUri": OURS, "subscriptions": {
        "messagesAndStatuses": "true", "channelsUpdates": "false"}})
    assert report["status"] == "degraded"
    [warning] = report["warnings"]     # "true" as a string counts as on (reference §4.2)
    assert "'channelsUpdates' is off" in warning


def test_subscriptions_missing_from_wazzups_answer_are_not_taken_as_on(
        client, auth, wazzup_api, wazzup_url, api_payload):
    report = report_for(client, auth, wazzup_api, wazzup_url, api_payload, {"webhooksUri": OURS})
    assert report["status"] == "degraded"
    assert len(report["warnings"]) == 2
    assert all("not confirmed" in w for w in report["warnings"])
