"""The sandbox's WhatsApp Business side: GET /v3/templates/whatsapp, template sends checked as Wazzup
would, and the 24-hour window (a free text outside it: 201, then an `error` status 24_HOURS_EXCEEDED)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import WABA_CHANNEL_ID, with_waba_channel
from wazzup_plugin.sandbox.templates import APPROVED_TEMPLATE_ID, REJECTED_TEMPLATE_ID

PHONE = "79171234570"


@pytest.fixture
def sandbox_config(sandbox_config):
    return with_waba_channel(sandbox_config)


def customer_writes(sandbox_client, chat_id=PHONE, channel_id=WABA_CHANNEL_ID):
    result = sandbox_client.simulate_post("/_sandbox/customer-messages",
                                          json={"chatId": chat_id, "channelId": channel_id, "text": "Hi"})
    assert result.status_code == 201


def waba_send(v3, **fields):
    return v3.send(channelId=WABA_CHANNEL_ID, chatId=PHONE, **fields)


def test_templates_are_listed_with_the_waba_channels_they_belong_to(v3):
    result = v3.get("/v3/templates/whatsapp", params={"limit": "100", "offset": "0"})
    assert result.status_code == 200
    listed = {t["templateGuid"]: t for t in result.json}
    assert {APPROVED_TEMPLATE_ID: "APPROVED", REJECTED_TEMPLATE_ID: "REJECTED"} == \
        {k: t["status"] for k, t in listed.items()}
    approved = listed[APPROVED_TEMPLATE_ID]
    assert approved["channels"] == [WABA_CHANNEL_ID]
    assert {"accountId", "title", "name", "waba", "category", "language", "components"} <= set(approved)
    assert approved["components"][0] == {"type": "BODY", "text": "Hello {{1}}! Your order {{2}} is on its way. "
                                                                 "Reply here with any questions."}


def test_templates_come_a_page_at_a_time(v3):
    first = v3.get("/v3/templates/whatsapp", params={"limit": "1", "offset": "0"}).json
    second = v3.get("/v3/templates/whatsapp", params={"limit": "1", "offset": "1"}).json
    last = v3.get("/v3/templates/whatsapp", params={"limit": "1", "offset": "2"}).json
    assert [t["templateGuid"] for t in first + second] == [APPROVED_TEMPLATE_ID, REJECTED_TEMPLATE_ID]
    assert last == []


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "101"}, {"offset": "-1"}, {"limit": "x"}])
def test_a_bad_page_is_a_validation_error(v3, params):
    result = v3.get("/v3/templates/whatsapp", params=params)
    assert (result.status_code, result.json["error"]) == (400, "VALIDATION_ERROR")


def test_templates_need_the_api_key(sandbox_client):
    assert sandbox_client.simulate_get("/v3/templates/whatsapp").status_code == 401


def test_configured_templates_replace_the_default_ones(v3, sandbox):
    sandbox.update_config({"templates": [{"templateGuid": "t-1", "status": "APPROVED", "channels": ["c-9"],
                                          "components": [{"type": "BODY", "text": "Hi"}]}]})
    [only] = v3.get("/v3/templates/whatsapp").json
    assert (only["templateGuid"], only["channels"]) == ("t-1", ["c-9"])


def test_an_approved_template_is_accepted_and_echoed_filled_in(v3, sandbox, hook):
    sandbox.update_config({"echo": "after"})
    result = waba_send(v3, text=None, templateId=APPROVED_TEMPLATE_ID, templateValues=["Pavel", "#9"])
    assert result.status_code == 201
    sandbox.sender.pump()
    posted = hook.posted()
    [echo] = [b["messages"][0] for b in posted if "messages" in b]
    assert echo["text"] == "Hello Pavel! Your order #9 is on its way. Reply here with any questions."
    statuses = [b["statuses"][0]["status"] for b in posted if "statuses" in b]
    assert statuses == ["sent", "delivered", "read"]  # a template goes out whatever the window
    assert sandbox.received()["messages"][-1]["templateId"] == APPROVED_TEMPLATE_ID


@pytest.mark.parametrize("fields, code, data", [
    ({"templateId": "no-such-template", "templateValues": []}, "INVALID_MESSAGE_DATA", {"fields": ["templateId"]}),
    ({"templateId": REJECTED_TEMPLATE_ID, "templateValues": ["Pavel"]}, "TEMPLATE_REJECTED",
     {"templateId": REJECTED_TEMPLATE_ID}),
    ({"templateId": APPROVED_TEMPLATE_ID, "templateValues": ["Pavel"]}, "INVALID_MESSAGE_DATA",
     {"fields": ["templateValues"]}),
    ({"templateId": APPROVED_TEMPLATE_ID, "templateValues": "Pavel"}, "INVALID_MESSAGE_DATA",
     {"fields": ["templateValues"]}),
    ({"templateId": APPROVED_TEMPLATE_ID, "templateValues": ["a", "b"], "text": "Hi"}, "INVALID_MESSAGE_DATA",
     {"fields": ["templateId"]}),
])
def test_a_template_send_wazzup_would_refuse_is_400(v3, sandbox, fields, code, data):
    result = waba_send(v3, **{"text": None, **fields})
    assert result.status_code == 400
    assert (result.json["error"], result.json["data"]) == (code, data)
    assert sandbox.received()["total"] == 0


def test_a_template_on_a_plain_whatsapp_channel_is_refused(v3):
    result = v3.send(text=None, templateId=APPROVED_TEMPLATE_ID, templateValues=["a", "b"])
    assert (result.status_code, result.json["error"]) == (400, "INVALID_MESSAGE_DATA")


def test_a_free_text_to_a_waba_chat_that_never_wrote_ends_in_24_hours_exceeded(v3, sandbox, hook):
    assert waba_send(v3, text="Hello?").status_code == 201   # Wazzup takes it, as it does
    sandbox.sender.pump()
    [body] = hook.posted()
    assert body["statuses"][0]["status"] == "error"
    assert body["statuses"][0]["error"]["error"] == "24_HOURS_EXCEEDED"


def test_a_free_text_inside_the_window_is_delivered(v3, sandbox, hook, sandbox_client):
    customer_writes(sandbox_client)
    assert waba_send(v3, text="Yes, in stock").status_code == 201
    sandbox.sender.pump()
    assert [b["statuses"][0]["status"] for b in hook.posted() if "statuses" in b] == ["sent", "delivered", "read"]


def test_the_window_closes_24_hours_after_the_customer_wrote(v3, sandbox, hook, sandbox_client, clock):
    customer_writes(sandbox_client)
    clock.advance(hours=24)
    waba_send(v3, text="Still there?")
    sandbox.sender.pump()
    assert [b["statuses"][0].get("error", {}).get("error") for b in hook.posted() if "statuses" in b] == \
        ["24_HOURS_EXCEEDED"]


def test_the_window_length_is_configurable_down_to_always_closed(v3, sandbox, hook, sandbox_client):
    customer_writes(sandbox_client)
    sandbox.update_config({"waba_window_hours": 0})
    waba_send(v3, text="Hi")
    sandbox.sender.pump()
    assert hook.posted()[-1]["statuses"][0]["error"]["error"] == "24_HOURS_EXCEEDED"


def test_plain_whatsapp_has_no_window(v3, sandbox, hook, clock):
    clock.advance(timedelta(days=3).total_seconds())
    assert v3.send(text="Hello").status_code == 201
    sandbox.sender.pump()
    assert [b["statuses"][0]["status"] for b in hook.posted()] == ["sent", "delivered", "read"]
