"""How the sandbox behaves: its channels, and which variant of each unconfirmed shape it produces.

Everything here can be changed while the sandbox runs (``PATCH /_sandbox/config``), so one running
sandbox can walk the product through every variant the reference leaves open
(reference/wazzup-api-v3.md §11): a 401 with an empty or a JSON body, a 429 with or without
``Retry-After``, echoes of API sends off / before / after the 201, statuses before the 201.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, fields, replace

from wazzup_plugin.sandbox.templates import DEFAULT_TEMPLATES

DEFAULT_CHANNEL_ID = "b96a353b-06f5-4cac-8413-ba1d8e93f981"
DEFAULT_PLAIN_ID = "79865784457"
DEFAULT_API_KEY = "sandbox-api-key-0123456789abcdef"

# Channel transport -> the chat types a send may use on it (WRONG_TRANSPORT otherwise).
TRANSPORT_CHAT_TYPES = {
    "whatsapp": {"whatsapp", "whatsgroup"},
    "wapi": {"whatsapp"},
    "instagram": {"instagram"},
    "tgapi": {"telegram", "telegroup"},
    "telegram": {"telegram"},
    "vk": {"vk"},
    "avito": {"avito"},
    "viber": {"viber"},
    "max": {"max", "maxgroup"},
}
CHAT_TYPES = sorted(set().union(*TRANSPORT_CHAT_TYPES.values()))
ECHO_MODES = ("off", "before", "after")       # echo of an API send: none, before the 201, after it
UNAUTHORIZED_BODIES = ("empty", "json")
BAD_CONTACT_MODES = ("webhook", "reject")    # a 201 then an `error` status, or a 400 at once


class SandboxConfigError(ValueError):
    """A sandbox option is wrong; the message names it."""


@dataclass(frozen=True)
class Channel:
    channelId: str
    transport: str = "whatsapp"
    plainId: str = DEFAULT_PLAIN_ID
    state: str = "active"

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SandboxConfig:
    api_key: str = DEFAULT_API_KEY
    channels: tuple[Channel, ...] = (Channel(DEFAULT_CHANNEL_ID),)
    unauthorized_body: str = "json"
    rate_limit: int = 500                  # requests per rate_window seconds (Wazzup: 500 per 5 s)
    rate_window: float = 5.0
    retry_after: bool = True               # send Retry-After with a 429
    crm_dedupe_seconds: float = 60.0       # REPEATED_CRM_MESSAGE_ID window
    max_text: int = 10_000
    # The status sequence after an accepted send, as delays (seconds) after the 201.
    status_delays: tuple[float, float, float] = (0.2, 0.5, 1.0)   # sent, delivered, read
    reorder_statuses: bool = False         # deliver them newest first (read before delivered...)
    duplicate_statuses: bool = False       # deliver each status twice
    statuses_before_201: bool = False      # post the whole sequence before answering the send
    echo: str = "off"
    echo_crm_message_id: bool = False      # whether an echo carries the send's crmMessageId (UNCONFIRMED)
    bad_contacts: tuple[str, ...] = ()     # chatIds for which a send ends in BAD_CONTACT
    bad_contact_mode: str = "webhook"
    # contentUri prefixes Wazzup "cannot download": a send of one is refused with MESSAGE_DOWNLOAD_CONTENT_ERROR.
    unreachable_content: tuple[str, ...] = ()
    # Download a send's contentUri at once, as Wazzup does (one GET, no redirects): only from this
    # machine (127.0.0.1, localhost), so the sandbox never reaches the internet; other URLs are not fetched.
    fetch_content: bool = False
    # WhatsApp Business templates (Wazzup's shape; no channels: every wapi channel), and the 24-hour
    # window: a free text or file to a wapi chat whose customer has not written within it gets a 201,
    # then an `error` status 24_HOURS_EXCEEDED, as Wazzup does (0: the window is always closed).
    templates: tuple[dict, ...] = DEFAULT_TEMPLATES
    waba_window_hours: float = 24.0
    combine_deliveries: bool = False       # one delivery carries everything due at once
    webhook_bools_as_strings: bool = True  # GET /v3/webhooks shows "true"/"false" as the docs do
    webhook_content_type: str = "application/json; charset-utf-8"   # sic, as documented
    iframe_error_nested: bool = False      # iframe errors as {"error": {"code": ...}} (third-party report)
    crm_key: str | None = None             # sent as Authorization: Bearer on deliveries when set
    webhook_timeout: float = 30.0          # Wazzup waits 30 s
    webhook_attempts: int = 4              # attempts per delivery before it is given up
    webhook_backoff: float = 0.5           # seconds, doubled per attempt
    queue_size: int = 10_000
    public_url: str = "http://127.0.0.1:8100"   # for the iframe URL it hands out

    def __post_init__(self):
        if self.unauthorized_body not in UNAUTHORIZED_BODIES:
            raise SandboxConfigError(f"unauthorized_body must be one of {UNAUTHORIZED_BODIES}")
        if self.echo not in ECHO_MODES:
            raise SandboxConfigError(f"echo must be one of {ECHO_MODES}")
        if self.bad_contact_mode not in BAD_CONTACT_MODES:
            raise SandboxConfigError(f"bad_contact_mode must be one of {BAD_CONTACT_MODES}")
        if len(self.status_delays) != 3 or any(d < 0 for d in self.status_delays):
            raise SandboxConfigError("status_delays must be three delays of 0 seconds or more (sent, delivered, read)")
        if self.rate_limit < 1 or self.rate_window <= 0:
            raise SandboxConfigError("rate_limit must be at least 1 and rate_window positive")
        if self.waba_window_hours < 0:
            raise SandboxConfigError("waba_window_hours must be 0 or more")
        if self.webhook_attempts < 1 or self.queue_size < 1:
            raise SandboxConfigError("webhook_attempts and queue_size must be at least 1")
        ids = [c.channelId for c in self.channels]
        if len(set(ids)) != len(ids):
            raise SandboxConfigError("channel ids must be unique")
        for c in self.channels:
            if c.transport not in TRANSPORT_CHAT_TYPES:
                raise SandboxConfigError(f"unknown transport {c.transport!r}; one of {sorted(TRANSPORT_CHAT_TYPES)}")

    def channel(self, channel_id: str) -> Channel | None:
        return next((c for c in self.channels if c.channelId == channel_id), None)

    def to_json(self) -> dict:
        """The config as the control API shows it (the API key is not shown)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("api_key", "crm_key")}
        out["channels"] = [c.to_json() for c in self.channels]
        out["status_delays"] = list(self.status_delays)
        out["bad_contacts"] = list(self.bad_contacts)
        out["unreachable_content"] = list(self.unreachable_content)
        out["templates"] = list(self.templates)
        out["crm_key_set"] = bool(self.crm_key)
        return out

    def updated(self, changes: dict) -> "SandboxConfig":
        """A copy with ``changes`` (JSON values) applied; unknown or ill-typed keys raise."""
        known = {f.name: f for f in fields(self)}
        values = {}
        for key, value in changes.items():
            if key not in known:
                raise SandboxConfigError(f"unknown sandbox option {key!r}")
            values[key] = _coerce(key, value, getattr(self, key))
        try:
            return replace(self, **values)
        except TypeError as exc:
            raise SandboxConfigError(str(exc)) from None


def _coerce(key: str, value, current):
    if key == "channels":
        return parse_channels(value)
    if key == "templates":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(t, dict) and isinstance(t.get("templateGuid"), str) for t in value):
            raise SandboxConfigError("templates must be a list of template objects, each with a templateGuid")
        return tuple(value)
    if key in ("status_delays", "bad_contacts", "unreachable_content"):
        if not isinstance(value, (list, tuple)):
            raise SandboxConfigError(f"{key} must be a list")
        return tuple(float(v) for v in value) if key == "status_delays" else tuple(str(v) for v in value)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise SandboxConfigError(f"{key} must be true or false")
        return value
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SandboxConfigError(f"{key} must be a number")
        return type(current)(value)
    if value is not None and not isinstance(value, str):
        raise SandboxConfigError(f"{key} must be a string")
    return value


def parse_channels(spec) -> tuple[Channel, ...]:
    """Channels from JSON (a list of channel objects) or a compact spec.

    Compact: ``transport[:state[:channelId[:plainId]]]`` separated by commas, e.g.
    ``whatsapp:active,wapi:qr``. The first channel without an id gets the default id.
    """
    if isinstance(spec, str) and spec.strip().startswith("["):
        spec = json.loads(spec)
    if isinstance(spec, (list, tuple)):
        out = []
        for item in spec:
            if isinstance(item, Channel):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("channelId"), str):
                out.append(Channel(channelId=item["channelId"], transport=str(item.get("transport", "whatsapp")),
                                   plainId=str(item.get("plainId", DEFAULT_PLAIN_ID)),
                                   state=str(item.get("state", "active"))))
            else:
                raise SandboxConfigError("each channel needs at least a channelId")
        return tuple(out)
    if not isinstance(spec, str) or not spec.strip():
        raise SandboxConfigError("channels: give JSON or transport[:state[:channelId[:plainId]]],...")
    out = []
    for n, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        bits = part.split(":")
        transport = bits[0]
        state = bits[1] if len(bits) > 1 and bits[1] else "active"
        channel_id = bits[2] if len(bits) > 2 and bits[2] else (DEFAULT_CHANNEL_ID if n == 0 else str(uuid.uuid4()))
        plain_id = bits[3] if len(bits) > 3 and bits[3] else str(int(DEFAULT_PLAIN_ID) + n)
        if not re.fullmatch(r"[a-z]+", transport):
            raise SandboxConfigError(f"bad transport {transport!r} in channels")
        out.append(Channel(channel_id, transport, plain_id, state))
    return tuple(out)
