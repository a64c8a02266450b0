"""The emulated Wazzup API v3 routes: channels, message, templates, webhooks, users, iframe.

Shapes and codes: reference/wazzup-api-v3.md §2 (channels), §3 (message), §4 (webhooks), §7 (errors),
§8.2 (users), §8.4 (iframe). Authentication, rate limit and faults are applied before these run (``app.py``).
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlsplit

import falcon
import requests

from wazzup_plugin.sandbox import templates
from wazzup_plugin.sandbox.config import CHAT_TYPES, TRANSPORT_CHAT_TYPES
from wazzup_plugin.sandbox.core import BAD_CONTACT_DESCRIPTION, DEFAULT_SUBSCRIPTIONS, Sandbox

PHONE_CHAT_TYPES = ("whatsapp", "viber")
# A channel that is not active refuses sends; which code for which state is our reading of §3.5.
STATE_ERRORS = {
    "disabled": ("CHANNEL_BLOCKED", "Channel is blocked"),
    "notenoughmoney": ("CHANNEL_NO_MONEY", "Channel is not paid"),
    "rejected": ("CHANNEL_WAPI_REJECTED", "WABA channel is rejected"),
}
UNAVAILABLE = ("MESSAGE_CHANNEL_UNAVAILABLE", "Phone unavailable")
# chatType -> (longest text, the code refusing a longer one), reference §3.2 and §3.5; WhatsApp's
# (MESSAGE_TEXT_TOO_LONG) is the config's max_text. A WhatsApp chat on a WABA channel (wapi) takes
# 1,024 characters in a regular message. Wazzup documents no MAX-specific code: the generic one.
TEXT_LIMITS = {
    "telegram": (4096, "MESSAGES_TOO_LONG_TELEGRAM"), "telegroup": (4096, "MESSAGES_TOO_LONG_TELEGRAM"),
    "max": (4096, "MESSAGE_TEXT_TOO_LONG"), "maxgroup": (4096, "MESSAGE_TEXT_TOO_LONG"),
    "viber": (6999, "MESSAGES_TOO_LONG_VIBER"), "instagram": (1000, "MESSAGES_TOO_LONG_INSTAGRAM"),
    "vk": (1000, "MESSAGES_TOO_LONG_VK"), "avito": (1000, "MESSAGES_TOO_LONG_AVITO"),
}
WABA_TEXT_LIMIT = (1024, "MESSAGES_TOO_LONG_WABA")
WEBHOOK_URI_LIMIT = 200
MAX_CONTENT_BYTES = 10 * 1000 * 1000   # "content exceeds the allowable size of 10 MB" (§3.2)
FETCH_TIMEOUT = (2.0, 5.0)             # connect, read: Wazzup fetches at once and does not wait long
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
CONTENT_ERRORS = {"MESSAGE_DOWNLOAD_CONTENT_ERROR": "Failed to download content",
                  "MESSAGES_CONTENT_SIZE_EXCEEDED": "Content exceeds the allowable size of 10 MB"}


def wazzup_error(resp, code: str, description: str, data=None, status: int = 400) -> None:
    body = {"status": status, "requestId": uuid.uuid4().hex, "error": code, "description": description}
    if data is not None:
        body["data"] = data
    resp.status = status
    resp.media = body


def read_json(req):
    """The body as JSON, or raise ValueError."""
    raw = req.bounded_stream.read()
    return json.loads(raw.decode("utf-8")) if raw else None


def _is_http_url(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def is_local(uri: str) -> bool:
    """A URL on this machine: the only ones the sandbox downloads (it never reaches the internet)."""
    try:
        return urlsplit(uri).hostname in LOCAL_HOSTS
    except ValueError:
        return False


def fetch_content(sb: Sandbox, uri: str) -> str | None:
    """Download ``uri`` once as Wazzup does (no redirects followed); the error code when that fails."""
    try:
        with sb.http.get(uri, allow_redirects=False, timeout=FETCH_TIMEOUT, stream=True) as got:
            if got.status_code != 200:
                return "MESSAGE_DOWNLOAD_CONTENT_ERROR"
            size = 0
            for chunk in got.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_CONTENT_BYTES:
                    return "MESSAGES_CONTENT_SIZE_EXCEEDED"
    except requests.RequestException:
        return "MESSAGE_DOWNLOAD_CONTENT_ERROR"
    sb.count("content_fetched")
    return None


def _is_address(body: dict, name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        return False
    return bool(re.fullmatch(r"\d{8,15}", value) if name == "phone" else re.fullmatch(r"[A-Za-z]\w{4,31}", value))


def invalid_fields(body: dict) -> list[str]:
    """The fields of a send that are missing or of the wrong type (INVALID_MESSAGE_DATA)."""
    bad = []
    if not isinstance(body.get("channelId"), str) or not body["channelId"]:
        bad.append("channelId")
    chat_type = body.get("chatType")
    if chat_type not in CHAT_TYPES:
        bad.append("chatType")
    chat_id = body.get("chatId")
    # Telegram by username or phone, MAX by phone, when the chatId is not known (reference §3.1).
    by_name = ((chat_type == "telegram" and (_is_address(body, "username") or _is_address(body, "phone")))
               or (chat_type == "max" and _is_address(body, "phone")))
    if chat_id is None and not by_name:
        bad.append("chatId")
    elif chat_id is not None and (not isinstance(chat_id, str) or not chat_id
                                  or (chat_type in PHONE_CHAT_TYPES and not re.fullmatch(r"\d{8,15}", chat_id))):
        bad.append("chatId")
    for name in ("text", "crmMessageId", "crmUserId", "refMessageId", "templateId"):
        if name in body and not isinstance(body[name], str):
            bad.append(name)
    if "contentUri" in body and not _is_http_url(body["contentUri"]):
        bad.append("contentUri")
    if "clearUnanswered" in body and not isinstance(body["clearUnanswered"], bool):
        bad.append("clearUnanswered")
    values = body.get("templateValues", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values) \
            or ("templateValues" in body and "templateId" not in body):
        bad.append("templateValues")
    if "templateId" in body and ("text" in body or "contentUri" in body):
        bad.append("templateId")  # a template is the whole message
    return bad


class ChannelsResource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        resp.media = [c.to_json() for c in self.sandbox.config.channels]


class MessageResource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        sb = self.sandbox
        code = self._refusal(req, resp)
        if code is not None:
            sb.count(code)
            return
        answer, before, after = sb.accept(req.context.send)
        for body in before:           # posted before we answer: the product may see them first
            status, _ = sb.sender.post_once(body)
            if status is None or not 200 <= status < 300:
                sb.sender.enqueue(body)
        for delay, body in after:
            sb.sender.enqueue(body, delay)
        sb.count("201")
        resp.status = falcon.HTTP_201
        resp.media = answer

    def _refusal(self, req, resp) -> str | None:
        """Validate the send; on refusal, answer and return the error code."""
        sb, cfg = self.sandbox, self.sandbox.config
        try:
            body = read_json(req)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            wazzup_error(resp, "INVALID_MESSAGE_DATA", "Message data is invalid", {"fields": []})
            return "INVALID_MESSAGE_DATA"
        bad = invalid_fields(body)
        if bad:
            wazzup_error(resp, "INVALID_MESSAGE_DATA", "Message data is invalid", {"fields": bad})
            return "INVALID_MESSAGE_DATA"
        text, content = body.get("text"), body.get("contentUri")
        if text is not None and content is not None:
            wazzup_error(resp, "MESSAGE_ONLY_TEXT_OR_CONTENT", "Message can contain only text or content")
            return "MESSAGE_ONLY_TEXT_OR_CONTENT"
        if text is None and content is None and "templateId" not in body:
            wazzup_error(resp, "MESSAGE_NOTHING_TO_SEND", "Nothing to send: no text and no content")
            return "MESSAGE_NOTHING_TO_SEND"
        if text is not None and not text.strip():
            wazzup_error(resp, "MESSAGES_TEXT_CAN_NOT_BE_BLANK", "Text can not be blank")
            return "MESSAGES_TEXT_CAN_NOT_BE_BLANK"
        channel = cfg.channel(body["channelId"])
        if text is not None:
            if body["chatType"] == "whatsapp" and channel is not None and channel.transport == "wapi":
                limit, code = WABA_TEXT_LIMIT
            else:
                limit, code = TEXT_LIMITS.get(body["chatType"], (cfg.max_text, "MESSAGE_TEXT_TOO_LONG"))
            if len(text) > limit:
                wazzup_error(resp, code, f"Text length exceeds {limit} characters", {"maxLength": limit})
                return code
        if channel is None:
            wazzup_error(resp, "CHANNEL_NOT_FOUND", "Channel not found", {"channelId": body["channelId"]})
            return "CHANNEL_NOT_FOUND"
        if body["chatType"] not in TRANSPORT_CHAT_TYPES[channel.transport]:
            wazzup_error(resp, "WRONG_TRANSPORT", "chatType does not match the channel's transport",
                         {"channelId": channel.channelId, "transport": channel.transport,
                          "chatType": body["chatType"]})
            return "WRONG_TRANSPORT"
        if channel.state.lower() != "active":
            code, description = STATE_ERRORS.get(channel.state.lower(), UNAVAILABLE)
            wazzup_error(resp, code, description, {"channelId": channel.channelId, "state": channel.state})
            return code
        if "templateId" in body:
            refused = templates.refusal(cfg, channel, body)
            if refused is not None:
                wazzup_error(resp, *refused)
                return refused[0]
        if content is not None and any(content.startswith(p) for p in cfg.unreachable_content):
            # Which contentUris "fail to download" is configured (without fetch_content nothing is fetched).
            wazzup_error(resp, "MESSAGE_DOWNLOAD_CONTENT_ERROR", "Failed to download content",
                         {"contentUri": content})
            return "MESSAGE_DOWNLOAD_CONTENT_ERROR"
        if content is not None and cfg.fetch_content and is_local(content):
            code = fetch_content(sb, content)
            if code is not None:
                wazzup_error(resp, code, CONTENT_ERRORS[code], {"contentUri": content})
                return code
        ref = body.get("refMessageId")
        if ref is not None and not sb.knows_message(ref):
            wazzup_error(resp, "REFERENCE_MESSAGE_NOT_FOUND", "Reference message not found", {"refMessageId": ref})
            return "REFERENCE_MESSAGE_NOT_FOUND"
        contact = body.get("chatId") or body.get("phone") or body.get("username")
        if cfg.bad_contact_mode == "reject" and contact in cfg.bad_contacts:
            wazzup_error(resp, "BAD_CONTACT", BAD_CONTACT_DESCRIPTION, {"chatId": contact})
            return "BAD_CONTACT"
        if sb.repeated_crm_id(body.get("crmMessageId")):
            wazzup_error(resp, "REPEATED_CRM_MESSAGE_ID", "You have already sent message with same crmMessageId",
                         {"crmMessageId": body["crmMessageId"]})
            return "REPEATED_CRM_MESSAGE_ID"
        req.context.send = body
        return None


class TemplatesResource:
    """``GET /v3/templates/whatsapp?limit=&offset=``: the account's WABA templates, a page at a time."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        bounds = templates.page_bounds(req.params)
        if bounds is None:
            wazzup_error(resp, "VALIDATION_ERROR", f"limit must be 1-{templates.MAX_PAGE} and offset 0 or more",
                         {"fields": ["limit", "offset"]})
            return
        limit, offset = bounds
        resp.media = templates.listed(self.sandbox.config)[offset:offset + limit]


class WebhooksResource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        sb = self.sandbox
        as_str = sb.config.webhook_bools_as_strings
        resp.media = {"webhooksUri": sb.webhook_uri,
                      "subscriptions": {k: (str(v).lower() if as_str else v) for k, v in sb.subscriptions.items()}}

    def on_patch(self, req, resp):
        sb = self.sandbox
        try:
            body = read_json(req)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            wazzup_error(resp, "VALIDATION_ERROR", "Body must be a JSON object")
            return
        uri = body.get("webhooksUri")
        if not _is_http_url(uri) or len(uri) > WEBHOOK_URI_LIMIT:
            wazzup_error(resp, "uriNotValid", "Provided URI is not valid URI")
            return
        subs = body.get("subscriptions", {})
        if not isinstance(subs, dict) or any(not isinstance(v, bool) for v in subs.values()):
            wazzup_error(resp, "VALIDATION_ERROR", "subscriptions must map names to true or false",
                         {"fields": ["subscriptions"]})
            return
        unknown = [name for name in subs if name not in DEFAULT_SUBSCRIPTIONS]
        if unknown:
            # §4.1 names four subscriptions and documents no code of its own for others: the generic one.
            wazzup_error(resp, "VALIDATION_ERROR", f"Unknown subscription: {', '.join(unknown)}",
                         {"fields": [f"subscriptions.{name}" for name in unknown]})
            return
        status, error = sb.sender.post_once({"test": True}, url=uri)
        if status != 200:
            wazzup_error(resp, "testPostNotPassed", "URI does not return 200 OK on test request",
                         {"statusCode": status} if error is None else {"statusCode": None, "reason": error})
            return
        with sb.lock:
            sb.webhook_uri = uri
            sb.subscriptions = {**sb.subscriptions, **subs}
        resp.media = {"ok": True}


USERS_PER_CALL = 100   # batch routes take at most 100 entities (§7: TOO_MANY_ENTITIES)
USER_FIELD_MAX = 200   # a user's id and name (§8.2)


def invalid_user_fields(user) -> list[str]:
    """The fields of one user of ``POST /v3/users`` that Wazzup would refuse (INVALID_USERS_DATA)."""
    if not isinstance(user, dict):
        return ["id", "name"]
    bad = [f for f in ("id", "name") if not (isinstance(user.get(f), str) and 1 <= len(user[f]) <= USER_FIELD_MAX)]
    if "phone" in user and not isinstance(user["phone"], str):  # an invalid number is dropped, not refused
        bad.append("phone")
    return bad


class UsersResource:
    """``GET /v3/users``: the users, sorted by name (the older documented shape: a plain array).
    ``POST /v3/users``: up to 100 users upserted by id, all or none."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        resp.media = self.sandbox.listed_users()

    def on_post(self, req, resp):
        sb = self.sandbox
        try:
            body = read_json(req)
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, list):
            wazzup_error(resp, "INVALID_USERS_DATA", "Users data is invalid", [])
            sb.count("INVALID_USERS_DATA")
            return
        if len(body) > USERS_PER_CALL:
            wazzup_error(resp, "TOO_MANY_ENTITIES", f"No more than {USERS_PER_CALL} entities in a request",
                         {"maxCount": USERS_PER_CALL, "count": len(body)})
            sb.count("TOO_MANY_ENTITIES")
            return
        bad = [{"index": i, "fields": fields} for i, user in enumerate(body) if (fields := invalid_user_fields(user))]
        if bad:
            wazzup_error(resp, "INVALID_USERS_DATA", "Users data is invalid", bad)
            sb.count("INVALID_USERS_DATA")
            return
        sb.upsert_users(body)
        sb.count("users")
        resp.status = falcon.HTTP_200
        resp.data = b""


class UserResource:
    """``DELETE /v3/users/:id``: removes the user (200, no body, as a post is answered); an id the account
    has no user with is 404 ``USER_NOT_FOUND`` (Wazzup documents neither answer: our best guess)."""

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_delete(self, req, resp, user_id):
        sb = self.sandbox
        if not sb.delete_user(user_id):
            wazzup_error(resp, "USER_NOT_FOUND", "User not found", {"id": user_id}, status=404)
            sb.count("USER_NOT_FOUND")
            return
        sb.count("users_deleted")
        resp.status = falcon.HTTP_200
        resp.data = b""


class IframeResource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        try:
            body = read_json(req)
        except (ValueError, UnicodeDecodeError):
            body = None
        bad = []
        if not isinstance(body, dict):
            body, bad = {}, ["body"]
        user = body.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not isinstance(user.get("name"), str):
            bad.append("user")
        scope = body.get("scope", "global")
        if scope not in ("global", "card"):
            bad.append("scope")
        if scope == "card" and not (isinstance(body.get("filter"), list) and body["filter"]):
            bad.append("filter")
        if bad:
            if self.sandbox.config.iframe_error_nested:   # the shape a third-party client reports
                resp.status = 400
                resp.media = {"error": {"code": "INVALID_IFRAME_DATA", "description": "Iframe data is invalid",
                                        "fields": bad}}
            else:
                wazzup_error(resp, "VALIDATION_ERROR", "Iframe data is invalid", {"fields": bad})
            return
        base = self.sandbox.config.public_url.rstrip("/")
        resp.media = {"url": f"{base}/_sandbox/iframe/{uuid.uuid4().hex}"}
