"""WazzupClient: the Bearer key, timeouts, and one typed error per failure family."""

import io
import json
import socket
import threading
import time

import pytest
import requests
import urllib3

from wazzup_plugin.client import (WazzupApiError, WazzupAuthError, WazzupClient, WazzupInvalidData,
                                  WazzupRateLimited, WazzupUnavailable, normalize_code)

API_KEY = "test-api-key-0123456789abcdef"  # conftest.API_KEY (checked by the fixture below)
WAZZUP_API = "https://api.wazzup.test"

SEND = {"channelId": "c1", "chatType": "whatsapp", "chatId": "79011112233", "text": "hi", "crmMessageId": "m1"}


class RecordingLimiter:
    def __init__(self):
        self.acquired = 0
        self.blocked_for = []

    def acquire(self):
        self.acquired += 1

    def blocked(self, seconds):
        self.blocked_for.append(seconds)


@pytest.fixture
def limiter():
    return RecordingLimiter()


@pytest.fixture
def wazzup(http, limiter, api_key, wazzup_url):
    assert (api_key, wazzup_url) == (API_KEY, WAZZUP_API)
    return WazzupClient(http, WAZZUP_API, API_KEY, connect_timeout=1.5, read_timeout=7, rate_limiter=limiter)


def test_every_call_carries_the_bearer_key_and_both_timeouts(wazzup, wazzup_api, api_payload, limiter):
    seen = {}

    def callback(request):
        seen["auth"] = request.headers["Authorization"]
        seen["timeout"] = request.req_kwargs["timeout"]
        return 200, {}, json.dumps(api_payload("channels_one_active"))

    wazzup_api.add_callback("GET", f"{WAZZUP_API}/v3/channels", callback=callback)
    channels = wazzup.channels()
    assert [c["state"] for c in channels] == ["active", "active", "qr"]
    assert seen == {"auth": f"Bearer {API_KEY}", "timeout": (1.5, 7)}
    assert limiter.acquired == 1
    assert wazzup.last_latency_ms is not None


def test_a_calls_latency_is_its_own_threads_not_another_threads_call(wazzup, wazzup_api, api_payload):
    """The outbox worker's loop and its agents' sync share the client: a send logs its own call's time."""
    wazzup_api.get(f"{WAZZUP_API}/v3/channels", json=api_payload("channels_one_active"))
    wazzup.channels()
    seen_elsewhere = []
    other = threading.Thread(target=lambda: seen_elsewhere.append(wazzup.last_latency_ms))
    other.start()
    other.join(5)

    assert wazzup.last_latency_ms is not None and seen_elsewhere == [None]


def _name_not_resolving():
    return requests.ConnectionError(urllib3.exceptions.NameResolutionError(
        "api.wazzup24.com", None, socket.gaierror(-2, "Name or service not known")))


def _refused():
    return requests.ConnectionError(urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"))


@pytest.mark.parametrize("error, says", [
    (_name_not_resolving, "the helpdesk could not find Wazzup's server: its name does not resolve (DNS, or no network)"),
    (_refused, "the helpdesk could not connect to Wazzup (refused or unreachable: this server's network?)"),
    (lambda: requests.ConnectTimeout("no SYN-ACK"), "connecting to Wazzup timed out after 1.5 s"),
    (lambda: requests.ReadTimeout("no answer"), "Wazzup timed out: no answer within 7 s"),
    (lambda: requests.ConnectionError("Connection reset by peer"), "the connection to Wazzup broke off"),
])
def test_a_call_that_reaches_no_answer_says_which_side_failed(wazzup, wazzup_api, wazzup_url, error, says):
    wazzup_api.get(f"{wazzup_url}/v3/channels", body=error())
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.channels()
    assert caught.value.message.startswith(says), caught.value.message
    assert caught.value.http_status is None


def test_send_returns_wazzups_message_id(wazzup, wazzup_api, api_payload):
    wazzup_api.post(f"{WAZZUP_API}/v3/message", json=api_payload("message_created"), status=201)
    assert wazzup.send_message(SEND)["messageId"] == "f66c53a6-957a-46b2-b41b-5a2ef4844bcb"
    assert json.loads(wazzup_api.calls[0].request.body) == SEND


def test_send_accepted_with_an_unreadable_body_is_still_accepted(wazzup, wazzup_api):
    wazzup_api.post(f"{WAZZUP_API}/v3/message", body="<html>ok</html>", status=201)
    assert wazzup.send_message(SEND) == {"messageId": None, "chatId": None}


@pytest.mark.parametrize("body", [None, "", json.dumps({"error": "UNAUTHORIZED", "description": "Invalid API key"})])
def test_401_with_empty_or_json_body_is_an_auth_error(wazzup, wazzup_api, body):
    wazzup_api.get(f"{WAZZUP_API}/v3/channels", body=body or "", status=401)
    with pytest.raises(WazzupAuthError) as caught:
        wazzup.channels()
    assert caught.value.http_status == 401
    assert "WAZZUP24_API_KEY" in str(caught.value)


def test_403_for_a_route_the_key_may_not_use_is_an_auth_error(wazzup, wazzup_api):
    wazzup_api.post(f"{WAZZUP_API}/v3/iframe", status=403)
    with pytest.raises(WazzupAuthError):
        wazzup.iframe({"scope": "global", "user": {"id": "1", "name": "A"}})


def test_api_error_carries_code_description_data_and_request_id(wazzup, wazzup_api, api_payload):
    wazzup_api.post(f"{WAZZUP_API}/v3/message", json=api_payload("error_invalid_message_data"), status=400)
    with pytest.raises(WazzupApiError) as caught:
        wazzup.send_message(SEND)
    err = caught.value
    assert (err.code, err.description, err.data, err.request_id, err.http_status) == (
        "INVALID_MESSAGE_DATA", "Message data is invalid", {"fields": ["channelId"]},
        "d1b2c3d4e5f60718293a4b5c6d7e8f93", 400)


@pytest.mark.parametrize("fixture", ["error_repeated_crm_message_id", "error_repeated_camel"])
def test_codes_compare_ignoring_case_and_underscores(wazzup, wazzup_api, api_payload, fixture):
    wazzup_api.post(f"{WAZZUP_API}/v3/message", json=api_payload(fixture), status=400)
    with pytest.raises(WazzupApiError) as caught:
        wazzup.send_message(SEND)
    assert caught.value.is_code("REPEATED_CRM_MESSAGE_ID")
    assert caught.value.is_code("repeatedCrmMessageId")
    assert not caught.value.is_code("BAD_CONTACT")


def test_normalize_code():
    assert normalize_code("REPEATED_CRM_MESSAGE_ID") == normalize_code("repeatedCrmMessageId") == "repeatedcrmmessageid"


def test_nested_iframe_error_and_empty_4xx_body_still_give_a_code(wazzup, wazzup_api, api_payload):
    wazzup_api.post(f"{WAZZUP_API}/v3/iframe", json=api_payload("error_iframe_nested"), status=400)
    with pytest.raises(WazzupApiError) as caught:
        wazzup.iframe({"scope": "card"})
    assert caught.value.code == "INVALID_IFRAME_DATA"
    wazzup_api.get(f"{WAZZUP_API}/v3/webhooks", body="", status=404)
    with pytest.raises(WazzupApiError) as caught:
        wazzup.get_webhooks()
    assert caught.value.code == "HTTP_404"


@pytest.mark.parametrize("headers, expected", [({"Retry-After": "7"}, 7.0), ({}, None)])
def test_429_is_rate_limited_surely_not_sent_and_blocks_the_limiter(wazzup, wazzup_api, limiter, headers, expected):
    wazzup_api.post(f"{WAZZUP_API}/v3/message", status=429, headers=headers)
    with pytest.raises(WazzupRateLimited) as caught:
        wazzup.send_message(SEND)
    assert caught.value.maybe_sent is False
    assert caught.value.retry_after == expected
    assert limiter.blocked_for == [expected if expected is not None else 5.0]


@pytest.mark.parametrize("failure, maybe_sent", [
    ("refused", False), ("connect_timeout", False), ("read_timeout", True), ("dropped", True), ("broken", True)])
def test_connection_failures_say_whether_the_message_may_have_gone_out(wazzup, wazzup_api, network_error, failure,
                                                                       maybe_sent):
    error = (requests.exceptions.ChunkedEncodingError("broken answer") if failure == "broken"
             else network_error(failure))
    wazzup_api.post(f"{WAZZUP_API}/v3/message", body=error)
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.send_message(SEND)
    assert caught.value.maybe_sent is maybe_sent
    assert not isinstance(caught.value, WazzupRateLimited)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_send_may_have_gone_out(wazzup, wazzup_api, status):
    wazzup_api.post(f"{WAZZUP_API}/v3/message", json={"error": "UNKNOWN_ERROR"}, status=status)
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.send_message(SEND)
    assert caught.value.maybe_sent is True
    assert caught.value.http_status == status


def test_unreadable_channel_list_is_invalid_data(wazzup, wazzup_api):
    wazzup_api.get(f"{WAZZUP_API}/v3/channels", body="not json", status=200)
    with pytest.raises(WazzupInvalidData):
        wazzup.channels()
    wazzup_api.replace("GET", f"{WAZZUP_API}/v3/channels", json={"channels": []}, status=200)
    with pytest.raises(WazzupInvalidData):
        wazzup.channels()


@pytest.mark.parametrize("body", [{"channelId": "c", "chatType": "whatsapp"},
                                  {"channelId": "c", "chatType": "whatsapp", "text": "a", "contentUri": "https://x/y"},
                                  {"chatType": "whatsapp", "text": "a"}])
def test_bad_input_is_refused_before_any_call(wazzup, wazzup_api, body):
    with pytest.raises(WazzupInvalidData):
        wazzup.send_message(body)
    assert len(wazzup_api.calls) == 0


def test_webhook_routes_and_the_200_character_limit(wazzup, wazzup_api, api_payload):
    wazzup_api.get(f"{WAZZUP_API}/v3/webhooks", json=api_payload("webhooks_other"))
    wazzup_api.patch(f"{WAZZUP_API}/v3/webhooks", json=api_payload("webhooks_patched"))
    assert wazzup.get_webhooks()["webhooksUri"].startswith("https://crm.other.example/")
    subs = {"messagesAndStatuses": True}
    wazzup.set_webhooks("https://h.example/api/webhook", subs)
    assert json.loads(wazzup_api.calls[1].request.body) == {"webhooksUri": "https://h.example/api/webhook",
                                                            "subscriptions": subs}
    with pytest.raises(WazzupInvalidData):
        wazzup.set_webhooks("https://h.example/" + "a" * 200, subs)
    assert len(wazzup_api.calls) == 2


def test_iframe_returns_the_url(wazzup, wazzup_api, api_payload):
    wazzup_api.post(f"{WAZZUP_API}/v3/iframe", json=api_payload("iframe"))
    assert wazzup.iframe({"scope": "global"}).startswith("https://app.wazzup24.com/iframe/")


def test_a_missing_key_is_refused_at_construction(http):
    with pytest.raises(WazzupInvalidData):
        WazzupClient(http, WAZZUP_API, "")


def test_the_key_never_appears_in_errors(wazzup, wazzup_api):
    echo = {"error": "INVALID", "description": f"bad key {API_KEY}", "data": {"key": API_KEY}}
    wazzup_api.post(f"{WAZZUP_API}/v3/message", json=echo, status=400)
    with pytest.raises(WazzupApiError) as caught:
        wazzup.send_message(SEND)
    assert API_KEY not in str(caught.value) + caught.value.description + json.dumps(caught.value.data)
    wazzup_api.get(f"{WAZZUP_API}/v3/channels", body=requests.ConnectionError(f"boom Bearer {API_KEY}"))
    with pytest.raises(WazzupUnavailable) as caught:
        wazzup.channels()
    assert API_KEY not in str(caught.value)


class MonotonicClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Trickle(io.RawIOBase):
    """An answer's body arriving one byte per ``seconds`` of the client's clock."""

    def __init__(self, data: bytes, clock: MonotonicClock, seconds: float):
        self.data, self.clock, self.seconds = data, clock, seconds

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.data:
            return 0
        self.clock.now += self.seconds
        buffer[0], self.data = self.data[0], self.data[1:]
        return 1


@pytest.mark.parametrize("method, status, outcome", [
    ("POST", 201, "accepted"), ("POST", 400, "maybe sent"), ("POST", 502, "maybe sent"), ("GET", 200, "not sent")])
def test_an_answer_trickling_in_ends_the_call_at_its_deadline(http, wazzup_api, limiter, method, status, outcome):
    """requests' read timeout bounds each read, not the answer: a call must end by connect + read
    timeout (8.5 s here) however slowly Wazzup answers, or a send would outlive its outbox lease."""
    clock = MonotonicClock()
    wazzup = WazzupClient(http, WAZZUP_API, API_KEY, connect_timeout=1.5, read_timeout=7, rate_limiter=limiter,
                          clock=clock)
    body = json.dumps({"messageId": "f66c53a6-957a-46b2-b41b-5a2ef4844bcb", "chatId": "79011112233"}
                      if method == "POST" else [{"channelId": "c1", "transport": "whatsapp", "state": "active"}])
    wazzup_api.add_callback(method, f"{WAZZUP_API}/v3/{'message' if method == 'POST' else 'channels'}",
                            callback=lambda request: (status, {"Content-Type": "application/json"},
                                                      io.BufferedReader(Trickle(body.encode(), clock, 0.5))))
    start = clock()
    call = (lambda: wazzup.send_message(SEND)) if method == "POST" else wazzup.channels
    if outcome == "accepted":  # the status line said so: the Wazzup id comes with the echo
        assert call() == {"messageId": None, "chatId": None}
    else:
        with pytest.raises(WazzupUnavailable) as caught:
            call()
        assert caught.value.maybe_sent is (outcome == "maybe sent")
        assert "timed out" in caught.value.message
    assert clock() - start <= 8.5 + 0.5  # the deadline, and the one read that crossed it
    assert len(body) * 0.5 > 20  # whereas the whole answer would have taken this long


def test_a_real_socket_trickling_its_answer_is_cut_at_the_deadline():
    """The same over a real socket: each read is given only the time left, so the call ends by
    connect + read timeout (1 s here), not after the 8 s the answer takes to trickle in."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            body = b'{"status": 400, "error": "BAD_CONTACT", "description": "x"}'
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body))
            try:
                for byte in body[:32]:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.25)
            except OSError:
                pass  # the client gave up and closed the connection

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    with requests.Session() as session:
        wazzup = WazzupClient(session, f"http://127.0.0.1:{server.getsockname()[1]}", API_KEY, connect_timeout=0.5,
                              read_timeout=0.5, rate_limiter=RecordingLimiter())
        start = time.monotonic()
        with pytest.raises(WazzupUnavailable) as caught:
            wazzup.send_message(SEND)
        took = time.monotonic() - start
    serving.join(15)
    server.close()
    assert caught.value.maybe_sent is True and caught.value.http_status == 400
    assert took < 2.0
