"""Request bodies are JSON in UTF-8 only: forms, other types and other charsets answer 415.

A cross-site HTML form can post ``application/x-www-form-urlencoded`` (or multipart) without a
preflight; if the API parsed it, a form could sign an agent in (login CSRF) or post to other
routes. The Wazzup webhook reads its body itself and stays open to whatever label Wazzup sends.
"""

import json

import falcon.testing
import pytest
import sqlalchemy as sa

from host_stub.models import AgentSession
from host_stub.schemas import ErrorSchema

LOGIN_JSON = b'{"username": "alice", "password": "correct horse battery"}'
LOGIN_FORM = b"username=alice&password=correct+horse+battery"


def _assert_415(result, accepted: str = "application/json"):
    assert result.status_code == 415, result.text
    body = result.json
    assert ErrorSchema().validate(body) == {}
    assert (body["status"], body["code"]) == (415, "unsupported_media_type")
    assert accepted in body["message"]   # says what the route takes
    return body


def _sessions(helpdesk) -> int:
    with helpdesk.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(AgentSession.__table__)).scalar()


def test_a_form_login_is_415_and_signs_nobody_in(client, agent, helpdesk):
    result = client.simulate_post("/api/session", body=LOGIN_FORM,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    _assert_415(result)
    assert "set-cookie" not in result.headers
    assert _sessions(helpdesk) == 0


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\nalice\r\n'
                                        b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\n'
                                        b'correct horse battery\r\n--b--\r\n'),
    ("text/plain", LOGIN_JSON),
    ("application/xml", LOGIN_JSON),
    ("application/json-patch+json", LOGIN_JSON),
])
def test_a_login_in_any_other_type_is_415_naming_json(client, agent, helpdesk, content_type, body):
    result = client.simulate_post("/api/session", body=body, headers={"Content-Type": content_type})
    assert content_type.split(";")[0] in _assert_415(result)["message"]
    assert "set-cookie" not in result.headers and _sessions(helpdesk) == 0


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "utf-16", "windows-1251"])
def test_a_json_body_in_another_charset_is_415_naming_utf8(client, agent, charset):
    result = client.simulate_post("/api/session", body=LOGIN_JSON,
                                  headers={"Content-Type": f"application/json; charset={charset}"})
    message = _assert_415(result)["message"]
    assert "UTF-8" in message and charset in message


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
    'application/json; charset="utf-8"', "Application/JSON", None])
def test_json_in_utf8_or_unlabelled_still_signs_in(client, agent, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    result = client.simulate_post("/api/session", body=LOGIN_JSON, headers=headers)
    assert result.status_code == 200, result.text
    assert result.json["agent"]["username"] == "alice"


def test_wazzups_own_content_type_still_reaches_the_webhook(client, payload, wazzup_rows):
    from wazzup_plugin.sandbox.config import SandboxConfig

    content_type = SandboxConfig().webhook_content_type  # "application/json; charset-utf-8", as Wazzup sends
    result = client.simulate_post("/api/webhook", body=json.dumps(payload("incoming_text")).encode(),
                                  headers={"Content-Type": content_type})
    assert result.status_code == 200, result.text
    assert result.json["new_messages"] == 1 and len(wazzup_rows.messages()) == 1


def _operations(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield method, path, op


def _concrete(path: str) -> str:
    return path.replace("{chat_id}", "1").replace("{message_id}", "1")


def test_every_operation_that_takes_a_body_documents_413_and_415_and_answers_them(build_app, pm_with, agent,
                                                                                   make_wazzup_chat):
    client = falcon.testing.TestClient(build_app(pm_with(), config_fields={"max_body_bytes": 2048}))
    assert make_wazzup_chat() == 1   # the chat of the paths below (the file upload looks it up first)
    auth = agent["headers"]
    document = client.simulate_get("/api/openapi.json").json
    with_body = [(m, p, op) for m, p, op in _operations(document) if "requestBody" in op]
    assert {p for _, p, _ in with_body} >= {"/api/session", "/api/chats/{chat_id}/wazzup24/send"}
    for method, path, op in with_body:
        assert "413" in op["responses"], f"{method} {path}"
        too_large = client.simulate_request(method.upper(), _concrete(path), body=b"{}" + b" " * 4096,
                                            headers={**auth, "Content-Type": "application/json"})
        assert (too_large.status_code, too_large.json["code"]) == (413, "payload_too_large"), f"{method} {path}"
        if "/webhook" in path:  # Wazzup's deliveries are read whatever their label
            assert "415" not in op["responses"]
            continue
        assert "415" in op["responses"], f"{method} {path}"
        [accepted] = op["requestBody"]["content"]   # JSON, or a file upload's multipart form
        _assert_415(client.simulate_request(method.upper(), _concrete(path), body=b"text=hi",
                                            headers={**auth, "Content-Type": "application/x-www-form-urlencoded"}),
                    accepted)
