"""What the sandbox produces has the shapes of the inbound fixtures and the API fixtures, and the
inbound parser takes every delivery it sends without quarantining anything."""

from __future__ import annotations


import pytest
import responses

from wazzup_plugin.inbound.parse import parse_delivery

from tests.sandbox.conftest import HOOK


def shape(value):
    """The structure of a JSON value: keys and value types, list items by their first element."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def fits(ours, theirs, keys="same") -> None:
    """``ours`` has ``theirs``'s structure; ``keys``: "same" keys, "fewer" (ours a subset: optional fields
    we do not produce) or "more" (ours a superset: we add fields). null matches any type."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), (ours, theirs)
        mine, their = set(ours), set(theirs)
        assert {"same": mine == their, "fewer": mine <= their, "more": mine >= their}[keys], (sorted(mine),
                                                                                             sorted(their))
        for key in mine & their:
            fits(ours[key], theirs[key], keys)
    elif isinstance(theirs, list):
        assert isinstance(ours, list)
        if theirs and ours:
            fits(ours[0], theirs[0], keys)
    elif theirs != "NoneType" and ours != "NoneType":
        assert ours == theirs



def write(sandbox_client, **spec):
    result = sandbox_client.simulate_post("/_sandbox/customer-messages", json=spec)
    assert result.status_code == 201, result.text
    return result.json["body"]


@pytest.mark.parametrize("fixture, spec", [
    ("incoming_text", {"text": "Hello", "avatarUri": "https://store.wazzup24.com/0e82ead97ae07d"}),
    ("incoming_image", {"contentUri": "https://store.wazzup24.com/e5/?filename=photo.jpg"}),
    ("incoming_document", {"contentUri": "https://store.wazzup24.com/9f/invoice%20May.pdf", "name": "Ivan Petrov",
                           "avatarUri": "https://store.wazzup24.com/0e82ead97ae07d"}),
    ("echo_from_phone", {"text": "Yes", "isEcho": True, "sentFromApp": False, "authorName": "Alex",
                         "authorId": "2e0df379-0e3c-470f-9b36-06b9e34c3bdb"}),
])
def test_customer_messages_have_the_inbound_fixture_shapes(sandbox_client, hook, payload, fixture, spec):
    body = write(sandbox_client, **spec)
    fits(shape(body), shape(payload(fixture)))


def test_statuses_have_the_inbound_fixture_shapes(v3, sandbox, hook, payload):
    sandbox.update_config({"bad_contacts": ["79000000000"]})
    v3.send()
    v3.send(chatId="79000000000")
    sandbox.sender.pump()
    plain, *_, error = hook.posted()
    fits(shape(plain), shape({"statuses": [payload("messages_and_statuses")["statuses"][0]]}))
    fits(shape(error), shape(payload("statuses_error")))


def test_channel_updates_have_the_inbound_fixture_shape(sandbox_client, sandbox, hook, payload):
    sandbox_client.simulate_patch(f"/_sandbox/channels/{sandbox.config.channels[0].channelId}",
                                  json={"state": "qr"})
    [body] = hook.posted()
    qr, active = payload("channels_updates")["channelsUpdates"]
    fits(shape(body["channelsUpdates"][0]), shape({**qr, **active}), keys="fewer")


def test_the_inbound_parser_takes_every_delivery_the_sandbox_sends(v3, sandbox_client, sandbox, hook):
    sandbox.update_config({"echo": "after", "bad_contacts": ["79000000000"], "echo_crm_message_id": True})
    v3.send(crmMessageId="c1", crmUserId="agent-1")
    v3.send(chatId="79000000000", text=None, contentUri="https://files.example.test/a.pdf")
    write(sandbox_client, text="Привет 😀")
    write(sandbox_client, contentUri="https://store.example.test/v.mp4", **{"from": "known"})
    write(sandbox_client, type="missing_call")
    sandbox_client.simulate_post("/_sandbox/statuses", json={"messageId": "m-1", "status": "edited"})
    sandbox_client.simulate_patch(f"/_sandbox/channels/{sandbox.config.channels[0].channelId}",
                                  json={"state": "phoneUnavailable"})
    sandbox.sender.pump()
    bodies = hook.posted()
    assert len(bodies) == 11   # 2 echoes, 4 statuses, 3 customer messages, 1 edited, 1 channel
    parsed = [parse_delivery(b) for b in bodies]
    assert [q for p in parsed for q in p.quarantined] == []
    messages = [m for p in parsed for m in p.messages]
    assert sorted(m.type for m in messages) == ["document", "missing_call", "text", "text", "video"]
    [echo] = [m for m in messages if m.crm_message_id == "c1"]
    assert echo.is_echo and echo.author_id == "agent-1"
    statuses = [s for p in parsed for s in p.statuses]
    assert ("error", "BAD_CONTACT") in [(s.status, s.error_code) for s in statuses]
    assert [c.state for p in parsed for c in p.channels] == ["phoneUnavailable"]


# ---------------------------------------------------------------- API answers vs the API fixtures


def test_api_answers_have_the_api_fixture_shapes(v3, sandbox, wazzup_api, payload, clock):
    fits(shape(v3.send(crmMessageId="1").json), shape(payload("api/message_created")))
    fits(shape(v3.send(crmMessageId="1").json), shape(payload("api/error_repeated_crm_message_id")))
    fits(shape(v3.send(channelId=None).json), shape(payload("api/error_invalid_message_data")))
    fits(shape(v3.send(text="x" * 10_001).json), shape(payload("api/error_text_too_long")), keys="more")
    fits(shape(v3.send(channelId="nope").json), shape(payload("api/error_channel_not_found")), keys="more")
    fits(shape(v3.get("/v3/channels").json), shape(payload("api/channels_one_active")))
    fits(shape(v3.post("/v3/iframe", json={"user": {"id": "u", "name": "U"}}).json), shape(payload("api/iframe")))
    fits(shape(v3.patch("/v3/webhooks", json={"webhooksUri": "x"}).json), shape(payload("api/error_uri_not_valid")),
         keys="more")
    wazzup_api.add(responses.POST, HOOK, status=404)
    fits(shape(v3.patch("/v3/webhooks", json={"webhooksUri": HOOK}).json),
         shape(payload("api/error_test_post_not_passed")), keys="more")
    wazzup_api.replace(responses.POST, HOOK, json={})
    fits(shape(v3.patch("/v3/webhooks", json={"webhooksUri": HOOK}).json), shape(payload("api/webhooks_patched")))
    fits(shape(v3.get("/v3/webhooks").json), shape(payload("api/webhooks_other")), keys="more")
    sandbox.update_config({"webhook_bools_as_strings": False})
    fits(shape(v3.get("/v3/webhooks").json), shape(payload("api/webhooks_ours")))
    sandbox.update_config({"iframe_error_nested": True})
    fits(shape(v3.post("/v3/iframe", json={"scope": "card"}).json), shape(payload("api/error_iframe_nested")),
         keys="more")
    sandbox.update_config({"rate_limit": 10_000})
    unauthorized = v3.client.simulate_get("/v3/channels")
    fits(shape(unauthorized.json), shape(payload("api/error_unauthorized")), keys="more")
