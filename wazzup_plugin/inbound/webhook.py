"""``POST /api/webhook`` and ``POST /api/wazzup24/webhook``: Wazzup's deliveries, stored once.

Order of work: the secret (401, nothing read), the body (413 over the limit, 400 when it is not a
JSON object), ``{"test": true}`` (200 at once), item-by-item validation, the delivery's lookups,
then one write transaction for the whole delivery (none when it only repeats stored messages).
A database failure propagates: the host answers 503, the transaction is rolled back, and Wazzup
delivers again.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import falcon
from marshmallow import Schema, fields

from wazzup_plugin import heartbeats
from wazzup_plugin.inbound.auth import PREVIOUS, which_secret
from wazzup_plugin.inbound.parse import parse_delivery
from wazzup_plugin.inbound.store import write_delivery

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = timedelta(minutes=1)   # expire parked items at most this often per process
PREVIOUS_SECRET_LOG_EVERY = timedelta(minutes=1)
_PREVIOUS_SECRET_USES = "inbound.previous_secret_uses"  # deliveries since the last log line, per process


class WebhookAnswerSchema(Schema):
    ok = fields.Boolean(required=True)
    new_messages = fields.Integer()
    duplicates = fields.Integer()
    statuses_applied = fields.Integer()
    parked = fields.Integer()
    quarantined = fields.Integer()
    channels = fields.Integer()


def _error(status: int):
    return {"description": {400: "the body is not a JSON object", 401: "missing or wrong webhook secret",
                            413: "the body is over the size limit",
                            503: "database unavailable: nothing stored, deliver again"}[status],
            "content": {"application/json": {"schema": "Error"}}}


class WebhookResource:
    openapi = {"post": {
        "summary": "Wazzup24 webhook: messages, statuses, channel updates (no agent authentication)",
        "description": "Wazzup24 API v3 deliveries. When WAZZUP24_WEBHOOK_SECRET is set, send it as "
                       "?token=<secret> or Authorization: Bearer <secret>. Items that do not fit are "
                       "quarantined; the rest is stored. {\"test\": true} is answered 200 at once.",
        "parameters": [{"in": "query", "name": "token", "required": False, "schema": {"type": "string"},
                        "description": "the webhook secret"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": True}}}},
        "responses": {"200": {"description": "stored (or a test request)",
                              "content": {"application/json": {"schema": WebhookAnswerSchema}}},
                      **{str(code): _error(code) for code in (400, 401, 413, 503)}},
    }}

    def __init__(self, helpdesk, state):
        self.helpdesk = helpdesk
        self.state = state

    def on_post(self, req, resp):
        settings = self.state.settings
        secret = which_secret(settings.webhook_secret, req, settings.webhook_secret_previous)
        if secret is None:
            log.warning("webhook delivery refused: missing or wrong secret",
                        extra={"context": {"remote_addr": req.remote_addr}})
            raise falcon.HTTPUnauthorized(
                title="unauthorized",
                description="This webhook needs its secret: ?token=<WAZZUP24_WEBHOOK_SECRET> or "
                            "'Authorization: Bearer <secret>'.")
        if secret == PREVIOUS:
            self._previous_secret_used()
        body = self._read_json(req)
        if body.get("test") is True:
            log.info("webhook test request answered")
            self._received()
            resp.media = {"ok": True}
            return

        delivery = parse_delivery(body)
        summary = write_delivery(self.helpdesk.db, self.state, delivery, self.helpdesk.clock(),
                                 housekeeping=self._housekeeping_due())
        context = summary.context()
        for key, notice in delivery.notices.items():
            source = notice.get("source") if isinstance(notice, dict) else None
            log.info("webhook %s received and acknowledged (not handled: this helpdesk creates chats itself)",
                     key, extra={"context": {"kind": key,  # the client's word, bounded: it reaches the log
                                             "source": source[:100] if isinstance(source, str) else None}})
        log.info("webhook delivery stored", extra={"context": context})
        for message_id, wazzup_id, code in summary.failed:  # an agent's reply that never reached the customer
            log.warning("Wazzup24 message not delivered", extra={"context": {
                "message_id": message_id, "wazzup_message_id": wazzup_id, "error_code": code}})
        self._received()
        resp.media = {"ok": True, **{k: context[k] for k in (
            "new_messages", "duplicates", "statuses_applied", "parked", "quarantined", "channels")}}

    def _read_json(self, req) -> dict:
        limit = self.helpdesk.config.max_body_bytes
        # Content-Length over the limit is refused by the host before we get here. A chunked body
        # (no Content-Length; the server marks its input terminated) is read to at most one byte
        # past the limit.
        chunked = req.content_length is None and req.env.get("wsgi.input_terminated")
        raw = (req.stream if chunked else req.bounded_stream).read(limit + 1)
        if len(raw) > limit:
            raise falcon.HTTPContentTooLarge(
                title="payload_too_large",
                description=f"The request body is larger than the limit of {limit} bytes.")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise falcon.HTTPBadRequest(title="bad_request",
                                        description="The body must be a JSON object (it is not valid JSON).")
        if not isinstance(body, dict):
            raise falcon.HTTPBadRequest(title="bad_request",
                                        description="The body must be a JSON object, got "
                                                    f"{type(body).__name__ if body is not None else 'null'}.")
        return body

    def _housekeeping_due(self) -> bool:
        """Parked items expire on deliveries, at most once a minute per process (bounded work)."""
        return heartbeats.due(self.state.extras, "inbound.housekeeping", self.helpdesk.clock(), HOUSEKEEPING_EVERY)

    def _received(self) -> None:
        """Wazzup reached us: ``status`` says when it last did (a write every 30 s per process at most)."""
        heartbeats.beat_if_due(self.helpdesk, self.state, heartbeats.WEBHOOK, every=heartbeats.WEBHOOK_EVERY)

    def _previous_secret_used(self) -> None:
        """A delivery still carries the secret from before a rotation: Wazzup has not got the new one
        (set-webhook did not register it, or failed). Counted, logged at most once a minute per
        process (never the secret), and recorded for ``status``."""
        extras = self.state.extras
        extras[_PREVIOUS_SECRET_USES] = extras.get(_PREVIOUS_SECRET_USES, 0) + 1
        if heartbeats.due(extras, "inbound.previous_secret_log", self.helpdesk.clock(), PREVIOUS_SECRET_LOG_EVERY):
            log.info("a delivery still used the previous webhook secret; run set-webhook again if this persists",
                     extra={"context": {"deliveries": extras.pop(_PREVIOUS_SECRET_USES)}})
        heartbeats.beat_if_due(self.helpdesk, self.state, heartbeats.WEBHOOK_PREVIOUS_SECRET,
                               every=heartbeats.WEBHOOK_EVERY)
