"""The OpenAPI 3 document: valid, public, and listing the plugins' routes too."""

from types import SimpleNamespace

import falcon.testing
from marshmallow import Schema, fields
from openapi_spec_validator import validate


class _Ping(Schema):
    pong = fields.Boolean()


class PingResource:
    openapi = {"get": {"summary": "Ping the SMS gateway",
                       "responses": {"200": {"description": "pong",
                                             "content": {"application/json": {"schema": _Ping}}}}}}

    def on_get(self, req, resp):
        resp.media = {"pong": True}


def test_openapi_document_is_valid_openapi_3_and_public(client):
    result = client.simulate_get("/api/openapi.json")
    assert result.status_code == 200
    document = result.json
    validate(document)
    assert document["openapi"].startswith("3.")


def test_openapi_lists_every_api_route_with_its_security(app, client):
    document = client.simulate_get("/api/openapi.json").json
    paths = document["paths"]
    assert "/api/chats/{chat_id}/messages" in paths
    assert paths["/api/health"]["get"]["security"] == []
    assert paths["/api/chats"]["get"]["security"] == [{"bearerAuth": []}]
    assert "401" in paths["/api/chats"]["get"]["responses"]
    names = {p["name"] for p in paths["/api/chats"]["get"]["parameters"]}
    assert {"limit", "cursor", "type", "q", "changed_since"} <= names


def test_openapi_schemas_include_plugin_fields(client):
    schemas = client.simulate_get("/api/openapi.json").json["components"]["schemas"]
    assert "wazzup_chat_id" in schemas["Chat"]["properties"]
    assert "wazzup_message_id" in schemas["Message"]["properties"]
    assert {"status", "code", "message"} <= set(schemas["Error"]["properties"])


def test_openapi_includes_the_routes_plugins_register(build_app, pm_with, make_plugin):
    plugin = make_plugin("sms", register_routes=lambda helpdesk: [
        SimpleNamespace(template="/api/chats/{chat_id:int}/sms/ping", resource=PingResource())])
    document = falcon.testing.TestClient(build_app(pm_with(plugin))).simulate_get("/api/openapi.json").json
    validate(document)
    operation = document["paths"]["/api/chats/{chat_id}/sms/ping"]["get"]
    assert operation["summary"] == "Ping the SMS gateway" and operation["tags"] == ["sms"]
    assert operation["parameters"][0] == {"in": "path", "name": "chat_id", "required": True,
                                          "schema": {"type": "integer", "minimum": 0}}
