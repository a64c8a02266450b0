"""``WAZZUP24_*`` settings, read once and validated at startup."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from wazzup_plugin.host import DEFAULT_REQUEST_TIMEOUT
from wazzup_plugin.shown_urls import mask_url

DEFAULT_API_URL = "https://api.wazzup24.com"
# The longest the outbox's rate limiter waits for a free call (wazzup_plugin/outbound/context.py).
RATE_LIMIT_MAX_WAIT = 3.0
# What one attempt spends besides the call: its database writes before and after.
ATTEMPT_MARGIN = 5.0
# The host's bound on a request and on a stop's wait (``helpdesk.config.request_timeout_seconds``): a
# send attempt (the web request's inline one, the outbox worker's) must fit under it, else the web
# server kills it mid-call and a restart cuts it off. The reference host sets it from this variable.
HOST_REQUEST_TIMEOUT = "HELPDESK_REQUEST_TIMEOUT"
# The webhook secret before a rotation (set-webhook --rotate), accepted beside the current one.
PREVIOUS_SECRET = "WAZZUP24_WEBHOOK_SECRET_PREVIOUS"


class SettingsError(ValueError):
    """A setting is wrong; the message names it and says what to set."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"\d+", raw) or int(raw) < minimum:
        raise SettingsError(f"{name} must be a whole number of at least {minimum}, got {raw!r}")
    if maximum is not None and int(raw) > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {raw!r}")
    return int(raw)


# The longest a retention may be: the housekeeping counts back from now, and a date before the year 1
# cannot be computed (about 700,000 days): such a value failed every run, retention then did nothing.
# A century is longer than any retention needs; 0 keeps for good.
MAX_RETENTION_DAYS = 36_500
MAX_RETENTION_HOURS = MAX_RETENTION_DAYS * 24


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value):  # "nan" and "inf" parse, and pass every comparison a bound makes
        raise SettingsError(f"{name} must be a finite number of seconds, got {raw!r}")
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _secret(env: Mapping[str, str], name: str) -> str | None:
    secret = (env.get(name) or "").strip() or None
    if secret is not None and len(secret) < 16:
        raise SettingsError(f"{name} must be at least 16 characters (make one with "
                            "`helpdesk-stub wazzup24 set-webhook`)")
    return secret


def _api_key(env: Mapping[str, str]) -> str | None:
    """WAZZUP24_API_KEY, as it must travel in the ``Authorization`` header: visible ASCII only. A key
    pasted with an invisible character (a zero-width space from a chat or a web page) cannot be sent
    at all: every call to Wazzup would fail inside the HTTP library, which the outbox must take for a
    send that may have gone out. The key itself is never shown, only where the odd character is."""
    key = (env.get("WAZZUP24_API_KEY") or "").strip() or None
    odd = next(((n, c) for n, c in enumerate(key or "", 1) if not "!" <= c <= "~"), None)
    if odd is not None:
        n, c = odd
        raise SettingsError(f"WAZZUP24_API_KEY must be the key exactly as Wazzup shows it (letters, digits and "
                            f"punctuation, no spaces); its character {n} is U+{ord(c):04X}, perhaps copied with "
                            "it: paste the key again")
    return key


def _channel_id(env: Mapping[str, str]) -> str | None:
    """WAZZUP24_CHANNEL_ID: one channel id (Wazzup's are UUIDs). A value with a comment kept after it (an
    env file read by docker or systemd keeps ``# ...``) or longer than the outbox's column (64) would
    only fail later: on PostgreSQL every send to a new chat then failed to store, for ever."""
    channel_id = (env.get("WAZZUP24_CHANNEL_ID") or "").strip() or None
    if channel_id is not None and (len(channel_id) > 64 or re.search(r"[\s\x00-\x1f\x7f]", channel_id)):
        raise SettingsError(f"WAZZUP24_CHANNEL_ID must be one channel id as `helpdesk-stub wazzup24 channels` lists "
                            f"it (at most 64 characters, no spaces), got {channel_id[:100]!r}")
    return channel_id


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
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
        # a mistyped URL may still hold its credentials: the error is shown masked
        raise SettingsError(f"{name} must be an http(s) URL, got {mask_url(raw)!r}")
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
    # WAZZUP24_WEBHOOK_SECRET_PREVIOUS: the secret before a rotation, still accepted until Wazzup has the new one.
    webhook_secret_previous: str | None = None
    # The helpdesk's public origin, where Wazzup downloads the files agents upload (WAZZUP24_PUBLIC_URL;
    # default: the origin of WAZZUP24_WEBHOOK_URL). None: uploads are refused, naming the setting.
    public_url: str | None = None
    # Incoming media the helpdesk downloads and keeps (wazzup_plugin/media): the largest file, and
    # the only hosts fetched from (WAZZUP24_MEDIA_MAX_MB, WAZZUP24_MEDIA_HOSTS).
    media_max_bytes: int = 25 * 1024 * 1024
    media_hosts: tuple[str, ...] = ()
    # WAZZUP24_MEDIA_RETENTION_DAYS (0 = forever): a kept copy's bytes go that many days after it was
    # downloaded (wazzup_plugin/media/housekeeping.py). Customers' media do not count in
    # WAZZUP24_FILES_QUOTA_MB: a customer's file cannot be refused; its bound is this retention.
    media_retention_days: int = 0
    # Uploaded files (wazzup_plugin/outbound/file_housekeeping.py): an upload never sent is deleted
    # after WAZZUP24_UNSENT_FILE_HOURS; a sent one is kept, unless WAZZUP24_FILE_RETENTION_DAYS (0 =
    # forever) says how many days after its upload its bytes go; WAZZUP24_FILES_QUOTA_MB (0 = none)
    # bounds the bytes stored, an upload over it refused.
    unsent_file_hours: int = 24
    file_retention_days: int = 0
    files_quota_mb: int = 1024
    # Prefer: respond-async sends are refused (429) while this many messages wait in the outbox
    # (WAZZUP24_ASYNC_BACKLOG): they wait in the outbox's last lane (behind agents' sends and retries),
    # and an integrator's burst must not grow it past what the worker drains well within the hour.
    async_backlog: int = 500
    # WAZZUP24_SYNC_USERS=0: agents are not made Wazzup users (``outbound/users.py``), so Wazzup shows
    # no sender on what the helpdesk sends. On by default: crmUserId names a sender only for a user.
    sync_users: bool = True

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
    def from_env(cls, env: Mapping[str, str], request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> "WazzupSettings":
        """``request_timeout``: the host's, in seconds (``wazzup_plugin.host.request_timeout_seconds``)."""
        secret = _secret(env, "WAZZUP24_WEBHOOK_SECRET")
        previous = _secret(env, PREVIOUS_SECRET)
        if previous is not None and secret is None:
            raise SettingsError(f"{PREVIOUS_SECRET} is set without WAZZUP24_WEBHOOK_SECRET: it is the secret "
                                "before a rotation, accepted beside the current one (see "
                                "`helpdesk-stub wazzup24 set-webhook --rotate`)")
        rate_limit = _int(env, "WAZZUP24_RATE_LIMIT", 450, 1)
        if rate_limit > 500:
            raise SettingsError("WAZZUP24_RATE_LIMIT must not exceed Wazzup's limit of 500 requests per 5 seconds")
        connect_timeout = _float(env, "WAZZUP24_CONNECT_TIMEOUT", 5.0, 0.1)
        read_timeout = _float(env, "WAZZUP24_READ_TIMEOUT", 20.0, 0.1)
        _check_attempt_fits(request_timeout, connect_timeout, read_timeout)
        webhook_url = _http_url(env, "WAZZUP24_WEBHOOK_URL", None)
        return cls(
            api_key=_api_key(env),
            api_url=_api_url(env),
            webhook_url=webhook_url,
            webhook_secret=secret,
            channel_id=_channel_id(env),
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            rate_limit=rate_limit,
            rate_window=_float(env, "WAZZUP24_RATE_WINDOW", 5.0, 0.1),
            connection_cache_seconds=_float(env, "WAZZUP24_CONNECTION_CACHE_SECONDS", 10.0, 0.0),
            webhook_insecure=_flag(env, "WAZZUP24_WEBHOOK_INSECURE"),
            webhook_secret_previous=previous,
            public_url=_public_url(env, webhook_url),
            media_max_bytes=_int(env, MEDIA_MAX_MB, 25, 1) * 1024 * 1024,
            media_hosts=_media_hosts(env),
            media_retention_days=_int(env, "WAZZUP24_MEDIA_RETENTION_DAYS", 0, maximum=MAX_RETENTION_DAYS),
            unsent_file_hours=_int(env, "WAZZUP24_UNSENT_FILE_HOURS", 24, 1, maximum=MAX_RETENTION_HOURS),
            file_retention_days=_int(env, "WAZZUP24_FILE_RETENTION_DAYS", 0, maximum=MAX_RETENTION_DAYS),
            files_quota_mb=_int(env, "WAZZUP24_FILES_QUOTA_MB", 1024),
            async_backlog=_int(env, "WAZZUP24_ASYNC_BACKLOG", 500, 1),
            sync_users=_flag(env, "WAZZUP24_SYNC_USERS", default=True),
        )


def _api_url(env: Mapping[str, str]) -> str:
    """WAZZUP24_API_URL without the ``/v3`` Wazzup's documentation writes its base URL with
    (``https://api.wazzup24.com/v3``): the client adds ``/v3/...`` to every route itself."""
    url = _http_url(env, "WAZZUP24_API_URL", DEFAULT_API_URL).rstrip("/")
    return url[:-len("/v3")] if url.lower().endswith("/v3") else url


PUBLIC_URL = "WAZZUP24_PUBLIC_URL"
MAX_PUBLIC_URL = 1000  # file URLs add about 100 characters and a name; a message's content_uri takes 2,000


def _public_url(env: Mapping[str, str], webhook_url: str | None) -> str | None:
    """Where Wazzup reaches the helpdesk's uploaded files: WAZZUP24_PUBLIC_URL (an origin, or an origin
    and a path prefix when a proxy serves the helpdesk under one), else the webhook URL's origin."""
    raw = _http_url(env, PUBLIC_URL, None)
    if raw is None:
        if webhook_url is None:
            return None
        parts = urlsplit(webhook_url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    parts = urlsplit(raw)
    if parts.query or parts.fragment or "@" in parts.netloc or len(raw) > MAX_PUBLIC_URL:
        raise SettingsError(f"{PUBLIC_URL} must be the helpdesk's public http(s) address, e.g. "
                            f"https://helpdesk.example.com, with no query, fragment or credentials and at most "
                            f"{MAX_PUBLIC_URL} characters; got {mask_url(raw)[:MAX_PUBLIC_URL + 20]!r}")
    return raw.rstrip("/")


MEDIA_MAX_MB = "WAZZUP24_MEDIA_MAX_MB"
MEDIA_HOSTS = "WAZZUP24_MEDIA_HOSTS"
DEFAULT_MEDIA_HOSTS = "store.wazzup24.com,*.wazzup24.com,*.wazzup24.ru"
_HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _media_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    """The hosts incoming media is downloaded from: names, or ``*.domain`` for its subdomains. A
    link elsewhere (a forged delivery could name an internal address) is never fetched."""
    raw = (env.get(MEDIA_HOSTS) or "").strip() or DEFAULT_MEDIA_HOSTS
    hosts = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
    bad = [h for h in hosts if not _HOST_PATTERN.fullmatch(h)]
    if bad or not hosts:
        raise SettingsError(f"{MEDIA_HOSTS} must be a comma-separated list of host names (or *.domain for a "
                            f"domain's subdomains, no scheme, port or path), e.g. {DEFAULT_MEDIA_HOSTS}; "
                            f"got {', '.join(repr(h) for h in bad) or repr(raw)}")
    return hosts


def attempt_seconds(connect_timeout: float, read_timeout: float) -> float:
    """The longest one send attempt takes: connect, read, the rate limiter's wait, the database writes."""
    return connect_timeout + read_timeout + RATE_LIMIT_MAX_WAIT + ATTEMPT_MARGIN


def _check_attempt_fits(limit: float, connect_timeout: float, read_timeout: float) -> None:
    """A send attempt must end before the host's request timeout (``limit``, in seconds)."""
    longest = attempt_seconds(connect_timeout, read_timeout)
    if longest > limit:
        most = limit - (connect_timeout + RATE_LIMIT_MAX_WAIT + ATTEMPT_MARGIN)
        fix = (f"lower WAZZUP24_READ_TIMEOUT to at most {most:g}" if most >= 0.1 else
               "lower WAZZUP24_CONNECT_TIMEOUT and WAZZUP24_READ_TIMEOUT")
        raise SettingsError(
            f"WAZZUP24_READ_TIMEOUT={read_timeout:g} with WAZZUP24_CONNECT_TIMEOUT={connect_timeout:g} lets one send "
            f"to Wazzup take up to {longest:g} s (with {RATE_LIMIT_MAX_WAIT:g} s for the rate limiter and "
            f"{ATTEMPT_MARGIN:g} s for the database), longer than the helpdesk's request timeout "
            f"({limit:g} s: {HOST_REQUEST_TIMEOUT} on the reference host): the web server would kill the request "
            f"mid-send. {fix[0].upper() + fix[1:]}, or raise the request timeout")
