"""WhatsApp Business templates: Wazzup's list paged and filtered to a chat's channel, and a template send
(validated, stored as the text the customer reads, sent to Wazzup as templateId + templateValues)."""

import json
from datetime import timedelta

import pytest
import responses
import sqlalchemy as sa

from wazzup_plugin.outbound import outbox

WAZZUP_ID = "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
ORDER_UPDATE = "6201005a-9a6f-486f-bdd5-e6cb86c76ddb"
WELCOME_BACK = "0b8d8a52-0e54-4d3c-9c1e-5b6f1a2c3d4e"
WINTER_SALE = "8d255e5d-aefd-44dc-8131-c3ad6c3ab28c"      # rejected
PENDING = "3f0c6e1d-7a2b-4c59-8e1f-2d3c4b5a6978"
OTHER_CHANNEL = "a1b2c3d4-0000-4000-8000-0000000000aa"


@pytest.fixture
def templates_api(wazzup_api, wazzup_url, api_payload):
    """Wazzup's template list: the fixture's templates on one short page."""
    url = f"{wazzup_url}/v3/templates/whatsapp"
    wazzup_api.get(url, json=api_payload("templates_whatsapp"),
                   match=[responses.matchers.query_param_matcher({"limit": "100", "offset": "0"})])
    return url


@pytest.fixture
def closed_chat(make_waba_chat, clock):
    return make_waba_chat(customer_wrote=clock.now - timedelta(days=3))


@pytest.fixture
def templates_of(client, auth):
    def get(chat_id):
        return client.simulate_get(f"/api/chats/{chat_id}/wazzup24/templates", headers=auth)

    return get


def test_the_templates_route_lists_the_approved_templates_of_the_chats_channel(templates_of, closed_chat,
                                                                               templates_api):
    result = templates_of(closed_chat)
    assert result.status_code == 200
    assert [t["id"] for t in result.json["items"]] == [ORDER_UPDATE, WELCOME_BACK]
    assert result.json["items"][0] == {
        "id": ORDER_UPDATE, "title": "Order update", "name": "order_update", "language": "en", "category": "UTILITY",
        "body": "Hello {{1}}! Your order {{2}} is on its way.", "variables": 2,
        "header": {"format": "TEXT", "text": "Your order"}, "footer": "Shop & Co",
        "buttons": [{"type": "QUICK_REPLY", "text": "Thanks"},
                    {"type": "URL", "text": "Track", "url": "https://shop.example.com/track"}]}
    assert result.json["items"][1]["variables"] == 0
    assert result.json["window"]["open"] is False


def test_the_template_list_is_read_page_by_page_until_a_short_page(templates_of, closed_chat, wazzup_api,
                                                                   wazzup_url, api_payload):
    full = [{**api_payload("templates_whatsapp")[4], "templateGuid": f"filler-{n}"} for n in range(100)]
    for offset, page in (("0", full), ("100", api_payload("templates_whatsapp")[:1])):
        wazzup_api.get(f"{wazzup_url}/v3/templates/whatsapp", json=page,
                       match=[responses.matchers.query_param_matcher({"limit": "100", "offset": offset})])
    assert [t["id"] for t in templates_of(closed_chat).json["items"]] == [ORDER_UPDATE]
    assert len(wazzup_api.calls) == 2


def test_the_template_list_is_cached_briefly(templates_of, closed_chat, templates_api, wazzup_api, clock):
    templates_of(closed_chat)
    templates_of(closed_chat)
    assert len(wazzup_api.calls) == 1
    clock.advance(seconds=60)
    templates_of(closed_chat)
    assert len(wazzup_api.calls) == 2


def test_a_plain_whatsapp_chat_has_no_templates(templates_of, make_wazzup_chat, wazzup_api):
    result = templates_of(make_wazzup_chat())
    assert (result.status_code, result.json["code"]) == (409, "not_waba_chat")
    assert "WhatsApp Business" in result.json["message"]
    assert len(wazzup_api.calls) == 0


def test_a_template_list_wazzup_refuses_is_502_with_the_reason(templates_of, closed_chat, wazzup_api, wazzup_url):
    wazzup_api.get(f"{wazzup_url}/v3/templates/whatsapp", json={"status": 401, "error": "UNAUTHORIZED"}, status=401)
    result = templates_of(closed_chat)
    assert (result.status_code, result.json["code"]) == (502, "wazzup_templates_failed")
    assert "WAZZUP24_API_KEY" in result.json["message"]


def test_a_template_goes_out_as_template_id_and_values_and_is_stored_filled_in(send, closed_chat, templates_api,
                                                                                 wazzup_api, wazzup_url, sent_bodies,
                                                                                 outbox_row):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    result = send(closed_chat, {"template_id": ORDER_UPDATE, "template_values": ["Ivan", "#1042"]})
    assert result.status_code == 201
    assert (result.json["text"], result.json["type"]) == ("Hello Ivan! Your order #1042 is on its way.", "text")
    [body] = sent_bodies()
    assert body["templateId"] == ORDER_UPDATE and body["templateValues"] == ["Ivan", "#1042"]
    assert "text" not in body and "contentUri" not in body
    row = outbox_row(result.json["id"])
    assert (row.template_id, json.loads(row.template_values)) == (ORDER_UPDATE, ["Ivan", "#1042"])


def test_a_template_without_variables_needs_no_values(send, closed_chat, templates_api, wazzup_api, wazzup_url,
                                                      sent_bodies):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    assert send(closed_chat, {"template_id": WELCOME_BACK}).status_code == 201
    assert sent_bodies()[0]["templateValues"] == []


@pytest.mark.parametrize("body, field, reason", [
    ({"template_id": "no-such-template"}, "template_id", "no template with this id"),
    ({"template_id": WINTER_SALE, "template_values": ["Ivan"]}, "template_id", "REJECTED"),
    ({"template_id": PENDING, "template_values": ["Ivan"]}, "template_id", "PENDING"),
    ({"template_id": OTHER_CHANNEL, "template_values": ["Ivan"]}, "template_id", "another WhatsApp Business channel"),
    ({"template_id": ORDER_UPDATE, "template_values": ["Ivan"]}, "template_values", "takes 2 value(s); 1 given"),
    ({"template_id": ORDER_UPDATE}, "template_values", "takes 2 value(s); 0 given"),
    ({"template_id": ORDER_UPDATE, "template_values": ["Ivan", "x" * 1020]}, "template_values", "1,024"),
])
def test_a_template_send_that_does_not_fit_is_422_and_stores_nothing(send, closed_chat, templates_api, body, field,
                                                                     reason, helpdesk):
    result = send(closed_chat, body)
    assert (result.status_code, result.json["code"]) == (422, "invalid_body")
    assert reason in " ".join(result.json["fields"][field])
    with helpdesk.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(helpdesk.tables.messages)).scalar() == 1


@pytest.mark.parametrize("body, field", [
    ({"template_id": ORDER_UPDATE, "text": "hi"}, "_schema"),
    ({"template_values": ["Ivan"], "text": "hi"}, "template_values"),
    ({"template_id": ORDER_UPDATE, "template_values": "Ivan"}, "template_values"),
    ({"template_id": ORDER_UPDATE, "template_values": ["x" * 1025, "y"]}, "template_values"),
    ({"template_id": ""}, "template_id"),
    ({"template_id": ORDER_UPDATE, "template_values": ["Ivan", " \u00a0\ufeff"]}, "template_values"),
])
def test_a_malformed_template_body_is_422_before_wazzup_is_asked(send, closed_chat, wazzup_api, body, field):
    result = send(closed_chat, body)
    assert result.status_code == 422
    assert field in result.json["fields"]
    assert len(wazzup_api.calls) == 0


def test_a_blank_template_value_is_named_by_its_place(send, closed_chat):
    result = send(closed_chat, {"template_id": ORDER_UPDATE, "template_values": ["Ivan", "\u3000"]})
    assert result.json["fields"]["template_values"] == ["value 2 is blank"]


@pytest.mark.parametrize("value, says", [
    ("Lenina st.\n12", "value 2 has a line break or a tab"),
    ("Lenina st.\t12", "value 2 has a line break or a tab"),
    ("Lenina st.\u2028 12", "value 2 has a line break or a tab"),
    ("Lenina st.     12", "value 2 has more than 4 spaces in a row"),
])
def test_a_template_value_whatsapp_would_refuse_is_named_before_anything_is_sent(send, closed_chat, wazzup_api, value,
                                                                                 says):
    result = send(closed_chat, {"template_id": ORDER_UPDATE, "template_values": ["Ivan", value]})

    assert result.status_code == 422 and result.json["fields"]["template_values"][0].startswith(says)
    assert len(wazzup_api.calls) == 0


def test_a_template_value_with_four_spaces_in_a_row_goes_out(send, closed_chat, templates_api, wazzup_api, wazzup_url):
    """Guards against refusing too much: WhatsApp takes up to four spaces in a row."""
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)

    result = send(closed_chat, {"template_id": ORDER_UPDATE, "template_values": ["Ivan", "No.    7"]})

    assert result.status_code == 201, result.json


def test_a_template_to_a_plain_whatsapp_chat_is_409(send, make_wazzup_chat, wazzup_api):
    result = send(make_wazzup_chat(), {"template_id": ORDER_UPDATE, "template_values": ["a", "b"]})
    assert (result.status_code, result.json["code"]) == (409, "not_waba_chat")
    assert len(wazzup_api.calls) == 0


def test_a_retried_template_send_repeats_the_template(send, closed_chat, templates_api, wazzup_api, wazzup_url,
                                                      network_error, outbox_ctx, sent_bodies, clock):
    wazzup_api.post(f"{wazzup_url}/v3/message", body=network_error("refused"))
    assert send(closed_chat, {"template_id": ORDER_UPDATE, "template_values": ["Ivan", "#7"]}).status_code == 202
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    clock.advance(seconds=5)
    [message_id] = outbox.claim_due(outbox_ctx, "worker-1")
    assert outbox.attempt(outbox_ctx, message_id, "worker-1").kind == "accepted"
    assert [(b.get("templateId"), b.get("templateValues"), "text" in b) for b in sent_bodies()] == \
        [(ORDER_UPDATE, ["Ivan", "#7"], False)] * 2


def test_resending_a_failed_template_sends_the_template_again(client, auth, send, closed_chat, templates_api,
                                                              wazzup_api, wazzup_url, sent_bodies):
    wazzup_api.post(f"{wazzup_url}/v3/message", json={"status": 400, "error": "TEMPLATE_REJECTED"}, status=400)
    failed = send(closed_chat, {"template_id": ORDER_UPDATE, "template_values": ["Ivan", "#7"]})
    assert failed.status_code == 422
    assert "restricted" in failed.json["message"]
    wazzup_api.replace("POST", f"{wazzup_url}/v3/message", json={"messageId": WAZZUP_ID}, status=201)
    resent = client.simulate_post(f"/api/chats/{closed_chat}/wazzup24/messages/{failed.json['message_id']}/resend",
                                  headers=auth)
    assert resent.status_code == 201
    assert resent.json["text"] == "Hello Ivan! Your order #7 is on its way."
    assert [(b.get("templateId"), b.get("templateValues"), b.get("text")) for b in sent_bodies()] == \
        [(ORDER_UPDATE, ["Ivan", "#7"], None)] * 2


def test_the_openapi_body_schema_offers_a_template(client):
    spec = client.simulate_get("/api/openapi.json").json
    body = spec["paths"]["/api/chats/{chat_id}/wazzup24/send"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    [template] = [one for one in schema["oneOf"] if one["required"] == ["template_id"]]
    assert {"required": ["text"]} in template["not"]["anyOf"]
    assert all({"required": ["template_values"]} in one["not"]["anyOf"] for one in schema["oneOf"] if one is not template)
    assert schema["properties"]["template_values"]["type"] == "array"
    assert "/api/chats/{chat_id}/wazzup24/templates" in spec["paths"]
