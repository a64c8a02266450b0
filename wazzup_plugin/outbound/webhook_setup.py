"""Our webhook URL at Wazzup: building it with the secret, masking it, comparing, registering.

Wazzup signs nothing, so the secret travels in the URL as ``?token=...`` (Wazzup allows a query
string within its 200-character limit). Wherever a URL is shown, the secret is masked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from wazzup_plugin.client import WazzupApiError
from wazzup_plugin.shown_urls import mask_url

MAX_URL = 200
TOKEN_PARAM = "token"
SUBSCRIPTIONS = {"messagesAndStatuses": True, "channelsUpdates": True,
                 "contactsAndDealsCreation": False, "templateStatus": False}


def new_secret() -> str:
    return secrets.token_urlsafe(24)  # 32 characters


def with_secret(url: str, secret: str | None) -> str:
    """``url`` carrying ``secret`` as ``?token=`` (replacing any token it had)."""
    if not secret:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != TOKEN_PARAM]
    query.append((TOKEN_PARAM, secret))
    return urlunsplit(parts._replace(query=urlencode(query)))


def without_secret(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url.strip())
    query = parse_qsl(parts.query, keep_blank_values=True)
    token = next((v for k, v in query if k == TOKEN_PARAM), None)
    rest = [(k, v) for k, v in query if k != TOKEN_PARAM]
    base = urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/") or "/", urlencode(rest), ""))
    return base, token


def compare(registered: str | None, ours: str | None) -> str:
    """``same``, ``stale_secret`` (our address, another secret), ``other`` (not ours), ``none``."""
    if not registered:
        return "none"
    if not ours:
        return "other"
    reg_base, reg_token = without_secret(registered)
    our_base, our_token = without_secret(ours)
    if reg_base != our_base:
        return "other"
    return "same" if reg_token == our_token else "stale_secret"


@dataclass
class Registration:
    ok: bool
    url_masked: str
    message: str
    test_post_passed: bool | None = None


def register(client, url: str, secret: str | None) -> Registration:
    """``PATCH /v3/webhooks`` with our URL; reports Wazzup's test-POST verdict."""
    full = with_secret(url, secret)
    masked = mask_url(full, secret)
    if len(full) > MAX_URL:
        return Registration(False, masked, f"The webhook URL with its secret is {len(full)} characters; Wazzup "
                                           f"accepts at most {MAX_URL}. Use a shorter WAZZUP24_WEBHOOK_URL.")
    try:
        client.set_webhooks(full, dict(SUBSCRIPTIONS))
    except WazzupApiError as exc:
        if exc.is_code("testPostNotPassed"):
            return Registration(False, masked, "Wazzup's test POST to the URL did not get 200 OK "
                                               f"({exc.data or exc.description}): is the helpdesk reachable from the "
                                               "internet at this URL, and is it running with this secret?",
                                test_post_passed=False)
        if exc.is_code("uriNotValid"):
            return Registration(False, masked, "Wazzup says the URL is not a valid URI.")
        return Registration(False, masked, f"Wazzup refused the webhook: {exc.code} {exc.description}".strip())
    return Registration(True, masked, "Registered; Wazzup's test POST got 200 OK.", test_post_passed=True)
