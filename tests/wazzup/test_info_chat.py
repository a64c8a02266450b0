"""GET /api/chats/{chat}/wazzup24/info: the chat's Wazzup identity, contact, counts, last statuses, iframe."""

import json

import sqlalchemy as sa

from wazzup_plugin.state import get_state


def info(client, auth, chat_id, **params):
    return client.simulate_get(f"/api/chats/{chat_id}/wazzup24/info", params=params, headers=auth)


def test_info_shows_identity_channel_state_contact_counts_and_last_statuses(
        client, auth, make_wazzup_chat, make_message, helpdesk, clock, channel_id):
    chat = make_wazzup_chat(title="Ivan Petrov")
    with helpdesk.db.write() as tx:
        tx.conn.execute(sa.insert(get_state(helpdesk).tables["channels"]).values(
            channel_id=channel_id, transport="whatsapp", plain_id="79865784457", state="active", updated_at=clock()))
    make_message(chat, "hi", direction="in")
    make_message(chat, "hello", direction="out", status="read")
    make_message(chat, "oops", direction="out", status="failed")
    result = info(client, auth, chat)
    assert result.status_code == 200
    body = result.json
    assert (body["wazzup_chat_id"], body["chat_type"], body["contact"]["name"]) == ("79011112233", "whatsapp",
                                                                                     "Ivan Petrov")
    assert body["channel"]["channel_id"] == channel_id and body["channel"]["state"] == "active"
    assert body["counts"] == {"in": 1, "out": 2, "total": 3, "by_status": {"inbound": 1, "read": 1, "failed": 1}}
    assert [s["status"] for s in body["last_statuses"]] == ["failed", "read"]
    assert body["iframe_url"] is None and body["outbox_pending"] == 0


def test_iframe_asks_wazzup_for_a_chat_window(client, auth, make_wazzup_chat, wazzup_api, wazzup_url, api_payload,
                                              agent, channel_id):
    chat = make_wazzup_chat(title="Ivan")
    wazzup_api.post(f"{wazzup_url}/v3/iframe", json=api_payload("iframe"))
    result = info(client, auth, chat, iframe=1)
    assert result.status_code == 200
    assert result.json["iframe_url"] == api_payload("iframe")["url"]
    sent = json.loads(wazzup_api.calls[0].request.body)
    assert sent["user"] == {"id": str(agent["id"]), "name": "Alice Agent"}
    assert sent["scope"] == "card"
    assert sent["filter"] == [{"chatType": "whatsapp", "chatId": "79011112233", "name": "Ivan"}]
    assert sent["activeChat"] == {"channelId": channel_id, "chatType": "whatsapp", "chatId": "79011112233"}


def test_iframe_refused_is_502(client, auth, make_wazzup_chat, wazzup_api, wazzup_url):
    chat = make_wazzup_chat()
    wazzup_api.post(f"{wazzup_url}/v3/iframe", status=401)
    result = info(client, auth, chat, iframe=1)
    assert (result.status_code, result.json["code"]) == (502, "wazzup_iframe_failed")


def test_info_errors(client, auth, make_chat, make_wazzup_chat):
    assert info(client, auth, 999).status_code == 404
    assert info(client, auth, make_chat(type="internal")).status_code == 409
    chat = make_wazzup_chat()
    assert info(client, auth, chat, iframe="yes").status_code == 422
    assert client.simulate_get(f"/api/chats/{chat}/wazzup24/info").status_code == 401


def test_info_shows_the_channel_as_wazzups_channel_list_and_later_webhooks_report_it(
        client, auth, make_wazzup_chat, wazzup_api, wazzup_url, api_payload, deliver, clock, channel_id):
    from wazzup_plugin.sandbox.deliveries import channel_update, delivery

    chat = make_wazzup_chat()
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    assert client.simulate_get("/api/wazzup24/connection", headers=auth).status_code == 200
    channel = info(client, auth, chat).json["channel"]
    assert (channel["transport"], channel["plain_id"], channel["state"]) == ("whatsapp", "79865784457", "active")

    clock.advance(60)  # the phone goes offline: the webhook says so, without the transport
    assert deliver(delivery(channels_updates=[channel_update(channel_id=channel_id, state="phoneUnavailable",
                                                             at=clock())])).status_code == 200
    channel = info(client, auth, chat).json["channel"]
    assert (channel["transport"], channel["plain_id"], channel["state"]) == ("whatsapp", "79865784457",
                                                                             "phoneUnavailable")


def test_a_channel_list_that_says_nothing_new_leaves_the_state_time_alone(
        client, auth, make_wazzup_chat, wazzup_api, wazzup_url, api_payload, clock):
    chat = make_wazzup_chat()
    wazzup_api.get(f"{wazzup_url}/v3/channels", json=api_payload("channels_one_active"))
    wazzup_api.get(f"{wazzup_url}/v3/webhooks", json=api_payload("webhooks_ours"))
    client.simulate_get("/api/wazzup24/connection", headers=auth)
    first = info(client, auth, chat).json["channel"]["state_updated_at"]
    clock.advance(3600)  # past the report's cache: Wazzup is asked again and says the same
    client.simulate_get("/api/wazzup24/connection", headers=auth)
    assert info(client, auth, chat).json["channel"]["state_updated_at"] == first


def test_a_missing_chat_is_chat_not_found_as_on_the_host_routes(client, auth):
    result = info(client, auth, 999)
    assert (result.status_code, result.json["code"]) == (404, "chat_not_found")
    assert result.json["code"] == client.simulate_get("/api/chats/999", headers=auth).json["code"]
    too_large = info(client, auth, 2**31)
    assert (too_large.status_code, too_large.json["code"]) == (404, "chat_not_found")
