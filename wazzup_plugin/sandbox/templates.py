"""WhatsApp Business templates as the sandbox's Wazzup keeps them, lists them and checks a send of one.

Shapes: reference wazzup-api-v3.md §8.6 (``GET /v3/templates/whatsapp``) and §3.1 (``templateId`` +
``templateValues``). A configured template with no ``channels`` belongs to every ``wapi`` channel.
Which refusal for what is our reading of §3.5: an unknown template or values that do not fit are
``INVALID_MESSAGE_DATA`` naming the field; a template Meta restricted is ``TEMPLATE_REJECTED``.
"""

from __future__ import annotations

import re

WABA = "wapi"
ACCOUNT_ID = 10863
VARIABLE = re.compile(r"\{\{\s*(\d{1,2})\s*\}\}")
MAX_PAGE = 100  # the largest `limit` the sandbox takes (Wazzup's example pages by 100)
WINDOW_CLOSED = {"error": "24_HOURS_EXCEEDED", "description": "The 24-hour WABA dialogue is closed"}

APPROVED_TEMPLATE_ID = "6201005a-9a6f-486f-bdd5-e6cb86c76ddb"
REJECTED_TEMPLATE_ID = "8d255e5d-aefd-44dc-8131-c3ad6c3ab28c"
DEFAULT_TEMPLATES = (
    {"templateGuid": APPROVED_TEMPLATE_ID, "title": "Order update", "name": "order_update", "category": "UTILITY",
     "language": "en", "status": "APPROVED", "channels": [],
     "components": [{"type": "BODY", "text": "Hello {{1}}! Your order {{2}} is on its way. Reply here with any "
                                             "questions."},
                    {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Thanks"}]}]},
    {"templateGuid": REJECTED_TEMPLATE_ID, "title": "Winter sale", "name": "winter_sale", "category": "MARKETING",
     "language": "en", "status": "REJECTED", "rejected_reason": "PROMOTIONAL", "channels": [],
     "components": [{"type": "BODY", "text": "Hi {{1}}, everything is 50% off this week!"}]},
)


def body_text(template: dict) -> str:
    return next((c.get("text") or "" for c in template.get("components") or []
                 if isinstance(c, dict) and str(c.get("type")).upper() == "BODY"), "")


def variables(template: dict) -> int:
    return max((int(n) for n in VARIABLE.findall(body_text(template))), default=0)


def render(template: dict, values: list[str]) -> str:
    return VARIABLE.sub(lambda m: values[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(values) else m.group(0),
                        body_text(template))


def channel_ids(template: dict, channels) -> list[str]:
    """The channels a template is for: its own list, else every WABA channel of the account."""
    return list(template.get("channels") or [c.channelId for c in channels if c.transport == WABA])


def listed(config) -> list[dict]:
    """Every template as ``GET /v3/templates/whatsapp`` shows it."""
    return [{"accountId": ACCOUNT_ID, "waba": {"wabaId": "102290129340398", "wabaName": "Sandbox WABA"},
             "namespace": "sandbox", "rejected_reason": None, **t, "channels": channel_ids(t, config.channels)}
            for t in config.templates]


def page_bounds(params: dict) -> tuple[int, int] | None:
    """(limit, offset) from the query, or None when they are not numbers in range."""
    try:
        limit, offset = int(params.get("limit", MAX_PAGE)), int(params.get("offset", 0))
    except (TypeError, ValueError):
        return None
    return (limit, offset) if 1 <= limit <= MAX_PAGE and offset >= 0 else None


def refusal(config, channel, body: dict) -> tuple[str, str, dict] | None:
    """Why Wazzup would refuse this template send (code, description, data), or None."""
    template_id, values = body["templateId"], body.get("templateValues", [])
    template = next((t for t in config.templates if t.get("templateGuid") == template_id), None)
    if (channel.transport != WABA or template is None
            or channel.channelId not in channel_ids(template, config.channels)):
        return "INVALID_MESSAGE_DATA", "Message data is invalid", {"fields": ["templateId"]}
    if str(template.get("status")).upper() != "APPROVED":
        return ("TEMPLATE_REJECTED", "Template is restricted, try another one or wait for an incoming message",
                {"templateId": template_id})
    if len(values) != variables(template):
        return "INVALID_MESSAGE_DATA", "Message data is invalid", {"fields": ["templateValues"]}
    return None


def template_text(config, body: dict) -> str | None:
    """The text a template send puts in the chat (its body filled in), for its echo."""
    template = next((t for t in config.templates if t.get("templateGuid") == body.get("templateId")), None)
    return render(template, body.get("templateValues", [])) if template else None
