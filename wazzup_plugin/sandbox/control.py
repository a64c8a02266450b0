"""The sandbox's control API under ``/_sandbox``: what tests, the CLI and ``demo`` use to drive it.

- ``POST /_sandbox/customer-messages`` a customer writes: ``{"text"|"contentUri", "chatId"?, "from":
  "new"|"known", "name"?, "type"?, "isEcho"?, "wait": true}`` → the delivery is posted to the webhook;
- ``POST /_sandbox/statuses`` post a status of a message: ``{"messageId", "status", "error"?}``;
- ``PATCH /_sandbox/channels/{channelId}`` ``{"state"}``: change a channel, posts ``channelsUpdates``;
- ``POST /_sandbox/faults`` inject a fault (see ``faults.py``), ``GET`` lists them, ``DELETE`` clears;
- ``GET /_sandbox/received[?crmMessageId=]`` what the API accepted (and how often per crmMessageId);
- ``GET /_sandbox/deliveries`` the webhook deliveries and their outcomes;
- ``GET``/``PATCH /_sandbox/config`` the behaviour (variants, delays...); ``POST /_sandbox/reset``;
- ``GET /_sandbox/health``; ``GET /_sandbox/media/{photo.png,invoice.pdf}`` files customers can send;
  ``GET /_sandbox/store/{id}/?filename=<name>.png|.pdf|.wav``: the same, as links into Wazzup's store.
The control API needs no key: the sandbox listens on 127.0.0.1 and is never a production service.
"""

from __future__ import annotations

import re

import falcon

from wazzup_plugin.sandbox.api import read_json
from wazzup_plugin.sandbox.config import SandboxConfigError
from wazzup_plugin.sandbox.core import Sandbox, SandboxError
from wazzup_plugin.sandbox.faults import FaultError
from wazzup_plugin.sandbox.media import MediaResource, StoreResource
from wazzup_plugin.sandbox import deliveries

_SECRET_PARAM = re.compile(r"(?i)([?&]token=)[^&#]*")

BODILESS_TYPES = ("missing_call", "unsupported", "unknown")
STATUSES = ("sent", "delivered", "read", "error", "edited")


def control_error(message: str, status=falcon.HTTP_400):
    return falcon.HTTPError(status, title="sandbox", description=message)


def json_object(req) -> dict:
    try:
        body = read_json(req)
    except (ValueError, UnicodeDecodeError):
        raise control_error("the body must be JSON") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise control_error("the body must be a JSON object")
    return body


def post(sandbox: Sandbox, body: dict, wait: bool) -> dict:
    """Post a delivery now (waiting for the outcome) or queue it for the sender thread."""
    if wait:
        job = sandbox.sender.deliver_now(body)
        return {"delivery": job.to_json()}
    job = sandbox.sender.enqueue(body)
    if job is None:
        raise control_error("the webhook queue is full", falcon.HTTP_503)
    return {"delivery": {"id": job.id, "state": job.state}}


class Resource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox


class HealthResource(Resource):
    def on_get(self, req, resp):
        resp.media = {"status": "ok", "webhook": bool(self.sandbox.webhook_uri),
                      "pendingDeliveries": self.sandbox.sender.pending()}


class CustomerMessagesResource(Resource):
    def on_post(self, req, resp):
        spec = json_object(req)
        text, content = spec.get("text"), spec.get("contentUri")
        if text is not None and content is not None:
            raise control_error("give text or contentUri, not both")
        if text is None and content is None and spec.get("type") not in BODILESS_TYPES:
            raise control_error(f"give text or contentUri (or a type without a body: {', '.join(BODILESS_TYPES)})")
        for key in ("text", "contentUri", "chatId", "name", "type", "channelId", "messageId", "avatarUri"):
            if key in spec and not isinstance(spec[key], str):
                raise control_error(f"{key} must be a string")
        if spec.get("from", "new") not in ("new", "known", "given"):
            raise control_error("from must be new or known")
        if not self.sandbox.webhook_uri:
            raise control_error("no webhook is registered (PATCH /v3/webhooks first)", falcon.HTTP_409)
        try:
            body = self.sandbox.customer_message(spec)
        except SandboxError as exc:
            raise control_error(str(exc)) from None
        item = body["messages"][0]
        resp.status = falcon.HTTP_201
        resp.media = {"messageId": item["messageId"], "chatId": item["chatId"], "body": body,
                      **post(self.sandbox, body, spec.get("wait", True) is not False)}


class StatusesResource(Resource):
    def on_post(self, req, resp):
        spec = json_object(req)
        if not isinstance(spec.get("messageId"), str) or spec.get("status") not in STATUSES:
            raise control_error(f"give messageId and a status ({', '.join(STATUSES)})")
        error = spec.get("error")
        if error is not None and not isinstance(error, dict):
            raise control_error("error must be an object like {\"error\": \"BAD_CONTACT\", \"description\": ...}")
        item = deliveries.status_update(message_id=spec["messageId"], status=spec["status"],
                                        at=self.sandbox.now(), error=error)
        body = deliveries.delivery(statuses=[item])
        resp.status = falcon.HTTP_201
        resp.media = {"body": body, **post(self.sandbox, body, spec.get("wait", True) is not False)}


class ChannelResource(Resource):
    def on_patch(self, req, resp, channel_id):
        spec = json_object(req)
        if not isinstance(spec.get("state"), str) or not spec["state"]:
            raise control_error("give the channel's new state")
        try:
            body = self.sandbox.channel_state(channel_id, spec["state"])
        except SandboxError as exc:
            raise control_error(str(exc), falcon.HTTP_404) from None
        resp.media = {"body": body, **post(self.sandbox, body, spec.get("wait", True) is not False)}


class FaultsResource(Resource):
    def on_get(self, req, resp):
        resp.media = self.sandbox.faults.to_json(self.sandbox.now())

    def on_post(self, req, resp):
        try:
            resp.media = self.sandbox.faults.add(json_object(req), self.sandbox.now())
        except FaultError as exc:
            raise control_error(str(exc)) from None
        resp.status = falcon.HTTP_201

    def on_delete(self, req, resp):
        self.sandbox.faults.clear()
        resp.media = self.sandbox.faults.to_json(self.sandbox.now())


class ReceivedResource(Resource):
    def on_get(self, req, resp):
        resp.media = self.sandbox.received(req.get_param("crmMessageId"))


class DeliveriesResource(Resource):
    def on_get(self, req, resp):
        sender = self.sandbox.sender
        resp.media = {"pending": sender.pending(), "dropped": sender.dropped,
                      "items": [job.to_json() for job in list(sender.log)[-1000:]]}


class ConfigResource(Resource):
    def on_get(self, req, resp):
        # The control API answers without a key: the helpdesk's webhook secret is shown masked.
        uri = self.sandbox.webhook_uri
        resp.media = {**self.sandbox.config.to_json(), "webhooksUri": _SECRET_PARAM.sub(r"\1***", uri) if uri else uri}

    def on_patch(self, req, resp):
        try:
            config = self.sandbox.update_config(json_object(req))
        except (SandboxConfigError, ValueError, TypeError) as exc:
            raise control_error(str(exc)) from None
        resp.media = config.to_json()


class ResetResource(Resource):
    def on_post(self, req, resp):
        spec = json_object(req)
        self.sandbox.reset(keep_webhook=spec.get("keepWebhook", True) is not False)
        resp.media = {"status": "reset"}


class IframePageResource(Resource):
    def on_get(self, req, resp, token):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = ("<!doctype html><title>Wazzup chats (sandbox)</title>"
                     "<p>This is where Wazzup's own chat window would open.</p>")


def control_routes(sandbox: Sandbox) -> list[tuple[str, object]]:
    return [
        ("/_sandbox/health", HealthResource(sandbox)),
        ("/_sandbox/customer-messages", CustomerMessagesResource(sandbox)),
        ("/_sandbox/statuses", StatusesResource(sandbox)),
        ("/_sandbox/channels/{channel_id}", ChannelResource(sandbox)),
        ("/_sandbox/faults", FaultsResource(sandbox)),
        ("/_sandbox/received", ReceivedResource(sandbox)),
        ("/_sandbox/deliveries", DeliveriesResource(sandbox)),
        ("/_sandbox/config", ConfigResource(sandbox)),
        ("/_sandbox/reset", ResetResource(sandbox)),
        ("/_sandbox/iframe/{token}", IframePageResource(sandbox)),
        ("/_sandbox/media/{name}", MediaResource()),
        ("/_sandbox/store/{item_id}", StoreResource()),
    ]
