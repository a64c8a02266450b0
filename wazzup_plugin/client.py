"""The Wazzup24 API v3 client: one place that speaks HTTP to Wazzup.

Every failure becomes one of four typed errors (the seed's four cases):

- :class:`WazzupAuthError` — Wazzup refused our API key (401; 403 for a key not allowed on a route).
- :class:`WazzupUnavailable` — no usable answer: connection refused, timeout, dropped connection,
  429, 5xx. ``maybe_sent`` tells the outbox whether the request may have reached Wazzup (a read
  timeout, a dropped connection, a 5xx) or surely did not (connection refused, connect timeout, 429).
- :class:`WazzupApiError` — Wazzup answered with an error code (``BAD_CONTACT`` ...).
- :class:`WazzupInvalidData` — our side: bad input to the client, or an answer we cannot read.

The API key travels only in the ``Authorization`` header; error messages are built from our own
words and Wazzup's error fields, and are passed through :meth:`WazzupClient.redact` anyway.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable
from urllib.parse import quote

import requests
import urllib3.exceptions

from wazzup_plugin.bounded_read import Overdue, chunks_within
from wazzup_plugin.text import is_id

log = logging.getLogger(__name__)

MASK = "***"
TEMPLATE_PAGE, TEMPLATE_PAGES = 100, 20  # GET /v3/templates/whatsapp: per page (Wazzup's example), pages at most
USERS_PER_CALL, USER_FIELD_MAX = 100, 200  # POST /v3/users: users per call, and the longest id and name


def normalize_code(code: str | None) -> str:
    """``REPEATED_CRM_MESSAGE_ID`` and ``repeatedCrmMessageId`` compare equal."""
    return (code or "").replace("_", "").replace("-", "").lower()


class WazzupError(Exception):
    """Base of every client error. ``operation`` names the call (``send_message``)."""

    maybe_sent = False

    def __init__(self, message: str, *, operation: str = "", http_status: int | None = None):
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.http_status = http_status


class WazzupAuthError(WazzupError):
    """Wazzup refused our API key: an upstream configuration problem, not the agent's."""


class WazzupUnavailable(WazzupError):
    """Wazzup could not be reached or did not answer usefully; worth retrying later."""

    def __init__(self, message: str, *, maybe_sent: bool, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after


class WazzupRateLimited(WazzupUnavailable):
    """429 from Wazzup, or our own limiter would have had to wait too long: nothing was sent."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, maybe_sent=False, retry_after=retry_after, **kw)


class WazzupApiError(WazzupError):
    """Wazzup answered with an error object: ``code``, ``description``, ``data``, ``request_id``."""

    def __init__(self, code: str, description: str = "", *, data: Any = None, request_id: str | None = None,
                 http_status: int | None = None, operation: str = ""):
        super().__init__(f"Wazzup error {code}" + (f": {description}" if description else ""),
                         operation=operation, http_status=http_status)
        self.code = code
        self.description = description
        self.data = data
        self.request_id = request_id

    def is_code(self, *codes: str) -> bool:
        mine = normalize_code(self.code)
        return any(mine == normalize_code(c) for c in codes)


class WazzupInvalidData(WazzupError):
    """Bad input given to the client, or an answer from Wazzup we cannot read."""


class RateLimiter:
    """What the client needs of a limiter (see ``outbound/ratelimit.py``); this one never waits."""

    def acquire(self) -> None:
        return None

    def blocked(self, seconds: float) -> None:
        return None


def _reason_chain(exc: BaseException):
    """The exception and everything it wraps (requests → urllib3 → socket)."""
    seen = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        stack.append(getattr(e, "reason", None))
        stack.append(e.__cause__)
        stack.append(e.__context__)


def classify_connection_error(exc: requests.RequestException) -> bool:
    """True when the request may have reached Wazzup (so a blind retry could send twice)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.Timeout):  # read timeout: the request went out, no answer came
        return True
    for e in _reason_chain(exc):
        # No TCP connection was ever made: the request surely did not go out.
        if isinstance(e, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.NameResolutionError,
                          ConnectionRefusedError, urllib3.exceptions.ConnectTimeoutError)):
            return False
    return True  # dropped connection, reset, broken answer: assume it may have been sent


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(float(value.strip()), 3600.0))
    except ValueError:
        return None  # an HTTP date: rare; one window is the fallback


class WazzupClient:
    """Wazzup24 API v3 over an injected ``requests.Session``.

    ``clock`` is a monotonic seconds callable: it measures latency and each call's deadline
    (``connect_timeout + read_timeout`` for the whole call, however Wazzup's answer trickles in).
    """

    def __init__(self, session: requests.Session, base_url: str, api_key: str, *, connect_timeout: float = 5.0,
                 read_timeout: float = 20.0, rate_limiter: RateLimiter | None = None,
                 clock: Callable[[], float] = time.monotonic, rate_window: float = 5.0):
        if not api_key:
            raise WazzupInvalidData("no Wazzup API key configured (WAZZUP24_API_KEY)")
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = (connect_timeout, read_timeout)
        # The whole call (connecting, sending, Wazzup's answer) ends by then: the outbox's lease on a
        # message outlasts it (outbound/outbox.py, lease_seconds), so no other worker takes it up meanwhile.
        self.deadline = connect_timeout + read_timeout
        self.rate_limiter = rate_limiter or RateLimiter()
        self.clock = clock
        self.rate_window = rate_window
        # Per thread: the outbox worker's loop, its agents' sync and its media thread share one client,
        # and a send's logged latency must be its own call's.
        self._calls = threading.local()

    @property
    def last_latency_ms(self) -> float | None:
        """This thread's last call's time to Wazzup's answer, in ms; None when it got none."""
        return getattr(self._calls, "latency_ms", None)

    @last_latency_ms.setter
    def last_latency_ms(self, value: float | None) -> None:
        self._calls.latency_ms = value

    # ------------------------------------------------------------ routes

    def channels(self) -> list[dict]:
        data = self._request("GET", "/v3/channels", operation="channels")
        if not isinstance(data, list) or not all(isinstance(c, dict) for c in data):
            raise WazzupInvalidData("Wazzup's channel list is not a list of objects", operation="channels")
        return data

    def send_message(self, body: dict, *, budget_taken: bool = False) -> dict:
        """``POST /v3/message``. Returns ``{"messageId": str | None, "chatId": ...}``.

        ``budget_taken``: the caller already took this call from the rate limiter (the outbox does,
        in the transaction that records the attempt), so it is not taken a second time.

        A 2xx whose body we cannot read still means "accepted" (``messageId`` None: the id comes
        with the echo), so it is never reported as a failure that could lead to a second send.
        """
        if not body.get("channelId") or not body.get("chatType"):
            raise WazzupInvalidData("a message needs channelId and chatType", operation="send_message")
        if sum(key in body for key in ("text", "contentUri", "templateId")) != 1:
            raise WazzupInvalidData("a message needs exactly one of text, contentUri and templateId",
                                    operation="send_message")
        data = self._request("POST", "/v3/message", json_body=body, operation="send_message", lenient=True,
                             budget_taken=budget_taken)
        if not isinstance(data, dict):
            data = {}
        message_id = data.get("messageId")
        if message_id is not None and not isinstance(message_id, str):
            message_id = str(message_id)
        if message_id and not is_id(message_id, 64):
            # Too long for the column, or holding a character no database stores: recording it would
            # fail after Wazzup took the message. Accepted all the same; the echo brings the id.
            message_id = None
        if not message_id:
            log.warning("Wazzup accepted a message without a readable messageId; it will be matched by its echo")
        return {"messageId": message_id or None, "chatId": data.get("chatId")}

    def whatsapp_templates(self, page_size: int = TEMPLATE_PAGE, max_pages: int = TEMPLATE_PAGES) -> list[dict]:
        """``GET /v3/templates/whatsapp``, page by page (``limit``/``offset``) until a short page;
        at most ``max_pages`` pages, so an answer that never ends cannot keep us asking."""
        templates: list[dict] = []
        for page in range(max_pages):
            data = self._request("GET", f"/v3/templates/whatsapp?limit={page_size}&offset={page * page_size}",
                                 operation="templates")
            if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
                raise WazzupInvalidData("Wazzup's template list is not a list of objects", operation="templates")
            templates.extend(data)
            if len(data) < page_size:
                return templates
        log.warning("Wazzup's template list goes on past %s templates; the rest is left out", len(templates))
        return templates

    def upsert_users(self, users: list[dict], *, budget_taken: bool = False) -> None:
        """``POST /v3/users``: create or rename Wazzup users, ``{"id", "name"}`` each (at most 100 in a
        call, both strings of 1-200 characters), matched by ``id``. Any 2xx is taken: Wazzup documents
        no answer body. ``budget_taken``: as :meth:`send_message`'s."""
        if not 1 <= len(users) <= USERS_PER_CALL:
            raise WazzupInvalidData(f"Wazzup takes 1-{USERS_PER_CALL} users in a call", operation="upsert_users")
        for user in users:
            if not all(isinstance(user.get(f), str) and 1 <= len(user[f]) <= USER_FIELD_MAX for f in ("id", "name")):
                raise WazzupInvalidData(f"a Wazzup user needs an id and a name of 1-{USER_FIELD_MAX} characters",
                                        operation="upsert_users")
        self._request("POST", "/v3/users", json_body=[{"id": u["id"], "name": u["name"]} for u in users],
                      operation="upsert_users", lenient=True, budget_taken=budget_taken)

    def delete_user(self, user_id: str, *, budget_taken: bool = False) -> bool:
        """``DELETE /v3/users/:id``: remove a Wazzup user (reference §8.2). True: Wazzup removed them;
        False: it answered 404, it has no user with this id (removed already: what the caller wanted).
        Any 2xx is taken, whatever its body. ``budget_taken``: as :meth:`send_message`'s."""
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= USER_FIELD_MAX:
            raise WazzupInvalidData(f"a Wazzup user's id has 1-{USER_FIELD_MAX} characters", operation="delete_user")
        try:
            self._request("DELETE", f"/v3/users/{quote(user_id, safe='')}", operation="delete_user", lenient=True,
                          budget_taken=budget_taken)
        except WazzupApiError as exc:
            if exc.http_status == 404:
                return False
            raise
        return True

    def get_webhooks(self) -> dict:
        data = self._request("GET", "/v3/webhooks", operation="get_webhooks")
        if not isinstance(data, dict):
            raise WazzupInvalidData("Wazzup's webhook settings are not an object", operation="get_webhooks")
        return data

    def set_webhooks(self, uri: str, subscriptions: dict) -> dict:
        if len(uri) > 200:
            raise WazzupInvalidData("Wazzup accepts webhook URLs of at most 200 characters", operation="set_webhooks")
        data = self._request("PATCH", "/v3/webhooks", json_body={"webhooksUri": uri, "subscriptions": subscriptions},
                             operation="set_webhooks", lenient=True)
        return data if isinstance(data, dict) else {}

    def iframe(self, body: dict) -> str:
        data = self._request("POST", "/v3/iframe", json_body=body, operation="iframe")
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise WazzupInvalidData("Wazzup's iframe answer has no usable url", operation="iframe")
        return url

    # ------------------------------------------------------------ plumbing

    def redact(self, text: str) -> str:
        return text.replace(self._api_key, MASK) if self._api_key else text

    def _request(self, method: str, path: str, *, operation: str, **kwargs):
        """One call to Wazzup, logged with its outcome (every Wazzup operation leaves a line; a send's
        line is DEBUG: the outbox logs each send's outcome with the message's context)."""
        outcome = "error"
        try:
            result = self._exchange(method, path, operation=operation, **kwargs)
            outcome = "ok"
            return result
        except WazzupError as exc:
            outcome = f"{type(exc).__name__} {exc.http_status or ''}".strip()
            raise
        finally:
            log.log(logging.DEBUG if operation == "send_message" else logging.INFO,
                    "Wazzup24 API %s %s: %s", method, path, outcome,
                    extra={"context": {"operation": operation, "outcome": outcome,
                                       "latency_ms": self.last_latency_ms}})

    def _unreachable(self, exc: requests.RequestException) -> str:
        """Which side of the call failed, as far as the error tells: a name that does not resolve or a
        refused connection is this server's network (or WAZZUP24_API_URL), not Wazzup's answer."""
        connect, read = self.timeout
        if isinstance(exc, requests.ConnectTimeout):
            return f"connecting to Wazzup timed out after {connect:g} s (this server's network or firewall?)"
        if isinstance(exc, requests.Timeout):
            return f"Wazzup timed out: no answer within {read:g} s"
        chain = list(_reason_chain(exc))
        if any(isinstance(e, urllib3.exceptions.NameResolutionError) for e in chain):
            return "the helpdesk could not find Wazzup's server: its name does not resolve (DNS, or no network)"
        if any(isinstance(e, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)) for e in chain):
            return "the helpdesk could not connect to Wazzup (refused or unreachable: this server's network?)"
        return "the connection to Wazzup broke off"

    def _exchange(self, method: str, path: str, *, json_body=None, operation: str, lenient: bool = False,
                  budget_taken: bool = False):
        self.last_latency_ms = None  # this call's, or none: never the previous call's
        if not budget_taken:
            self.rate_limiter.acquire()
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        started = self.clock()
        try:
            # stream: the body is read here, against the call's deadline (see _read_within).
            response = self.session.request(method, self.base_url + path, json=json_body, headers=headers,
                                            timeout=self.timeout, allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            self.last_latency_ms = None
            maybe_sent = classify_connection_error(exc) if method != "GET" else False
            raise WazzupUnavailable(self.redact(f"{self._unreachable(exc)} ({type(exc).__name__}) on {method} {path}"),
                                    maybe_sent=maybe_sent, operation=operation) from None
        status = response.status_code
        try:
            body = self._read_within(response, started + self.deadline)
        except (Overdue, urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            response.close()
            self.last_latency_ms = None
            if lenient and 200 <= status < 300:
                # Wazzup's status line said it took the request: accepted, whatever became of the
                # rest of its answer (a send's Wazzup id then comes with its echo).
                log.warning("Wazzup answered %s to %s %s, but not the rest of its answer within %.0f s",
                            status, method, path, self.deadline, extra={"context": {"operation": operation}})
                return None
            kind = "timed out" if isinstance(exc, (Overdue, urllib3.exceptions.TimeoutError, TimeoutError,
                                                   requests.Timeout)) else "lost the connection"
            raise WazzupUnavailable(self.redact(f"Wazzup {kind} while answering {method} {path} ({status})"),
                                    maybe_sent=method != "GET", operation=operation, http_status=status) from None
        self.last_latency_ms = round((self.clock() - started) * 1000, 1)
        if 200 <= status < 300:
            return self._json(body, status, operation, lenient)
        if status in (401, 403):
            why = ("refused our API key (401): check WAZZUP24_API_KEY" if status == 401 else
                   "does not allow this API key on this route (403): a Sidecar key?")
            raise WazzupAuthError(f"Wazzup {why}", operation=operation, http_status=status)
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            self.rate_limiter.blocked(retry_after if retry_after is not None else self.rate_window)
            raise WazzupRateLimited(f"Wazzup's rate limit was hit (429) on {method} {path}",
                                    retry_after=retry_after, operation=operation, http_status=429)
        if status >= 500:
            raise WazzupUnavailable(f"Wazzup answered {status} on {method} {path}", maybe_sent=method != "GET",
                                    operation=operation, http_status=status)
        if 300 <= status < 400:
            raise WazzupInvalidData(f"Wazzup answered a redirect ({status}); check WAZZUP24_API_URL",
                                    operation=operation, http_status=status)
        raise self._api_error(body, status, operation)

    def _read_within(self, response, deadline: float) -> bytes:
        """The body of a streamed response, read by the deadline (:mod:`wazzup_plugin.bounded_read`)."""
        return b"".join(chunks_within(response, deadline, self.clock, self.timeout[1]))

    def _json(self, body: bytes, status: int, operation: str, lenient: bool):
        if not body:
            if lenient:
                return None
            raise WazzupInvalidData(f"Wazzup's answer to {operation} is empty", operation=operation,
                                    http_status=status)
        try:
            return json.loads(body)  # bytes: UTF-8 (or a BOM), as RFC 8259 has it
        except ValueError:
            if lenient:
                return None
            raise WazzupInvalidData(f"Wazzup's answer to {operation} is not JSON", operation=operation,
                                    http_status=status) from None

    def _api_error(self, raw: bytes, status: int, operation: str) -> WazzupApiError:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        code, description, data, request_id = f"HTTP_{status}", "", None, None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):  # the iframe route nests it: {"error": {"code": ...}}
                code = str(err.get("code") or code)
                description = str(err.get("description") or err.get("message") or "")
            elif isinstance(err, str) and err:
                code = err
            description = description or str(body.get("description") or "")
            data = body.get("data")
            request_id = body.get("requestId")
        return WazzupApiError(self.redact(code)[:100], self.redact(description)[:500], data=_safe(data, self),
                              request_id=str(request_id)[:100] if request_id else None,
                              http_status=status, operation=operation)


def _safe(data, client: WazzupClient):
    """Wazzup's ``data`` with our key masked, should it ever echo it back."""
    if data is None:
        return None
    try:
        return json.loads(client.redact(json.dumps(data)))
    except (TypeError, ValueError):
        return None

