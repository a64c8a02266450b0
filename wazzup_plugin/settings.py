"""``WAZZUP24_*`` settings, read once and validated at startup."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_API_URL = "https://api.wazzup24.com"
# The longest the outbox's rate limiter waits for a free call (wazzup_plugin/outbound/context.py).
RATE_LIMIT_MAX_WAIT = 3.0
# What one attempt spends besides the call: its database writes before and after.
ATTEMPT_MARGIN = 5.0
# The host's bound on a request and on a stop's wait: a send attempt (the web request's inline one,
# the outbox worker's) must fit under it, else gunicorn kills it mid-call and a restart cuts it
# off. The reference host's setting; 60 s, its default, when unset (another host: the same bound).
HOST_REQUEST_TIMEOUT = "HELPDESK_REQUEST_TIMEOUT"
DEFAULT_HOST_REQUEST_TIMEOUT = 60.0


class SettingsError(ValueError):
    """A setting is wrong; the message names it and says what to set."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"\d+", raw) or int(raw) < minimum:
        raise SettingsError(f"{name} must be a whole number of at least {minimum}, got {raw!r}")
    return int(raw)


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be 1 or 0, got {raw!r}")


def _http_url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    raw = (env.get(name) or "").strip() or default
    if raw is None:
        return None
    try:
        parts = urlsplit(raw)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw


@dataclass(frozen=True)
class WazzupSettings:
    api_key: str | None
    api_url: str
    webhook_url: str | None
    webhook_secret: str | None
    channel_id: str | None
    connect_timeout: float
    read_timeout: float
    rate_limit: int          # requests per rate_window seconds, across every process
    rate_window: float
    connection_cache_seconds: float
    # WAZZUP24_WEBHOOK_INSECURE=1: the operator accepts an unprotected webhook while live (not recommended).
    webhook_insecure: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.api_key)

    def unprotected_webhook_problem(self) -> str | None:
        """Why the helpdesk must not start, when it is going live (an API key and a webhook URL: Wazzup
        delivers to it) with no webhook secret: anyone who finds the URL could then post fake customer
        messages and statuses. None when the webhook is protected, not live, or the operator opted out
        with WAZZUP24_WEBHOOK_INSECURE=1."""
        if self.webhook_secret or self.webhook_insecure or not (self.api_key and self.webhook_url):
            return None
        return ("WAZZUP24_API_KEY and WAZZUP24_WEBHOOK_URL are set but WAZZUP24_WEBHOOK_SECRET is not: the "
                "webhook would accept deliveries from anyone (fake customer messages and statuses). Run "
                "`helpdesk-stub wazzup24 set-webhook`: it makes a secret, registers the URL with it at Wazzup and "
                "prints the WAZZUP24_WEBHOOK_SECRET=... line to add to .env; then start the helpdesk again. "
                "To accept unauthenticated deliveries anyway (not recommended), set WAZZUP24_WEBHOOK_INSECURE=1")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "WazzupSettings":
        secret = (env.get("WAZZUP24_WEBHOOK_SECRET") or "").strip() or None
        if secret is not None and len(secret) < 16:
            raise SettingsError("WAZZUP24_WEBHOOK_SECRET must be at least 16 characters (make one with "
                                "`helpdesk-stub wazzup24 set-webhook`)")
        rate_limit = _int(env, "WAZZUP24_RATE_LIMIT", 450, 1)
        if rate_limit > 500:
            raise SettingsError("WAZZUP24_RATE_LIMIT must not exceed Wazzup's limit of 500 requests per 5 seconds")
        connect_timeout = _float(env, "WAZZUP24_CONNECT_TIMEOUT", 5.0, 0.1)
        read_timeout = _float(env, "WAZZUP24_READ_TIMEOUT", 20.0, 0.1)
        _check_attempt_fits(env, connect_timeout, read_timeout)
        return cls(
            api_key=(env.get("WAZZUP24_API_KEY") or "").strip() or None,
            api_url=_http_url(env, "WAZZUP24_API_URL", DEFAULT_API_URL).rstrip("/"),
            webhook_url=_http_url(env, "WAZZUP24_WEBHOOK_URL", None),
            webhook_secret=secret,
            channel_id=(env.get("WAZZUP24_CHANNEL_ID") or "").strip() or None,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            rate_limit=rate_limit,
            rate_window=_float(env, "WAZZUP24_RATE_WINDOW", 5.0, 0.1),
            connection_cache_seconds=_float(env, "WAZZUP24_CONNECTION_CACHE_SECONDS", 10.0, 0.0),
            webhook_insecure=_flag(env, "WAZZUP24_WEBHOOK_INSECURE"),
        )


def attempt_seconds(connect_timeout: float, read_timeout: float) -> float:
    """The longest one send attempt takes: connect, read, the rate limiter's wait, the database writes."""
    return connect_timeout + read_timeout + RATE_LIMIT_MAX_WAIT + ATTEMPT_MARGIN


def _check_attempt_fits(env: Mapping[str, str], connect_timeout: float, read_timeout: float) -> None:
    """A send attempt must end before the host's request timeout (HELPDESK_REQUEST_TIMEOUT)."""
    try:
        limit = float((env.get(HOST_REQUEST_TIMEOUT) or "").strip() or DEFAULT_HOST_REQUEST_TIMEOUT)
    except ValueError:  # the host refuses it with its own message
        limit = DEFAULT_HOST_REQUEST_TIMEOUT
    longest = attempt_seconds(connect_timeout, read_timeout)
    if longest > limit:
        most = limit - (connect_timeout + RATE_LIMIT_MAX_WAIT + ATTEMPT_MARGIN)
        fix = (f"lower WAZZUP24_READ_TIMEOUT to at most {most:g}" if most >= 0.1 else
               "lower WAZZUP24_CONNECT_TIMEOUT and WAZZUP24_READ_TIMEOUT")
        raise SettingsError(
            f"WAZZUP24_READ_TIMEOUT={read_timeout:g} with WAZZUP24_CONNECT_TIMEOUT={connect_timeout:g} lets one send "
            f"to Wazzup take up to {longest:g} s (with {RATE_LIMIT_MAX_WAIT:g} s for the rate limiter and "
            f"{ATTEMPT_MARGIN:g} s for the database), longer than the helpdesk's request timeout "
            f"({HOST_REQUEST_TIMEOUT}={limit:g}): the web server would kill the request mid-send. "
            f"{fix[0].upper() + fix[1:]}, or raise {HOST_REQUEST_TIMEOUT}")
