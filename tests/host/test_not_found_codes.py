"""One code per missing thing: ``chat_not_found`` for a chat on every route (host and plugin alike,
an id too large to exist included), ``message_not_found`` for a message; ``not_found`` only for a
route that does not exist."""

import re

import pytest

from host_stub.schemas import ErrorSchema

TOO_LARGE = [2**31, 2**63, -(2**31) - 5]


def _chat_routes(helpdesk):
    for route in helpdesk.registrations.routes:
        if "{chat_id:int}" not in route.template:
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(route.resource, f"on_{method}" + (f"_{route.suffix}" if route.suffix else "")):
                yield method.upper(), route.template


def _code(result, status=404):
    assert result.status_code == status, result.text
    assert ErrorSchema().validate(result.json) == {}
    return result.json["code"]


@pytest.mark.parametrize("chat_id", [424242, *TOO_LARGE])
def test_a_missing_chat_is_chat_not_found_on_every_chat_route(client, helpdesk, auth, chat_id):
    routes = list(_chat_routes(helpdesk))
    assert any("/wazzup24/" in t for _, t in routes), "the plugin's chat routes are missing"
    for method, template in routes:
        path = re.sub(r"\{chat_id:int\}", str(chat_id), template).replace("{message_id:int}", "1")
        result = client.simulate_request(method, path, headers=auth, json={"text": "hi"})
        assert _code(result) == "chat_not_found", f"{method} {path}: {result.text}"
        assert str(chat_id) in result.json["message"]


@pytest.mark.parametrize("message_id", [424242, 2**31])
def test_a_missing_message_is_message_not_found_on_resend(client, auth, make_wazzup_chat, message_id):
    chat = make_wazzup_chat()
    result = client.simulate_post(f"/api/chats/{chat}/wazzup24/messages/{message_id}/resend", headers=auth)
    assert _code(result) == "message_not_found"


def test_an_unknown_route_is_still_not_found(client, auth):
    assert _code(client.simulate_get("/api/chats/1/nothing-here", headers=auth)) == "not_found"
    assert _code(client.simulate_get("/api/chats/not-a-number", headers=auth)) == "not_found"


def test_the_openapi_document_names_chat_not_found_on_every_chat_operation(client):
    document = client.simulate_get("/api/openapi.json").json
    for path, item in document["paths"].items():
        if "{chat_id}" not in path:
            continue
        for method, op in item.items():
            assert "chat_not_found" in op["responses"]["404"]["description"], f"{method} {path}"
