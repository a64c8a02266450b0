"""WhatsApp Business templates: Wazzup's list, the ones a chat may use, and a template filled in.

``GET /v3/templates/whatsapp`` (reference wazzup-api-v3.md §8.6) lists the account's templates
with their channels, status and components; a send names one by ``templateId`` (its
``templateGuid``) with ``templateValues``, the values of its ``{{1}}``, ``{{2}}``... in order.
Only an approved template of the chat's own channel can go out, so the route and the send route
offer and take only those.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

import sqlalchemy as sa

from wazzup_plugin.client import WazzupAuthError, WazzupError
from wazzup_plugin.outbound.context import outbound
from wazzup_plugin.outbound.http import Problem, answers_problems, error_response
from wazzup_plugin.outbound.window import chat_window
from wazzup_plugin.text_limits import TOO_LONG_TEXTS

log = logging.getLogger(__name__)

VARIABLE = re.compile(r"\{\{\s*(\d{1,2})\s*\}\}")
# A template's body, filled in, takes at most this (MESSAGES_TOO_LONG_WABA_TEMPLATE, reference §3.2);
# one value can be no longer either.
MAX_BODY = 1024
MAX_VALUE = MAX_BODY
APPROVED = "APPROVED"


@dataclass(frozen=True)
class Template:
    id: str
    title: str | None
    name: str | None
    language: str | None
    category: str | None
    status: str
    channels: tuple[str, ...]
    body: str
    variables: int
    header: dict | None = None
    footer: str | None = None
    buttons: list = field(default_factory=list)

    def usable_on(self, channel_id: str | None) -> bool:
        return self.status == APPROVED and channel_id is not None and channel_id in self.channels

    def to_json(self) -> dict:
        out = {"id": self.id, "title": self.title, "name": self.name, "language": self.language,
               "category": self.category, "body": self.body, "variables": self.variables}
        if self.header:
            out["header"] = self.header
        if self.footer:
            out["footer"] = self.footer
        if self.buttons:
            out["buttons"] = self.buttons
        return out

    def render(self, values: list[str]) -> str:
        """The body as the customer reads it: each ``{{n}}`` replaced by the n-th value."""
        return VARIABLE.sub(lambda m: values[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(values)
                            else m.group(0), self.body)

    def value_problems(self, values: list[str] | None) -> list[str]:
        """Why ``values`` cannot fill this template (empty: they can). The send route's schema has
        already refused blank values and values over :data:`MAX_VALUE`."""
        values = values or []
        if len(values) != self.variables:
            return [f"this template takes {self.variables} value(s); {len(values)} given"]
        if len(self.render(values)) > MAX_BODY:
            return [TOO_LONG_TEXTS["MESSAGES_TOO_LONG_WABA_TEMPLATE"]]
        return []


def _text(value, size: int = 1024) -> str | None:
    return value[:size] if isinstance(value, str) and value else None


def _channel_ids(raw) -> tuple[str, ...]:
    """Wazzup's ``channels[]``: channel ids, or objects carrying one (the shape is not pinned down)."""
    out = []
    for c in raw if isinstance(raw, list) else []:
        if isinstance(c, dict):
            c = c.get("channelId") or c.get("id")
        if isinstance(c, str) and c:
            out.append(c)
    return tuple(out)


def parse_template(raw: dict) -> Template | None:
    """One template of Wazzup's list; None when it has no id or no body text to show."""
    template_id = _text(raw.get("templateGuid"), 64)
    components = [c for c in raw.get("components") or [] if isinstance(c, dict)]
    by_type = {str(c.get("type") or "").upper(): c for c in components}
    body = _text((by_type.get("BODY") or {}).get("text"), 4096)
    if template_id is None or body is None:
        return None
    numbers = {int(n) for n in VARIABLE.findall(body)}
    header = by_type.get("HEADER")
    header = {k: v for k, v in (("format", _text(header.get("format"), 32)), ("text", _text(header.get("text"))))
              if v} if header else None
    buttons = [{k: v for k, v in (("type", _text(b.get("type"), 32)), ("text", _text(b.get("text"), 200)),
                                  ("url", _text(b.get("url"), 2000))) if v}
               for b in (by_type.get("BUTTONS") or {}).get("buttons") or [] if isinstance(b, dict)]
    return Template(id=template_id, title=_text(raw.get("title"), 300), name=_text(raw.get("name"), 300),
                    language=_text(raw.get("language"), 32), category=_text(raw.get("category"), 64),
                    status=str(raw.get("status") or "").upper(), channels=_channel_ids(raw.get("channels")),
                    body=body, variables=max(numbers, default=0), header=header or None,
                    footer=_text((by_type.get("FOOTER") or {}).get("text")), buttons=buttons)


def account_templates(ctx) -> list[Template]:
    """Every template of the account, from Wazzup (cached briefly, like the channel list)."""
    def fetch():
        return [t for t in map(parse_template, ctx.client.whatsapp_templates()) if t is not None]

    return ctx.cached("templates", fetch)


def usable_templates(ctx, channel_id: str | None) -> list[Template]:
    """The approved templates of one channel, in Wazzup's order. Raises :class:`Problem` when Wazzup
    cannot be asked (not configured: 503; refused or unreachable: 502)."""
    if ctx.client is None:
        raise Problem(503, "wazzup_not_configured", "Wazzup24 is not configured (WAZZUP24_API_KEY is not set).")
    try:
        templates = account_templates(ctx)
    except WazzupError as exc:
        log.warning("Wazzup24 template list failed: %s", exc.message)
        reason = ("Wazzup refused the helpdesk's API key: an administrator must check WAZZUP24_API_KEY."
                  if isinstance(exc, WazzupAuthError) else f"Wazzup's template list could not be read: {exc.message}")
        raise Problem(502, "wazzup_templates_failed", reason) from None
    return [t for t in templates if t.usable_on(channel_id)]


def chosen_template(ctx, channel_id: str | None, template_id: str, values: list[str] | None) -> Template:
    """The template a send names, checked as Wazzup would: it exists, is approved, belongs to the
    chat's channel, and ``values`` fill its variables (422 on the field at fault otherwise)."""
    usable_templates(ctx, channel_id)  # Wazzup's answer (cached), or its problem
    template = next((t for t in account_templates(ctx) if t.id == template_id), None)
    if template is None:
        reason = "Wazzup has no template with this id"
    elif template.status != APPROVED:
        reason = f"this template is {template.status or 'not approved'} at WhatsApp: only approved ones can be sent"
    elif not template.usable_on(channel_id):
        reason = "this template belongs to another WhatsApp Business channel than the chat's"
    else:
        problems = template.value_problems(values)
        if not problems:
            return template
        raise Problem(422, "invalid_body", "The request body is not valid.", fields={"template_values": problems})
    raise Problem(422, "invalid_body", "The request body is not valid.", fields={"template_id": [reason]})


def not_waba(chat_id: int) -> Problem:
    return Problem(409, "not_waba_chat",
                   f"Chat {chat_id} is not on a WhatsApp Business (WABA) channel: templates are for WABA chats, "
                   "and messages to this chat need none.")


def read_window(helpdesk, state, chat_id: int, check_chat):
    """The chat's window, after ``check_chat(conn, chat_id)`` (404 / 409 for a chat that is not Wazzup's)."""
    with helpdesk.db.read() as conn:
        check_chat(conn, chat_id)
        return chat_window(conn, helpdesk, state, chat_id, helpdesk.clock())


class TemplatesResource:
    openapi = {"get": {
        "summary": "The WhatsApp Business templates this chat can be sent",
        "description": "Approved templates of the chat's own WABA channel, with their body and number of "
                       "variables, and the chat's 24-hour window (outside it only a template goes out).",
        "responses": {"200": {"description": "items: the templates; window: the chat's 24-hour window"},
                      "404": error_response("`chat_not_found`: no such chat"),
                      "409": error_response("`not_waba_chat`: not on a WhatsApp Business channel; or not a "
                                            "Wazzup chat"),
                      "502": error_response("Wazzup refused or could not answer the template list"),
                      "503": error_response("Wazzup24 is not configured (WAZZUP24_API_KEY)")},
    }}

    def __init__(self, helpdesk, state, check_chat):
        self.helpdesk = helpdesk
        self.state = state
        self.check_chat = check_chat

    @answers_problems
    def on_get(self, req, resp, chat_id):
        window = read_window(self.helpdesk, self.state, chat_id, self.check_chat)
        if not window.applies:
            raise not_waba(chat_id)
        templates = usable_templates(outbound(self.helpdesk, self.state), window.channel_id)
        resp.media = {"items": [t.to_json() for t in templates], "window": window.to_json()}


def stored_template(conn, state, message_id: int) -> tuple[str, list[str]] | None:
    """The template a stored message was sent as (id, values), or None (a plain text or file)."""
    o = state.tables["outbox"]
    row = conn.execute(sa.select(o.c.template_id, o.c.template_values).where(o.c.message_id == message_id)).first()
    if row is None or row.template_id is None:
        return None
    return row.template_id, json.loads(row.template_values or "[]")
