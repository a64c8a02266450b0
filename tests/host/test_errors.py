"""One JSON error shape everywhere: unknown routes, methods, bad input, big bodies, bugs, outages."""

import io
import json
from types import SimpleNamespace

import falcon.testing
import pytest
import sqlalchemy as sa
from marshmallow import Schema, fields

from host_stub.schemas import ErrorSchema
from host_stub.validation import load_body


def _assert_error_shape(result, status, code):
    assert result.status_code == status
    assert result.headers["content-type"].startswith("application/json")
    body = result.json
    assert ErrorSchema().validate(body) == {}
    assert (body["status"], body["code"]) == (status, code)
    assert body["message"]
    return body


class _Body(Schema):
    name = fields.String(required=True)


class EchoBody:
    def on_post(self, req, resp):
        resp.media = load_body(_Body(), req)


class Broken:
    def on_get(self, req, resp):
        raise RuntimeError("password=hunter2 at /srv/internal/secret.py line 42")


class DatabaseDown:
    def on_get(self, req, resp):
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused to 10.0.0.5"))


@pytest.fixture
def test_client(build_app, pm_with, make_plugin):
    plugin = make_plugin("probe", register_routes=lambda helpdesk: [
        SimpleNamespace(template="/api/probe/echo", resource=EchoBody(), public=True),
        SimpleNamespace(template="/api/probe/broken", resource=Broken(), public=True),
        SimpleNamespace(template="/api/probe/db", resource=DatabaseDown(), public=True)])
    return falcon.testing.TestClient(build_app(pm_with(plugin)))


def test_unknown_route_is_404_in_the_error_shape(client, auth):
    _assert_error_shape(client.simulate_get("/api/nothing-here", headers=auth), 404, "not_found")
    _assert_error_shape(client.simulate_get("/api/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_with_allow(client, auth):
    result = client.simulate_delete("/api/chats", headers=auth)
    _assert_error_shape(result, 405, "method_not_allowed")
    assert "GET" in result.headers["allow"]


def test_bad_query_is_422_naming_the_field(client, auth):
    body = _assert_error_shape(client.simulate_get("/api/chats", params={"limit": "abc"}, headers=auth),
                               422, "invalid_query")
    assert "limit" in body["fields"]
    body = _assert_error_shape(client.simulate_get("/api/chats", query_string="limit=1&limit=2", headers=auth),
                               422, "invalid_query")
    assert body["fields"] == {"limit": ["given more than once"]}


def test_bad_json_is_400(test_client):
    result = test_client.simulate_post("/api/probe/echo", body=b"{not json", content_type="application/json")
    _assert_error_shape(result, 400, "invalid_json")
    result = test_client.simulate_post("/api/probe/echo", body=b"[1, 2]", content_type="application/json")
    _assert_error_shape(result, 400, "invalid_body")


def test_invalid_body_is_422_naming_the_field(test_client):
    result = test_client.simulate_post("/api/probe/echo", json={"name": 5})
    assert _assert_error_shape(result, 422, "invalid_body")["fields"] == {"name": ["Not a valid string."]}
    assert test_client.simulate_post("/api/probe/echo", json={"name": "ok"}).json == {"name": "ok"}


def test_oversized_body_is_413_before_anyone_reads_it(build_app, pm_with):
    client = falcon.testing.TestClient(build_app(pm_with(), config_fields={"max_body_bytes": 2048}))
    _assert_error_shape(client.simulate_post("/api/chats/1/read", body=b"x" * 4096), 413, "payload_too_large")


def _call_chunked(app, path, body: bytes):
    """A request with Transfer-Encoding: chunked and no Content-Length (as gunicorn passes it on)."""
    env = falcon.testing.create_environ(path=path, method="POST", headers={"Content-Type": "application/json"})
    env.pop("CONTENT_LENGTH", None)
    env["HTTP_TRANSFER_ENCODING"] = "chunked"
    env["wsgi.input"] = io.BytesIO(body)
    start = falcon.testing.StartResponseMock()
    payload = b"".join(app(env, start))
    return start.status, json.loads(payload)


def test_oversized_chunked_body_without_content_length_is_413(build_app, pm_with, make_plugin):
    plugin = make_plugin("probe", register_routes=lambda helpdesk: [
        SimpleNamespace(template="/api/probe/echo", resource=EchoBody(), public=True)])
    app = build_app(pm_with(plugin), config_fields={"max_body_bytes": 2048})
    status, body = _call_chunked(app, "/api/probe/echo", json.dumps({"name": "x" * 4096}).encode())
    assert status.startswith("413") and body["code"] == "payload_too_large"
    status, body = _call_chunked(app, "/api/probe/echo", json.dumps({"name": "small"}).encode())
    assert body == {"name": "small"}  # a chunked body under the limit is read, not dropped


def test_unexpected_error_is_500_without_internals(test_client, caplog):
    result = test_client.simulate_get("/api/probe/broken")
    assert _assert_error_shape(result, 500, "internal_error") == {
        "status": 500, "code": "internal_error", "message": "Internal server error."}
    assert "hunter2" not in result.text and "secret.py" not in result.text
    assert "unhandled error on GET /api/probe/broken" in caplog.text


def test_database_outage_is_503_with_retry_after_and_no_details(test_client):
    result = test_client.simulate_get("/api/probe/db")
    _assert_error_shape(result, 503, "database_unavailable")
    assert result.headers["retry-after"] == "5"
    assert "10.0.0.5" not in result.text


def test_unauthorized_is_401_in_the_error_shape_with_a_challenge(client):
    result = client.simulate_get("/api/chats")
    body = _assert_error_shape(result, 401, "unauthorized")
    assert "Bearer" in body["message"] and result.headers["www-authenticate"] == "Bearer"


def test_api_responses_are_not_cached_and_carry_security_headers(client, auth):
    result = client.simulate_get("/api/chats", headers=auth)
    assert result.headers["cache-control"] == "no-store"
    assert result.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in result.headers["content-security-policy"]
