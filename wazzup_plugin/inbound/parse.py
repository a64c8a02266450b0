"""Webhook bodies → validated items, item by item (marshmallow).

An item that does not fit (a wrong type, a missing id, a status or chat type Wazzup has not
documented) is returned as :class:`Quarantined` with its reason, and the rest of the delivery goes
on: one odd item never costs 99 good messages. Unknown keys are ignored everywhere. Shapes:
reference/wazzup-api-v3.md §5.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from wazzup_plugin.text import CONTROL_CHARACTERS, clean_text, is_clean, is_id

log = logging.getLogger(__name__)

# Documented enumerations (§5.1, §5.2, §6); compared case-insensitively.
CHAT_TYPES = ("whatsapp", "whatsgroup", "viber", "instagram", "telegram", "telegroup", "vk", "avito", "max",
              "maxgroup")
MESSAGE_STATUSES = ("inbound", "sent", "delivered", "read", "error")
STATUS_REPORTS = ("sent", "delivered", "read", "error", "edited", "inbound")
# Message types we show as such; anything else is kept as "unknown" with a visible placeholder.
KNOWN_TYPES = ("text", "image", "video", "audio", "document", "vcard", "geo", "missing_call", "wapi_template",
               "unsupported", "unknown")

def http_uri(value, max_length: int = 2000) -> str | None:
    """The link if it is http(s) and fits the column, else None (never store javascript: etc.)."""
    if not isinstance(value, str) or len(value) > max_length:
        return None
    value = value.strip()
    if not re.match(r"(?i)^https?://[^\s/?#]+", value) or CONTROL_CHARACTERS.search(value) or not is_clean(value):
        return None
    try:
        urlsplit(value)  # what later code reads it with; an unclosed "[" host raises
    except ValueError:
        return None
    return value


class Text(fields.String):
    """A string, cleaned for storage; ``max_length`` truncates (names, descriptions)."""

    def __init__(self, *args, max_length: int | None = None, **kwargs):
        kwargs.setdefault("allow_none", True)
        super().__init__(*args, **kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        value = clean_text(super()._deserialize(value, attr, data, **kwargs))
        return value[: self.max_length] if self.max_length else value


class NameText(Text):
    """:class:`Text` that also takes a JSON number as its string form (``number_as_text``): for
    ``contact.name``, ``authorName`` and ``authorId``, where a number is a name or id written without
    quotes, not a different shape."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(number_as_text(value), attr, data, **kwargs)


def number_as_text(value):
    """A JSON number given where a name or an author id belongs, as the text it stands for.

    Wazzup (or a messenger) may send a name that is only digits, or a numeric id, as a JSON number
    (``"contact": {"name": 79990000002}``, ``"authorId": 12345``). Its string form is exactly what a
    string would have said: nothing is lost, so the message is stored, not quarantined. A whole
    float (``7.999e10``) is written without its ``.0``. Anything else (a bool, NaN, a list) is not a
    number here and is left as it is, for the field to refuse.
    """
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


class Id(fields.String):
    """An identifier: a non-empty string that fits its column, without control characters."""

    def __init__(self, max_length: int, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        if not is_id(value, self.max_length):
            raise ValidationError(
                f"must be a non-empty string of at most {self.max_length} printable characters")
        return value


class Enum(fields.String):
    """One of the documented words, case-insensitive; a new word is a reason to quarantine."""

    def __init__(self, choices, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if value not in self.choices:
            raise ValidationError(f"unknown value {value[:50]!r}; expected one of {', '.join(self.choices)}")
        return value


class Word(fields.String):
    """A string compared case-insensitively: stripped and lowercased, any word (the caller checks it)."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip().lower()


def _status_word(word: str | None, is_echo: bool) -> str | None:
    """A message's ``status`` (already stripped and lowercased), or None when it does not matter.

    An incoming message (not an echo) is stored as ``inbound`` whatever its status says: the
    direction comes from ``isEcho``, and nothing reads an incoming message's status. So a word
    Wazzup has not documented (``pending``, ``edited`` …, §0 warns that enums grow) loses nothing
    there: the word is dropped (None, logged at debug) and the message is stored, where quarantining
    it would lose a customer's message for a field we ignore. On an echo the status is the message's
    ticks (sent, delivered, read, error): an unknown one is still a reason to quarantine (replay
    stores it once the parser knows the word).
    """
    if word is None or word in MESSAGE_STATUSES:
        return word
    if is_echo:
        raise ValidationError(f"unknown value {word[:50]!r}; expected one of {', '.join(MESSAGE_STATUSES)}",
                              field_name="status")
    log.debug("unknown status of an incoming message ignored", extra={"context": {"status": word[:50]}})
    return None


class Time(fields.Field):
    """Wazzup's times: ISO-8601 strings (naive means UTC) or epoch milliseconds."""

    def _deserialize(self, value, attr, data, **kwargs):
        return parse_time(value)


def parse_time(value) -> datetime:
    """A Wazzup time (see :class:`Time`); ValidationError when it is not one."""
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, (int, float)):
            result = datetime.fromtimestamp(value / 1000, timezone.utc)
        elif isinstance(value, str):
            result = datetime.fromisoformat(value.strip())
            result = result.replace(tzinfo=timezone.utc) if result.tzinfo is None else result
            result = result.astimezone(timezone.utc)
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValidationError("must be an ISO-8601 time or epoch milliseconds") from None
    if not 1970 <= result.year <= 9000:
        raise ValidationError("is out of range")
    return result


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE


class ContactSchema(_Lenient):
    name = NameText(max_length=300)
    avatarUri = fields.Raw(allow_none=True)
    phone = Text(max_length=32)
    username = Text(max_length=200)


class ErrorSchema(_Lenient):
    error = Text(max_length=100)
    description = Text(max_length=1000)


class OldInfoSchema(_Lenient):
    oldText = Text()
    oldAuthorId = Text(max_length=200)
    oldAuthorName = Text(max_length=300)


class MessageItemSchema(_Lenient):
    messageId = Id(64, required=True)
    channelId = Id(64, required=True)
    chatType = Enum(CHAT_TYPES, required=True)
    chatId = Id(200, required=True)
    dateTime = Time(allow_none=True)
    type = fields.String(allow_none=True, validate=validate.Length(max=100))
    isEcho = fields.Boolean(allow_none=True)
    contact = fields.Nested(ContactSchema, allow_none=True)
    text = Text()
    contentUri = fields.Raw(allow_none=True)
    status = Word(allow_none=True)  # checked in ``_status_word``: it matters on echoes only
    error = fields.Nested(ErrorSchema, allow_none=True)
    authorName = NameText(max_length=300)
    authorId = NameText(max_length=200)
    sentFromApp = fields.Boolean(allow_none=True)
    isEdited = fields.Boolean(allow_none=True)
    isDeleted = fields.Boolean(allow_none=True)
    oldInfo = fields.Nested(OldInfoSchema, allow_none=True)
    crmMessageId = Text(max_length=64)
    quotedMessage = fields.Raw(allow_none=True)

    @post_load
    def _check_status(self, data, **kwargs):
        if "status" in data:
            data["status"] = _status_word(data["status"], bool(data.get("isEcho")))
        return data


class StatusItemSchema(_Lenient):
    messageId = Id(64, required=True)
    timestamp = Time(allow_none=True)
    status = Enum(STATUS_REPORTS, required=True)
    error = fields.Nested(ErrorSchema, allow_none=True)


class ChannelUpdateSchema(_Lenient):
    channelId = Id(64, required=True)
    state = Id(64, required=True)
    tier = Text(max_length=32)
    transport = Text(max_length=32)
    timestamp = Time(allow_none=True)


@dataclass
class Message:
    raw: dict
    message_id: str
    channel_id: str
    chat_type: str
    chat_id: str
    at: datetime | None
    type: str             # the host's type: a known one, else "unknown"
    raw_type: str | None  # Wazzup's word, for the placeholder of an unknown type
    is_echo: bool
    status: str | None    # Wazzup's word
    text: str | None
    content_uri: str | None
    contact_name: str | None
    avatar_uri: str | None
    contact_phone: str | None
    author_name: str | None
    author_id: str | None
    sent_from_app: bool | None
    error_code: str | None
    error_text: str | None
    is_edited: bool
    is_deleted: bool
    old_text: str | None
    crm_message_id: str | None
    ref_message_id: str | None

    @property
    def chat_key(self) -> tuple[str, str, str]:
        return (self.channel_id, self.chat_type, self.chat_id)


@dataclass
class StatusReport:
    raw: dict
    message_id: str
    status: str           # Wazzup's word: sent, delivered, read, error, edited, inbound
    at: datetime | None
    error_code: str | None = None
    error_text: str | None = None


@dataclass
class ChannelUpdate:
    channel_id: str
    state: str
    tier: str | None
    transport: str | None
    at: datetime | None


@dataclass
class Quarantined:
    section: str
    reason: str
    raw: object
    message_id: str | None = None


@dataclass
class Delivery:
    messages: list[Message] = field(default_factory=list)
    statuses: list[StatusReport] = field(default_factory=list)
    channels: list[ChannelUpdate] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    notices: dict[str, object] = field(default_factory=dict)  # createContact, createDeal, templateStatus

    @property
    def empty(self) -> bool:
        return not (self.messages or self.statuses or self.channels or self.quarantined)


_MESSAGE = MessageItemSchema()
_STATUS = StatusItemSchema()
_CHANNEL = ChannelUpdateSchema()
NOTICE_KEYS = ("createContact", "createDeal", "templateStatus")


def raw_json(item) -> str:
    """An item as JSON text for storage, exactly as received: readable (no ``\\u`` escapes for
    Cyrillic) unless it holds a lone surrogate, which no database stores as text; then every
    non-ASCII character is escaped, which keeps it exactly (a NUL is always escaped).

    An item nested nearly as deep as the JSON parser goes cannot be written back out from where
    the webhook stands in the stack (``RecursionError``): it is kept cut at ``KEPT_DEPTH`` levels
    rather than failing the whole delivery, whose good items would then never be stored."""
    try:
        text = json.dumps(item, ensure_ascii=False, sort_keys=True, default=str)
        if not is_clean(text):
            text = json.dumps(item, ensure_ascii=True, sort_keys=True, default=str)
    except RecursionError:
        text = json.dumps(_cut_deep(item, KEPT_DEPTH), ensure_ascii=True, sort_keys=True, default=str)
    return text


def quarantine_digest(section: str, stored_item: str) -> str:
    """What makes a quarantined item one row however often it is delivered: SHA-256 of its section
    and its JSON as :func:`raw_json` stores it (keys sorted, so the same item always reads the same).
    Migration ``0012_wazzup`` computes the same for rows stored before it; keep the two alike."""
    text = f"{section}\n{stored_item}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


KEPT_DEPTH = 64        # Wazzup's items nest four levels at most
CUT = "<nested deeper than this: not kept>"


def _cut_deep(value, levels: int):
    """``value`` with every list or object below ``levels`` levels replaced by :data:`CUT`."""
    if not isinstance(value, (dict, list)):
        return value
    if levels <= 0:
        return CUT
    if isinstance(value, dict):
        return {key: _cut_deep(inner, levels - 1) for key, inner in value.items()}
    return [_cut_deep(inner, levels - 1) for inner in value]


def _reason(error: ValidationError) -> str:
    return raw_json(error.messages)[:2000]


def _usable_id(item) -> str | None:
    value = item.get("messageId") if isinstance(item, dict) else None
    try:
        return Id(64)._deserialize(value, "messageId", item) if isinstance(value, str) else None
    except ValidationError:
        return None


class _Unusual(Exception):
    """The fast path declines an item: marshmallow decides (and words any error)."""


def _fast_text(value, max_length):
    """:class:`Text` for a plain string or None."""
    if value is None:
        return None
    if type(value) is not str:
        raise _Unusual
    value = clean_text(value)
    return value[:max_length] if max_length else value


def _fast_id(value, max_length):
    """:class:`Id` for a valid identifier; anything else is marshmallow's to reject."""
    if type(value) is not str or not is_id(value, max_length):
        raise _Unusual
    return value


def _fast_enum(value, choices, allow_none=False):
    if value is None and allow_none:
        return None
    if type(value) is not str:
        raise _Unusual
    value = value.strip().lower()
    if value not in choices:
        raise _Unusual
    return value


def _fast_name(value, max_length):
    """:class:`NameText`: :class:`Text`, a JSON number taken as its string form."""
    return _fast_text(number_as_text(value), max_length)


def _fast_nested(value, texts, raws=(), names=()):
    """A nested schema of Text (NameText, Raw) fields: a dict or None, unknown keys dropped."""
    if value is None:
        return None
    if type(value) is not dict:
        raise _Unusual
    out = {}
    for key, max_length in names:
        if key in value:
            out[key] = _fast_name(value[key], max_length)
    for key, max_length in texts:
        if key in value:
            out[key] = _fast_text(value[key], max_length)
    for key in raws:
        if key in value:
            out[key] = value[key]
    return out


_FAST_TEXTS = (("text", None), ("crmMessageId", 64))
_FAST_NAMES = (("authorName", 300), ("authorId", 200))
_FAST_BOOLS = ("isEcho", "sentFromApp", "isEdited", "isDeleted")
_FAST_RAWS = ("contentUri", "quotedMessage")
_FAST_ERROR = (("error", 100), ("description", 1000))
_FAST_NESTED = (("contact", (("phone", 32), ("username", 200)), ("avatarUri",), (("name", 300),)),
                ("error", _FAST_ERROR, (), ()),
                ("oldInfo", (("oldText", None), ("oldAuthorId", 200), ("oldAuthorName", 300)), (), ()))


def _fast_load_message(raw: dict) -> dict | None:
    """``MessageItemSchema().load(raw)`` for the usual item shape, about ten times faster; None when
    anything is unusual (a wrong type, an invalid value), and then marshmallow is the judge.

    It must return exactly what the schema returns, key for key (tests/wazzup/test_parse_fast_path.py
    checks every fixture and generated items). Profiling found marshmallow's per-item cost
    (mostly the nested contact) to be the largest part of a 100-message delivery.
    """
    try:
        d = {"messageId": _fast_id(raw["messageId"], 64), "channelId": _fast_id(raw["channelId"], 64),
             "chatType": _fast_enum(raw["chatType"], CHAT_TYPES), "chatId": _fast_id(raw["chatId"], 200)}
        for key, max_length in _FAST_TEXTS:
            if key in raw:
                d[key] = _fast_text(raw[key], max_length)
        for key, max_length in _FAST_NAMES:
            if key in raw:
                d[key] = _fast_name(raw[key], max_length)
        for key in _FAST_BOOLS:
            if key in raw:
                value = raw[key]
                if value is not None and type(value) is not bool:
                    raise _Unusual
                d[key] = value
        for key in _FAST_RAWS:
            if key in raw:
                d[key] = raw[key]
        if "dateTime" in raw:
            value = raw["dateTime"]
            d["dateTime"] = None if value is None else parse_time(value)
        if "type" in raw:
            value = raw["type"]
            if value is not None and (type(value) is not str or len(value) > 100):
                raise _Unusual
            d["type"] = value
        if "status" in raw:
            value = raw["status"]
            if value is not None and type(value) is not str:
                raise _Unusual
            # As the schema's post_load: an unknown word is dropped on an incoming message; on an
            # echo _status_word raises ValidationError, and marshmallow words the reason.
            d["status"] = _status_word(None if value is None else value.strip().lower(), bool(d.get("isEcho")))
        for key, texts, raws, names in _FAST_NESTED:
            if key in raw:
                d[key] = _fast_nested(raw[key], texts, raws, names)
    except (_Unusual, KeyError, ValidationError):
        return None
    return d


def parse_message(raw: dict) -> Message:
    d = _fast_load_message(raw)
    if d is None:
        d = _MESSAGE.load(raw)
    contact = d.get("contact") or {}
    error = d.get("error") or {}
    old = d.get("oldInfo") or {}
    raw_type = clean_text((d.get("type") or "").strip().lower()) or None  # it may go into a placeholder
    if raw_type in KNOWN_TYPES:
        type_ = raw_type
    elif raw_type is None:
        type_ = "text" if d.get("text") else "unknown"
    else:
        type_ = "unknown"
    quoted = d.get("quotedMessage")
    ref = quoted.get("messageId") if isinstance(quoted, dict) else None
    return Message(
        raw=raw, message_id=d["messageId"], channel_id=d["channelId"], chat_type=d["chatType"],
        chat_id=d["chatId"], at=d.get("dateTime"), type=type_, raw_type=raw_type,
        is_echo=bool(d.get("isEcho")), status=d.get("status"), text=d.get("text"),
        content_uri=http_uri(d.get("contentUri")), contact_name=(contact.get("name") or "").strip() or None,
        avatar_uri=http_uri(contact.get("avatarUri")), contact_phone=contact.get("phone"),
        author_name=d.get("authorName"), author_id=d.get("authorId"), sent_from_app=d.get("sentFromApp"),
        error_code=error.get("error"), error_text=error.get("description"),
        is_edited=bool(d.get("isEdited")), is_deleted=bool(d.get("isDeleted")), old_text=old.get("oldText"),
        crm_message_id=d.get("crmMessageId"),
        ref_message_id=ref if is_id(ref, 64) else None,
    )


def _fast_load_status(raw: dict) -> dict | None:
    """``StatusItemSchema().load(raw)`` for the usual status item; None when anything is unusual."""
    try:
        d = {"messageId": _fast_id(raw["messageId"], 64), "status": _fast_enum(raw["status"], STATUS_REPORTS)}
        if "timestamp" in raw:
            value = raw["timestamp"]
            d["timestamp"] = None if value is None else parse_time(value)
        if "error" in raw:
            d["error"] = _fast_nested(raw["error"], _FAST_ERROR)
    except (_Unusual, KeyError, ValidationError):
        return None
    return d


def parse_status(raw: dict) -> StatusReport:
    d = _fast_load_status(raw)
    if d is None:
        d = _STATUS.load(raw)
    error = d.get("error") or {}
    return StatusReport(raw=raw, message_id=d["messageId"], status=d["status"], at=d.get("timestamp"),
                        error_code=error.get("error"), error_text=error.get("description"))


def parse_channel(raw: dict) -> ChannelUpdate:
    d = _CHANNEL.load(raw)
    return ChannelUpdate(channel_id=d["channelId"], state=d["state"], tier=d.get("tier"),
                         transport=d.get("transport"), at=d.get("timestamp"))


_SECTIONS = {"messages": parse_message, "statuses": parse_status, "channelsUpdates": parse_channel}


def parse_delivery(body: dict) -> Delivery:
    """Split a webhook body (a JSON object) into valid items and quarantined ones."""
    result = Delivery()
    targets = {"messages": result.messages, "statuses": result.statuses, "channelsUpdates": result.channels}
    for section, parse in _SECTIONS.items():
        if section not in body or body[section] is None:
            continue
        items = body[section]
        if not isinstance(items, list):
            result.quarantined.append(Quarantined(section, f"{section} must be a list", items))
            continue
        for item in items:
            if not isinstance(item, dict):
                result.quarantined.append(Quarantined(section, "an item must be a JSON object", item))
                continue
            try:
                targets[section].append(parse(item))
            except ValidationError as exc:
                result.quarantined.append(Quarantined(section, _reason(exc), item, _usable_id(item)))
    for key in NOTICE_KEYS:
        if body.get(key) is not None:
            result.notices[key] = body[key]
    return result
