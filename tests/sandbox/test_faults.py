"""Faults injected into the sandbox's API: 5xx, slow answers, dropped connections, downtime."""

from __future__ import annotations

import time

import pytest
import requests

from wazzup_plugin.sandbox.app import create_sandbox_app


def fault(sandbox_client, **spec):
    result = sandbox_client.simulate_post("/_sandbox/faults", json=spec)
    assert result.status_code == 201, result.text
    return result.json


def test_fail_answers_5xx_for_the_next_n_calls_without_accepting(v3, sandbox_client, sandbox):
    fault(sandbox_client, kind="fail", count=2, status=503)
    assert v3.send(crmMessageId="c1").status_code == 503
    assert v3.get("/v3/channels").status_code == 503
    assert v3.send(crmMessageId="c1").status_code == 201
    assert sandbox.received("c1")["accepted"] == 1


def test_fail_after_accept_answers_5xx_for_a_message_that_went_out(v3, sandbox_client, sandbox):
    fault(sandbox_client, kind="fail", afterAccept=True)
    result = v3.send(crmMessageId="c2")
    assert result.status_code == 500
    assert result.content == b""
    assert sandbox.received("c2")["accepted"] == 1
    assert v3.send(crmMessageId="c2").json["error"] == "REPEATED_CRM_MESSAGE_ID"


def test_fail_can_carry_a_json_body_and_target_one_path(v3, sandbox_client):
    fault(sandbox_client, kind="fail", path="/v3/message", jsonBody=True)
    assert v3.get("/v3/channels").status_code == 200
    result = v3.send()
    assert result.status_code == 500
    assert result.json["error"] == "UNKNOWN_ERROR"


def test_slow_answers_after_accepting(sandbox_config, clock, http):
    slept = []
    app = create_sandbox_app(sandbox_config, clock=clock, http=http, start_sender=False, sleep=slept.append)
    from falcon.testing import TestClient

    from tests.sandbox.conftest import V3

    v3 = V3(TestClient(app), sandbox_config.api_key)
    fault(v3.client, kind="slow", seconds=31)
    assert v3.send(crmMessageId="s1").status_code == 201
    assert slept == [31.0]
    assert app.sandbox.received("s1")["accepted"] == 1


def test_drop_loses_the_connection_after_accepting(v3, sandbox_client, sandbox):
    fault(sandbox_client, kind="drop")
    with pytest.raises(ConnectionAbortedError):
        v3.send(crmMessageId="d1")
    assert sandbox.received("d1")["accepted"] == 1
    assert v3.send(crmMessageId="d2").status_code == 201


def test_drop_before_accepting_sends_nothing(v3, sandbox_client, sandbox):
    fault(sandbox_client, kind="drop", afterAccept=False)
    with pytest.raises(ConnectionAbortedError):
        v3.send(crmMessageId="d3")
    assert sandbox.received("d3")["accepted"] == 0


def test_downtime_answers_503_until_the_window_ends(v3, sandbox_client, clock):
    fault(sandbox_client, kind="downtime", seconds=30)
    assert v3.get("/v3/channels").status_code == 503
    assert sandbox_client.simulate_get("/_sandbox/health").status_code == 200   # control keeps working
    assert sandbox_client.simulate_get("/_sandbox/faults").json["downtime"]["mode"] == "503"
    clock.advance(30)
    assert v3.get("/v3/channels").status_code == 200


def test_faults_can_be_listed_and_cleared(v3, sandbox_client):
    fault(sandbox_client, kind="fail", count=5)
    assert sandbox_client.simulate_get("/_sandbox/faults").json["queued"][0]["remaining"] == 5
    sandbox_client.simulate_delete("/_sandbox/faults")
    assert v3.get("/v3/channels").status_code == 200


@pytest.mark.parametrize("spec", [{"kind": "explode"}, {"kind": "fail", "count": 0}, {"kind": "fail", "status": 200},
                                  {"kind": "slow"}, {"kind": "downtime", "seconds": 5, "mode": "maybe"},
                                  {"kind": "downtime"}])
def test_an_invalid_fault_is_refused(sandbox_client, spec):
    assert sandbox_client.simulate_post("/_sandbox/faults", json=spec).status_code == 400


# ---------------------------------------------------------------- over real HTTP


def _send(server, crm_id):
    sb = server.app.sandbox
    return requests.post(server.url + "/v3/message", timeout=5,
                         headers={"Authorization": f"Bearer {sb.config.api_key}"},
                         json={"channelId": sb.config.channels[0].channelId, "chatType": "whatsapp",
                               "chatId": "79161234567", "text": "hi", "crmMessageId": crm_id})


def test_a_dropped_connection_over_http_is_a_connection_error_after_accepting(sandbox_server):
    requests.post(sandbox_server.url + "/_sandbox/faults", json={"kind": "drop"}, timeout=5)
    with pytest.raises(requests.ConnectionError):
        _send(sandbox_server, "h1")
    assert sandbox_server.app.sandbox.received("h1")["accepted"] == 1
    assert _send(sandbox_server, "h2").status_code == 201


def test_a_slow_answer_over_http_times_the_client_out_after_accepting(sandbox_server):
    requests.post(sandbox_server.url + "/_sandbox/faults", json={"kind": "slow", "seconds": 1.5}, timeout=5)
    sb = sandbox_server.app.sandbox
    with pytest.raises(requests.ReadTimeout):
        requests.post(sandbox_server.url + "/v3/message", timeout=(5, 0.3),
                      headers={"Authorization": f"Bearer {sb.config.api_key}"},
                      json={"channelId": sb.config.channels[0].channelId, "chatType": "whatsapp",
                            "chatId": "79161234567", "text": "hi", "crmMessageId": "h3"})
    assert sb.received("h3")["accepted"] == 1


def test_a_refusing_downtime_refuses_connections_then_listens_again(sandbox_server):
    # A window long enough that a loaded machine still sees it; the loops are bounded by time.
    requests.post(sandbox_server.url + "/_sandbox/faults", json={"kind": "downtime", "seconds": 3, "mode": "refuse"},
                  timeout=5)
    refused = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:   # the listener closes within a poll interval
        try:
            requests.get(sandbox_server.url + "/_sandbox/health", timeout=1)
        except requests.RequestException as exc:
            # A connection queued in the backlog as the listener closes is reset (or left
            # unanswered), not refused; the refusals follow it.
            refused = "refused" in str(exc).lower()
            if refused:
                break
        time.sleep(0.05)
    assert refused
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            assert _send(sandbox_server, "h4").status_code == 201
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    assert sandbox_server.app.sandbox.received("h4")["accepted"] == 1
