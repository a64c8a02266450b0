"""GET /api/wazzup24/connection: one honest report of whether Wazzup24 works, secrets masked."""

import json

import pytest
import requests

from wazzup_plugin.outbound.webhook_setup import compare, mask_url, with_secret

SECRET = "0123456789abcdef0123456789abcdef"
OUR_URL = "https://helpdesk.example.com/api/webhook"


@pytest.fixture
def settings(settings):
    return {**settings, "WAZZUP24_WEBHOOK_URL": OUR_URL, "WAZZUP24_WEBHOOK_SECRET": SECRET}


def connection(client, auth):
    result = client.simulate_get("/api/wazzup24/connection", headers=auth)
    assert result.status_code == 200
    assert SECRET not in result.text
    return result.json


def test_all_good_is_ok_with_channels_selection_webhook_and_latency(client, auth, wazzup_api, wazzup_url,
                                                                    api_payload, channel_id):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    report = connection(client, auth)
    assert (report["status"], report["key_valid"], report["reason"], report["warnings"]) == ("ok", True, None, [])
    assert [c["state"] for c in report["channels"]] == ["active", "active", "qr"]
    assert report["selected_channel"] == {"channel_id": channel_id, "source": "account", "state": "active"}
    assert report["webhook"] == {"our_url": f"{OUR_URL}?token=***", "registered_url": f"{OUR_URL}?token=***",
                                 "registration": "same", "protected": True}
    assert report["latency_ms"] is not None and report["webhook_protected"] is True


def test_a_refused_key_is_error_with_key_invalid(client, auth, wazzup_api, wazzup_url):
    wazzup_api.get(f"{wazzup_url}/v3/channels", status=401)
    report = connection(client, auth)
    assert (report["status"], report["key_valid"]) == ("error", False)
    assert "WAZZUP24_API_KEY" in report["reason"]


def test_a_redirect_is_error_and_leaves_the_keys_validity_unknown(client, auth, wazzup_api, wazzup_url):
    # A redirect (an http:// URL, a wrong path) answers before Wazzup looks at the key.
    wazzup_api.get(f"{wazzup_url}/v3/channels", status=301, headers={"Location": "https://elsewhere.example"})
    report = connection(client, auth)
    assert (report["status"], report["key_valid"]) == ("error", None)
    assert "WAZZUP24_API_URL" in report["reason"]


def test_no_network_is_error_with_the_reason(client, auth, wazzup_api, wazzup_url):
    wazzup_api.get(f"{wazzup_url}/v3/channels", body=requests.ConnectTimeout("timed out"))
    report = connection(client, auth)
    assert (report["status"], report["key_valid"]) == ("error", None)
    assert "timed out" in report["reason"]
    assert report["reason"].endswith(f"Check this server's network and WAZZUP24_API_URL ({wazzup_url})")


@pytest.mark.parametrize("limited_by", ["our rate limiter", "Wazzup's 429"])
def test_a_rate_limited_check_is_degraded_without_advice_about_the_network(client, auth, wazzup_api, wazzup_url,
                                                                            helpdesk, limited_by):
    from wazzup_plugin.outbound.context import outbound

    if limited_by == "our rate limiter":
        outbound(helpdesk).limiter.blocked(60)  # as after a 429 to another call
    else:
        wazzup_api.get(f"{wazzup_url}/v3/channels", status=429, headers={"Retry-After": "5"})

    report = connection(client, auth)

    assert (report["status"], report["key_valid"]) == ("degraded", None)
    assert "rate limit" in report["reason"] and "Check again in a few seconds" in report["reason"]
    assert "network" not in report["reason"]


def test_another_integrations_webhook_and_an_inactive_channel_are_degraded(
        client, auth, wazzup_api, wazzup_url, api_payload):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_none_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_other"))
    report = connection(client, auth)
    assert report["status"] == "degraded"
    assert report["webhook"]["registration"] == "other"
    assert "ZZZsecret" not in json.dumps(report)  # the other integration's secret is masked too
    assert any("No active WhatsApp channel" in w for w in report["warnings"])
    assert any("another URL" in w for w in report["warnings"])


def test_a_channel_setting_that_names_a_telegram_channel_is_degraded_naming_it(
        client, auth, helpdesk, wazzup_api, wazzup_url, api_payload):
    """Chats an agent starts ("New chat") go out through WAZZUP24_CHANNEL_ID: one naming the
    account's Telegram bot was reported ok, and every message to such a chat was refused."""
    import dataclasses

    from wazzup_plugin.state import get_state

    telegram = "7a1c0f43-3d51-4d7e-9d58-0c4bd6f1e2aa"
    state = get_state(helpdesk)
    state.settings = dataclasses.replace(state.settings, channel_id=telegram)
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    report = connection(client, auth)
    assert report["status"] == "degraded"
    assert report["selected_channel"] == {"channel_id": telegram, "source": "setting", "state": "active"}
    assert report["warnings"] == [f"WAZZUP24_CHANNEL_ID {telegram} is a telegram channel: WhatsApp chats started "
                                  "from the helpdesk cannot send through it (Wazzup refuses them, WRONG_TRANSPORT). "
                                  "Set it to a WhatsApp channel's id."]


def test_stored_channel_states_from_the_webhook_are_shown(client, auth, wazzup_api, wazzup_url, api_payload,
                                                          helpdesk, clock, channel_id):
    import sqlalchemy as sa

    from wazzup_plugin.state import get_state

    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id=channel_id, transport="whatsapp", state="phoneUnavailable", updated_at=clock()))
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    report = connection(client, auth)
    # The webhook's report of the same moment stands; the other channels are kept as the list says.
    states = {c["channel_id"]: c["state"] for c in report["stored_channel_states"]}
    assert states == {channel_id: "phoneUnavailable", **{c["channelId"]: c["state"] for c in api_payload(
        "channels_one_active") if c["channelId"] != channel_id}}


def test_reports_are_cached_briefly(client, auth, wazzup_api, wazzup_url, api_payload, clock):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    for _ in range(5):
        connection(client, auth)
    assert len(wazzup_api.calls) == 2
    clock.advance(11)
    connection(client, auth)
    assert len(wazzup_api.calls) == 4


def test_connection_needs_an_agent(client):
    assert client.simulate_get("/api/wazzup24/connection").status_code == 401


def test_url_helpers_mask_and_compare():
    ours = with_secret(OUR_URL, SECRET)
    assert ours == f"{OUR_URL}?token={SECRET}"
    assert mask_url(ours) == f"{OUR_URL}?token=***"
    assert mask_url("https://x.example/hook/" + SECRET, SECRET) == "https://x.example/hook/***"
    assert compare(ours, ours) == "same"
    assert compare(with_secret(OUR_URL + "/", "another-secret-xxxxxxxx"), ours) == "stale_secret"
    assert compare("https://crm.other.example/hook", ours) == "other"
    assert compare(None, ours) == "none"


class TestNotConfigured:
    @pytest.fixture
    def settings(self):
        return {"WAZZUP24_API_URL": "https://api.wazzup.test"}

    def test_no_key_is_not_configured_and_calls_nothing(self, client, auth, wazzup_api):
        report = connection(client, auth)
        assert (report["status"], report["configured"]) == ("not_configured", False)
        assert "WAZZUP24_API_KEY" in report["reason"]
        assert report["webhook"]["protected"] is report["webhook_protected"] is False
        assert len(wazzup_api.calls) == 0

    def test_send_without_a_key_is_503_and_stores_nothing(self, client, auth, make_wazzup_chat):
        chat = make_wazzup_chat()
        result = client.simulate_post(f"/api/chats/{chat}/wazzup24/send", json={"text": "x"}, headers=auth)
        assert (result.status_code, result.json["code"]) == (503, "wazzup_not_configured")
        messages = client.simulate_get(f"/api/chats/{chat}/messages", headers=auth).json["items"]
        assert messages == []


def test_our_webhook_registered_with_an_old_secret_is_degraded_and_says_what_to_run(
        client, auth, wazzup_api, wazzup_url, api_payload):
    """Every delivery would be refused with 401: the report is the one place that says why."""
    registered = {**api_payload("webhooks_ours"), "webhooksUri": with_secret(OUR_URL, "an-old-secret-0123456789")}
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=registered)
    report = connection(client, auth)
    assert (report["status"], report["webhook"]["registration"]) == ("degraded", "stale_secret")
    [warning] = report["warnings"]
    assert "carries another secret" in warning and "WAZZUP24_WEBHOOK_SECRET" in warning
    assert "`helpdesk-stub wazzup24 set-webhook`" in warning
    assert "an-old-secret-0123456789" not in json.dumps(report)


def test_another_integrations_webhook_is_shown_without_its_credentials(client, auth, wazzup_api, wazzup_url,
                                                                         api_payload):
    """Every agent reads the report: a CRM's URL at Wazzup may hold that CRM's credentials anywhere."""
    theirs = "https://crmuser:hunter2pass@crm.other.example/amo/hook/3f9a8b7c6d5e4f3a2b1c?access_token=ABCDEF123456"
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json={**api_payload("webhooks_ours"), "webhooksUri": theirs})
    report = connection(client, auth)
    assert report["webhook"]["registration"] == "other"
    assert report["webhook"]["registered_url"] == "https://***@crm.other.example/amo/hook/***?access_token=***"
    for secret in ("crmuser", "hunter2pass", "3f9a8b7c6d5e4f3a2b1c", "ABCDEF123456"):
        assert secret not in json.dumps(report)


@pytest.mark.parametrize("url, shown", [
    ("https://u:p%40ss@h.example/hook", "https://***@h.example/hook"),
    ("https://h.example/hook?apiKey=k1&X-Signature=s1&sid=s2&page=2",
     "https://h.example/hook?apiKey=***&X-Signature=***&sid=***&page=2"),
    ("https://h.example/wazzup24-hook/550e8400-e29b-41d4-a716-446655440000",
     "https://h.example/wazzup24-hook/***"),
    ("https://h.example/api/v3/webhooks#token=abc", "https://h.example/api/v3/webhooks"),
    ("http://[::1/hook?token=abc", "***"),
])
def test_shown_urls_mask_userinfo_credential_parameters_and_generated_path_segments(url, shown):
    assert mask_url(url) == shown


def test_a_channel_that_needs_a_person_and_has_chats_makes_the_report_degraded_naming_it(
        client, auth, wazzup_api, wazzup_url, api_payload, make_wazzup_chat):
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=[
        *api_payload("channels_one_active"),
        {"channelId": "tg-channel", "transport": "tgapi", "plainId": "shop_bot", "state": "unauthorized"},
        {"channelId": "vb-channel", "transport": "viber", "plainId": "79000000001", "state": "disabled"}])
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    make_wazzup_chat(wazzup_chat_id="123456789", channel_id="tg-channel", chat_type="telegram")
    report = connection(client, auth)
    assert report["status"] == "degraded"
    [warning] = report["warnings"]  # the disabled Viber channel has no chats: nothing to say of it
    assert warning.startswith("The Telegram channel shop_bot is 'unauthorized' at Wazzup")
    assert "sign it in again" in warning
    stored = {c["channel_id"]: c for c in report["stored_channel_states"]}
    assert (stored["tg-channel"]["needs_action"], stored["tg-channel"]["has_chats"]) == (True, True)
    assert stored["tg-channel"]["advice"] in warning
    assert (stored["vb-channel"]["needs_action"], stored["vb-channel"]["has_chats"]) == (True, False)


def test_a_channel_waiting_for_its_phone_with_chats_is_degraded_too(client, auth, wazzup_api, wazzup_url,
                                                                    api_payload, make_wazzup_chat, channel_id):
    channels = api_payload("channels_one_active")
    for c in channels:
        if c["channelId"] == channel_id:
            c["state"] = "phoneUnavailable"
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=channels)
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    make_wazzup_chat()
    report = connection(client, auth)
    assert report["status"] == "degraded"
    assert any("is 'phoneUnavailable' at Wazzup, not active: messages to its chats wait" in w
               for w in report["warnings"])


def test_the_report_carries_the_text_limits_per_chat_type(client, auth, wazzup_api, wazzup_url):
    wazzup_api.get(f"{wazzup_url}/v3/channels", status=401)
    limits = connection(client, auth)["text_limits"]
    assert limits["by_chat_type"]["telegram"] == limits["by_chat_type"]["max"] == 4096
    assert (limits["by_chat_type"]["whatsapp"], limits["by_chat_type"]["viber"], limits["by_chat_type"]["instagram"],
            limits["by_chat_type"]["vk"], limits["by_chat_type"]["avito"]) == (10_000, 6999, 1000, 1000, 1000)
    assert limits["waba"] == {"chat_type": "whatsapp", "transport": "wapi", "limit": 1024}
    assert limits["default"] == 10_000
