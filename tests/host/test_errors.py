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


# ---------------------------------------------------------------- small public bodies, broken bodies


def test_a_body_nested_deeper_than_json_goes_is_refused_with_400(test_client):
    body = '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}"
    result = test_client.simulate_post("/api/probe/echo", body=body, content_type="application/json")
    _assert_error_shape(result, 400, "invalid_body")


def test_a_login_body_over_4_kib_is_413_before_it_is_read_or_parsed(app, client, monkeypatch):
    import host_stub.resources.session as session

    parsed = []
    monkeypatch.setattr(session, "load_body", lambda *args: parsed.append(1))
    padded = {"username": "alice", "password": "x", "pad": [[]] * 2000}
    body = _assert_error_shape(client.simulate_post("/api/session", json=padded), 413, "payload_too_large")
    assert "4096 bytes" in body["message"]
    status, body = _call_chunked(app, "/api/session", json.dumps(padded).encode())
    assert status.startswith("413") and "4096 bytes" in body["message"]
    assert parsed == []


class _BrokenInput:
    """``wsgi.input`` as gunicorn hands it on when the client's body is malformed or breaks off: its
    ``read(n)`` reads on until it has ``n`` bytes, and raises what stopped it."""

    def __init__(self, error: Exception):
        self.error = error

    def read(self, size=-1):
        raise self.error

    readline = read


def _broken_body_errors():
    from gunicorn.http.errors import InvalidChunkSize, NoMoreData

    return [InvalidChunkSize(b"zz"), NoMoreData(b""), ConnectionResetError(104, "Connection reset by peer")]


@pytest.mark.parametrize("path", ["/api/session", "/api/probe/echo", "/api/webhook"])
@pytest.mark.parametrize("error", _broken_body_errors(), ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_that_is_malformed_or_breaks_off_is_400_not_500(build_app, pm_with, make_plugin, caplog,
                                                                path, error, chunked):
    plugin = make_plugin("probe", register_routes=lambda helpdesk: [
        SimpleNamespace(template="/api/probe/echo", resource=EchoBody(), public=True)])
    app = build_app(pm_with(plugin))
    env = falcon.testing.create_environ(path=path, method="POST", headers={"Content-Type": "application/json"})
    if chunked:
        env.pop("CONTENT_LENGTH", None)
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        env["CONTENT_LENGTH"] = "100"
    env["wsgi.input"] = _BrokenInput(error)
    start = falcon.testing.StartResponseMock()
    answer = json.loads(b"".join(app(env, start)))
    assert start.status.startswith("400"), answer
    assert answer == {"status": 400, "code": "invalid_body", "message": "The request body is malformed or incomplete."}
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.e2e
def test_broken_bodies_over_gunicorn_are_400_without_a_traceback(gunicorn_host, tmp_path, pm):
    import socket

    from host_stub.db import make_engine
    from host_stub.schema import create_all

    url = f"sqlite:///{tmp_path / 'broken.sqlite3'}"
    engine = make_engine(url)
    create_all(engine, pm)
    engine.dispose()
    host = gunicorn_host({"HELPDESK_DATABASE_URL": url}, workers=1)
    port = int(host.url.rsplit(":", 1)[1])
    head = "Host: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    answers = []
    for path, rest, half_close in (("/api/session", "zz\r\n", False), ("/api/webhook", "zz\r\n", False),
                                   ("/api/session", '10\r\n{"user', True)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\n{head}{rest}".encode())
            if half_close:
                s.shutdown(socket.SHUT_WR)
            answers.append(s.recv(300).split(b"\r\n")[0])
    assert answers == [b"HTTP/1.1 400 Bad Request"] * 3
    host.stop()
    log = host.logs["app"].read_text()
    assert "Traceback" not in log and "ERROR" not in log


# ---------------------------------------------------------------- database errors: outage or bug


class DatabaseFails:
    """Raises what SQLAlchemy raises for a driver error; the statement carries a parameter."""

    def __init__(self):
        self.orig = None

    def on_get(self, req, resp):
        raise sa.exc.OperationalError("INSERT INTO messages (text) VALUES (?)", ("Ivan Petrov +79161234567",),
                                      self.orig)


def _sqlite_error(message, code, name):
    import sqlite3

    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode, error.sqlite_errorname = code, name
    return error


def _pg_error(name, message):
    import psycopg.errors

    return getattr(psycopg.errors, name)(message)


@pytest.mark.parametrize("make_orig, status, reason", [
    (lambda: _sqlite_error("database or disk is full", 13, "SQLITE_FULL"), 503,
     "OperationalError [SQLITE_FULL]: database or disk is full"),
    (lambda: _sqlite_error("database is locked", 5, "SQLITE_BUSY"), 503,
     "OperationalError [SQLITE_BUSY]: database is locked"),
    (lambda: _sqlite_error("unable to open database file", 14, "SQLITE_CANTOPEN"), 503,
     "OperationalError [SQLITE_CANTOPEN]: unable to open database file"),
    (lambda: _sqlite_error("no such column: chats.nope", 1, "SQLITE_ERROR"), 500,
     "OperationalError [SQLITE_ERROR]: no such column: chats.nope"),
    (lambda: _pg_error("DiskFull", "could not extend file: No space left on device"), 503,
     "DiskFull [53100]: could not extend file: No space left on device"),
    (lambda: _pg_error("LockNotAvailable", "canceling statement due to lock timeout"), 503,
     "LockNotAvailable [55P03]: canceling statement due to lock timeout"),
    (lambda: _pg_error("AdminShutdown", "terminating connection due to administrator command"), 503,
     "AdminShutdown [57P01]: terminating connection due to administrator command"),
    (lambda: _pg_error("OperationalError", "connection failed: Connection refused"), 503,
     "OperationalError: connection failed: Connection refused"),
    (lambda: _pg_error("ProgramLimitExceeded", "index row size 9000 exceeds maximum 2712"), 500,
     "ProgramLimitExceeded [54000]: index row size 9000 exceeds maximum 2712"),
], ids=["sqlite-full", "sqlite-busy", "sqlite-cantopen", "sqlite-no-column", "pg-disk-full", "pg-lock-timeout",
        "pg-shutdown", "pg-refused", "pg-limit"])
def test_a_database_outage_is_503_and_any_other_database_error_500_with_the_drivers_reason_logged(
        build_app, pm_with, make_plugin, caplog, make_orig, status, reason):
    resource = DatabaseFails()
    resource.orig = make_orig()
    plugin = make_plugin("probe", register_routes=lambda helpdesk: [
        SimpleNamespace(template="/api/probe/db", resource=resource, public=True)])
    result = falcon.testing.TestClient(build_app(pm_with(plugin))).simulate_get("/api/probe/db")
    if status == 503:
        _assert_error_shape(result, 503, "database_unavailable")
        assert result.headers["retry-after"] == "5"
    else:
        assert _assert_error_shape(result, 500, "internal_error")["message"] == "Internal server error."
    [record] = [r for r in caplog.records if r.name == "host_stub.errors"]
    assert record.levelname == "ERROR" and reason in record.getMessage()
    assert "GET /api/probe/db" in record.getMessage()
    assert "Petrov" not in caplog.text and "Petrov" not in result.text


def test_a_statement_the_database_cannot_run_is_500_with_the_reason_and_no_parameters_logged(
        build_app, pm_with, make_plugin, caplog):
    class BadColumn:
        def __init__(self):
            self.helpdesk = None

        def on_get(self, req, resp):
            with self.helpdesk.db.read() as conn:
                conn.execute(sa.text("SELECT nope FROM chats WHERE title = :title"), {"title": "Ivan Petrov"})

    resource = BadColumn()

    def routes(helpdesk):
        resource.helpdesk = helpdesk
        return [SimpleNamespace(template="/api/probe/bad", resource=resource, public=True)]

    app = build_app(pm_with(make_plugin("probe", register_routes=routes)))
    result = falcon.testing.TestClient(app).simulate_get("/api/probe/bad")
    _assert_error_shape(result, 500, "internal_error")
    [record] = [r for r in caplog.records if r.name == "host_stub.errors"]
    assert "database error on GET /api/probe/bad" in record.getMessage() and "nope" in record.getMessage()
    assert "test_errors.py" in record.context["at"]
    assert "Petrov" not in caplog.text
