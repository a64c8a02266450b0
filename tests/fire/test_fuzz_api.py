"""Schemathesis against our own OpenAPI document: every check, authenticated, in process.

The document is what integrators build against; this proves each route answers as declared for
any input it allows (and refuses, with a declared 4xx, what it does not), never with a 5xx.
"""

from __future__ import annotations

import json
import uuid

import pytest
import responses
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, given
from hypothesis.errors import Unsatisfiable
from hypothesis import settings as hypothesis_settings

from wazzup_plugin.sandbox.deliveries import delivery, incoming_message, status_update

from fire_support import CHANNEL_ID, FIRE_WEBHOOK_SECRET

pytestmark = [pytest.mark.slow]

WAZZUP_API = "https://api.wazzup.test"


@pytest.fixture
def settings(settings):  # the app settings fixture, with the webhook protected
    settings["WAZZUP24_WEBHOOK_SECRET"] = FIRE_WEBHOOK_SECRET
    return settings


@pytest.fixture
def seeded(client, auth, wazzup_api):
    """A Wazzup chat with incoming and sent messages, so ids in paths meet real rows; Wazzup answering."""
    def accept(request):
        sent = json.loads(request.body)
        return 201, {}, json.dumps({"messageId": str(uuid.uuid4()), "chatId": sent.get("chatId")})

    wazzup_api.add_callback(responses.POST, f"{WAZZUP_API}/v3/message", callback=accept)
    wazzup_api.get(f"{WAZZUP_API}/v3/channels", json=[{"channelId": CHANNEL_ID, "transport": "whatsapp",
                                                        "plainId": "79990000000", "state": "active"}])
    wazzup_api.get(f"{WAZZUP_API}/v3/webhooks", json={"webhooksUri": "https://helpdesk.example/api/webhook",
                                                      "subscriptions": {"messagesAndStatuses": True}})
    wazzup_api.post(f"{WAZZUP_API}/v3/iframe", json={"url": "https://app.wazzup24.com/iframe/abc"})
    for n in range(3):
        body = delivery(messages=[incoming_message(channel_id=CHANNEL_ID, chat_id=f"7916000030{n}", text=f"hi {n}",
                                                   message_id=str(uuid.uuid4()))])
        assert client.simulate_post("/api/webhook", json=body, params={"token": FIRE_WEBHOOK_SECRET}).status_code == 200
    sent = client.simulate_post("/api/chats/1/wazzup24/send", json={"text": "hello"}, headers=auth)
    assert sent.status_code in (201, 202), sent.text
    status = delivery(statuses=[status_update(message_id=sent.json["wazzup_message_id"] or str(uuid.uuid4()),
                                              status="delivered")])
    client.simulate_post("/api/webhook", json=status, params={"token": FIRE_WEBHOOK_SECRET})


MODES = {"positive": GenerationMode.POSITIVE, "negative": GenerationMode.NEGATIVE}


def _documented_operations() -> list[str]:
    """``METHOD /path`` of every operation in the OpenAPI document of an app built just to read it."""
    import falcon.testing

    from host_stub.app import create_app
    from host_stub.config import Config
    from host_stub.plugins import get_plugin_manager

    import wazzup_plugin.hooks

    pm = get_plugin_manager(load_entrypoints=False, extra_plugins=[wazzup_plugin.hooks])
    app = create_app(Config(database_url="sqlite://", env={"WAZZUP24_API_KEY": "k" * 16}), pm)
    paths = falcon.testing.TestClient(app).simulate_get("/api/openapi.json").json["paths"]
    return [f"{method.upper()} {path}" for path, item in sorted(paths.items()) for method in item
            if method in ("get", "post", "put", "patch", "delete")]


def pytest_generate_tests(metafunc):
    # One test per documented operation (schemathesis.pytest.from_fixture does not run under pytest 9).
    if "operation" in metafunc.fixturenames:
        metafunc.parametrize("operation", _documented_operations())


def _excluded_checks(case) -> list:
    query = case.query or {}
    if query.get("cursor") is not None or {"after", "changed_since"} <= set(query):
        # Cursors are opaque, and after/changed_since exclude each other (as documented): a request
        # breaking either rule is rightly refused with 422, which OpenAPI parameters cannot express.
        # Every other check still runs on these cases.
        return [schemathesis.checks.positive_data_acceptance]
    if set(query) - {parameter.name for parameter in case.operation.query}:
        # A query parameter the operation does not document (e.g. ``?=false``) is ignored, as most
        # APIs do (a cache-buster ``_=…``): the request is answered on the ones it documents, which the
        # other checks still hold to. The negative mode sometimes adds one and expects a refusal.
        return [schemathesis.checks.negative_data_rejection]
    body = case.body if isinstance(case.body, dict) else {}
    if body.get("reply_to") is not None:
        # The quoted message must be one of the chat's (422 on reply_to otherwise): data, not a shape
        # OpenAPI can express, like a cursor. Every other check still runs on these cases.
        return [schemathesis.checks.positive_data_acceptance]
    if case.path == "/api/wazzup24/chats" and (body.get("channel_id") is not None or _ambiguous(body.get("phone"))):
        # The channel must be one of the account's, and 11 digits beginning with 8 other than 87/89
        # are refused as ambiguous (a Russian number with 8 for +7, or another country's): data, not shape.
        return [schemathesis.checks.positive_data_acceptance]
    return []


def _ambiguous(phone) -> bool:
    digits = "".join(c for c in phone if "0" <= c <= "9") if isinstance(phone, str) else ""
    return len(digits) == 11 and digits[0] == "8" and digits[1] not in "79" and not phone.strip().startswith("+")


def test_operation_answers_as_documented(operation, app, seeded, auth):
    method, path = operation.split(" ", 1)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    # A body over its route's size limit is refused 413 `payload_too_large` (documented) before it is
    # validated: as much a rejection of invalid data as a 400, but not in the check's default list.
    rejection = schema.config.checks.negative_data_rejection
    if "413" not in rejection.expected_statuses:
        schema.config.checks.negative_data_rejection = type(rejection)(
            expected_statuses=[*rejection.expected_statuses, "413"])
    api_operation = schema[path][method]
    failures = {}
    for mode_name, mode in MODES.items():
        @hypothesis_settings(max_examples=25, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        @given(case=api_operation.as_strategy(generation_mode=mode))
        def check(case):
            if case.path in ("/api/webhook", "/api/wazzup24/webhook"):
                case.query = {**(case.query or {}), "token": FIRE_WEBHOOK_SECRET}
            case.call_and_validate(headers=dict(auth), excluded_checks=_excluded_checks(case))  # all checks

        try:
            check()
        except Unsatisfiable:
            continue  # an operation without inputs has no invalid variant to generate
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report both modes' findings
            failures[mode_name] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{mode} data:\n{text}" for mode, text in failures.items())


def test_the_plugin_operations_are_documented():
    assert any("/wazzup24/" in op for op in _documented_operations()), "the plugin's operations are missing"
