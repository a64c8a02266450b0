"""Is Wazzup24 usable? The connection report behind ``GET /api/wazzup24/connection`` and the CLI.

``status``: ``ok`` (key valid, a usable channel, our webhook registered with the subscriptions we need
and protected), ``degraded``
(the key works but something needs attention: see ``warnings``), ``error`` (Wazzup unusable: bad
key, no network, an API error; see ``reason``), ``not_configured`` (no API key). Reports are cached
per process for ``WAZZUP24_CONNECTION_CACHE_SECONDS`` so polling UIs cannot exhaust the rate limit.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from marshmallow import Schema, fields

from wazzup_plugin.client import WazzupAuthError, WazzupError, WazzupRateLimited, WazzupUnavailable
from wazzup_plugin.outbound.channels import (WHATSAPP_TRANSPORTS, ChannelSelectionError, channel_name, is_active,
                                              needs_a_person, remember_channels, select_channel, what_to_do)
from wazzup_plugin.outbound.context import outbound
from wazzup_plugin.outbound.webhook_setup import compare, mask_url, with_secret
from wazzup_plugin.text_limits import for_the_ui as text_limits_for_the_ui

log = logging.getLogger(__name__)


def stored_channels(ctx) -> list[dict]:
    """Channel states the inbound webhook recorded from ``channelsUpdates`` (and the last channel
    list): ``has_chats`` whether any chat talks through the channel; ``needs_action`` whether its
    state is one only a person can fix, ``advice`` then says what to do."""
    t, wc = ctx.state.tables["channels"], ctx.state.tables["chats"]
    has_chats = sa.exists().where(wc.c.channel_id == t.c.channel_id).label("has_chats")
    with ctx.helpdesk.db.read() as conn:
        rows = conn.execute(sa.select(t, has_chats).order_by(t.c.channel_id)).all()
    return [{"channel_id": r.channel_id, "transport": r.transport, "plain_id": r.plain_id, "state": r.state,
             "tier": r.tier, "updated_at": r.updated_at.isoformat() if r.updated_at else None,
             "has_chats": bool(r.has_chats), "needs_action": needs_a_person(r.state),
             "advice": what_to_do(r.channel_id, r.transport, r.plain_id, r.state) if needs_a_person(r.state) else None}
            for r in rows]


def inactive_channel_warnings(stored: list[dict]) -> list[str]:
    """A warning per channel that is not active while chats talk through it, naming it."""
    warnings = []
    for c in stored:
        if not c["has_chats"] or str(c["state"]).lower() == "active":
            continue
        if c["needs_action"]:
            warnings.append(f"{c['advice']} Its chats cannot send until then.")
        else:
            name = channel_name(c["channel_id"], c["transport"], c["plain_id"])
            warnings.append(f"{name[0].upper()}{name[1:]} is {c['state']!r} at Wazzup, not active: messages to "
                            "its chats wait until it is active again.")
    return warnings


def check_connection(ctx, use_cache: bool = True) -> dict:
    if not use_cache:
        return _check(ctx)
    return ctx.cached("connection", lambda: _check(ctx))


def _check(ctx) -> dict:
    report = _ask_wazzup(ctx)
    # Read last, once: asking Wazzup for its channels may just have updated them.
    report["stored_channel_states"] = stored_channels(ctx)
    inactive = inactive_channel_warnings(report["stored_channel_states"])
    if inactive:
        report["warnings"].extend(inactive)
        if report["status"] == "ok":
            report["status"] = "degraded"
    return report


def _a_redirect(http_status: int | None) -> bool:
    return http_status is not None and 300 <= http_status < 400


def _ask_wazzup(ctx) -> dict:
    s = ctx.settings
    ours = with_secret(s.webhook_url, s.webhook_secret) if s.webhook_url else None
    report = {
        "status": "ok", "configured": s.configured, "key_valid": None, "api_url": mask_url(s.api_url), "latency_ms": None,
        "channels": [], "stored_channel_states": [], "selected_channel": None,
        "webhook": {"our_url": mask_url(ours, s.webhook_secret), "registered_url": None, "registration": None,
                    "protected": bool(s.webhook_secret)},
        "webhook_protected": bool(s.webhook_secret),
        "warnings": [], "reason": None, "checked_at": ctx.clock().isoformat(),
        "text_limits": text_limits_for_the_ui(),
    }
    warnings = report["warnings"]
    if not s.webhook_secret:
        warnings.append("The webhook is unprotected: WAZZUP24_WEBHOOK_SECRET is not set "
                        "(`helpdesk-stub wazzup24 set-webhook` makes one).")
    if ctx.client is None:
        report.update(status="not_configured", reason="WAZZUP24_API_KEY is not set: incoming messages are received, "
                                                      "sending is off.")
        return report
    try:
        channels = ctx.client.channels()
    except WazzupRateLimited as exc:
        # Not a fault of the connection, and no advice about the network: the helpdesk is sending at
        # its rate limit, or Wazzup asked it to wait (429). Nothing is lost; the key was not checked.
        report.update(status="degraded", latency_ms=ctx.client.last_latency_ms, reason=(
            f"{exc.message}. Wazzup could not be asked just now: the helpdesk is sending at its rate limit "
            "(WAZZUP24_RATE_LIMIT) or Wazzup asked it to wait; queued messages go out in turn. Check again "
            "in a few seconds"))
        log.info("Wazzup24 connection check waited for the rate limit: %s", exc.message)
        return report
    except WazzupError as exc:
        reason = exc.message
        if isinstance(exc, WazzupUnavailable) and exc.http_status is None:  # no answer at all
            reason += f". Check this server's network and WAZZUP24_API_URL ({mask_url(s.api_url)})"
        report.update(status="error", reason=reason, latency_ms=ctx.client.last_latency_ms)
        if isinstance(exc, WazzupAuthError):
            report["key_valid"] = False
        elif not isinstance(exc, WazzupUnavailable) and not _a_redirect(exc.http_status):
            report["key_valid"] = True  # Wazzup answered past authentication (a redirect never got there)
        log.warning("Wazzup24 connection check failed: %s", exc.message,
                    extra={"context": {"status": "error", "operation": exc.operation}})
        return report
    report.update(key_valid=True, latency_ms=ctx.client.last_latency_ms)
    remember_channels(ctx, channels)
    report["channels"] = [{"channel_id": c.get("channelId"), "transport": c.get("transport"),
                           "plain_id": c.get("plainId"), "state": c.get("state"), "active": is_active(c)}
                          for c in channels]
    try:
        selected = select_channel(None, s.channel_id, lambda: channels)
        listed = next((c for c in channels if str(c.get("channelId")) == selected.channel_id), None)
        report["selected_channel"] = {"channel_id": selected.channel_id, "source": selected.source,
                                      "state": listed.get("state") if listed else None}
        if listed is None:
            warnings.append(f"WAZZUP24_CHANNEL_ID {selected.channel_id} is not among the account's channels.")
        elif str(listed.get("transport") or "").lower() not in WHATSAPP_TRANSPORTS:
            warnings.append(f"WAZZUP24_CHANNEL_ID {selected.channel_id} is a {listed.get('transport') or 'non-WhatsApp'} "
                            "channel: WhatsApp chats started from the helpdesk cannot send through it (Wazzup "
                            "refuses them, WRONG_TRANSPORT). Set it to a WhatsApp channel's id.")
        elif not is_active(listed):
            warnings.append(f"The selected channel is {listed.get('state')!r}, not active: messages cannot be sent.")
    except ChannelSelectionError as exc:
        warnings.append(str(exc))
    if not s.webhook_url:
        warnings.append("WAZZUP24_WEBHOOK_URL is not set, so Wazzup cannot deliver incoming messages here.")
    try:
        answer = ctx.client.get_webhooks()
    except WazzupError as exc:
        warnings.append(f"Could not read the webhook registered at Wazzup: {exc.message}")
    else:
        answer = answer if isinstance(answer, dict) else {}
        registered = answer.get("webhooksUri") or None
        verdict = compare(registered, ours)
        report["webhook"].update(registered_url=mask_url(registered, s.webhook_secret), registration=verdict)
        if verdict == "none":
            warnings.append("No webhook is registered at Wazzup: run `helpdesk-stub wazzup24 set-webhook`.")
        elif verdict == "other" and s.webhook_url:
            warnings.append("Wazzup delivers to another URL (the account has only one): run "
                            "`helpdesk-stub wazzup24 set-webhook` if this helpdesk should receive.")
        elif verdict == "stale_secret":
            # set-webhook prints a new secret for .env when there is none: re-running it before
            # that only makes yet another one, so the hint names both ways out.
            warnings.append("The webhook registered at Wazzup carries another secret than "
                            "WAZZUP24_WEBHOOK_SECRET: if `set-webhook` just printed one, put it in "
                            "WAZZUP24_WEBHOOK_SECRET and restart; otherwise run "
                            "`helpdesk-stub wazzup24 set-webhook` to register this one.")
        if verdict in ("same", "stale_secret"):
            warnings.extend(subscription_warnings(answer.get("subscriptions")))
    if warnings:
        report["status"] = "degraded"
    log.info("Wazzup24 connection checked: %s", report["status"],
             extra={"context": {"status": report["status"], "latency_ms": report["latency_ms"]}})
    return report


# The subscriptions this plugin needs (``set-webhook`` turns them on), and what is lost without each.
NEEDED_SUBSCRIPTIONS = {
    "messagesAndStatuses": "customers' messages and the delivery statuses of sent messages never arrive here",
    "channelsUpdates": "changes of the channels' state (a phone going offline, a QR code to scan) never arrive here",
}


def subscription_flag(value) -> bool | None:
    """A subscription flag from ``GET /v3/webhooks``: Wazzup documents ``"true"``/``"false"`` strings,
    accounts are seen answering booleans (reference §4.2). None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def subscription_warnings(subscriptions) -> list[str]:
    """Warnings for the needed subscriptions that are off, or not confirmed, at Wazzup."""
    subscriptions = subscriptions if isinstance(subscriptions, dict) else {}
    warnings = []
    for name, lost in NEEDED_SUBSCRIPTIONS.items():
        flag = subscription_flag(subscriptions.get(name))
        if flag is True:
            continue
        state = "is off" if flag is False else "is not confirmed by Wazzup"
        warnings.append(f"Wazzup's webhook subscription {name!r} {state}: {lost}. Run "
                        "`helpdesk-stub wazzup24 set-webhook` to subscribe again.")
    return warnings


class ConnectionSchema(Schema):
    status = fields.String(metadata={"description": "ok, degraded, error or not_configured"})
    configured = fields.Boolean()
    key_valid = fields.Boolean(allow_none=True)
    api_url = fields.String()
    latency_ms = fields.Float(allow_none=True)
    channels = fields.List(fields.Dict())
    stored_channel_states = fields.List(fields.Dict())
    selected_channel = fields.Dict(allow_none=True)
    webhook = fields.Dict(metadata={"description": "our_url, registered_url (secrets masked), registration "
                                                   "(same, stale_secret, other, none), protected"})
    webhook_protected = fields.Boolean(metadata={"description": "whether WAZZUP24_WEBHOOK_SECRET guards the webhook"})
    warnings = fields.List(fields.String())
    reason = fields.String(allow_none=True)
    checked_at = fields.String()
    text_limits = fields.Dict(metadata={"description": "the longest text per Wazzup chat type (by_chat_type), "
                                                       "for a WhatsApp chat on a WABA channel (waba), and otherwise "
                                                       "(default), in characters (Unicode code points)"})


class ConnectionResource:
    openapi = {"get": {
        "summary": "Wazzup24 connection status",
        "description": "Key validity, channels and their states, the selected channel, the webhook registered "
                       "at Wazzup against ours (secrets masked), latency and the reason when something is wrong. "
                       "Cached briefly.",
        "responses": {"200": {"description": "the report", "content": {"application/json": {"schema": ConnectionSchema}}}},
    }}

    def __init__(self, helpdesk, state):
        self.helpdesk = helpdesk
        self.state = state

    def on_get(self, req, resp):
        resp.media = check_connection(outbound(self.helpdesk, self.state))
