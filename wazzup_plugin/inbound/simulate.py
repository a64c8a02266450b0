"""``helpdesk-stub wazzup24 simulate-incoming``: a customer's message, posted to a running helpdesk.

The seed's "testing without a domain" without a tunnel: the delivery is built exactly as the
sandbox builds it (``sandbox/deliveries.py``) and posted to the webhook of a local host.
"""

from __future__ import annotations

import json
import os
import uuid

import click
import requests

from wazzup_plugin.outbound.webhook_setup import without_secret
from wazzup_plugin.sandbox.deliveries import delivery, incoming_message
from wazzup_plugin.shown_urls import mask_url

DEFAULT_URL = "http://127.0.0.1:8000/api/webhook"
# Used when WAZZUP24_CHANNEL_ID is not set: a fixed id, so repeated simulations share one chat.
SIMULATED_CHANNEL_ID = "5e1f0c3a-0000-4000-8000-000000000001"
TYPES = ("text", "image", "video", "audio", "document", "vcard", "geo", "missing_call", "wapi_template",
         "unsupported")


def _setting(name: str) -> str | None:
    """A WAZZUP24_* setting: the host's config when a helpdesk CLI runs us, else the environment."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx else None
    env = getattr(getattr(obj, "config", None), "env", None) if obj is not None else None
    value = (env or os.environ).get(name)
    return (value or "").strip() or None


def build_body(*, phone: str, name: str | None, text: str | None, content_uri: str | None, type_: str | None,
               channel_id: str, chat_type: str = "whatsapp", echo: bool = False,
               message_id: str | None = None) -> dict:
    return delivery(messages=[incoming_message(
        channel_id=channel_id, chat_id=phone, chat_type=chat_type, text=text, content_uri=content_uri,
        type=type_, name=name, is_echo=echo, message_id=message_id or str(uuid.uuid4()))])


def post_delivery(session: requests.Session, url: str, body: dict, secret: str | None, timeout: float = 10.0):
    headers = {"Content-Type": "application/json"}
    if secret:
        # A header, not ?token=: the secret stays out of access logs and shell history.
        headers["Authorization"] = f"Bearer {secret}"
    return session.post(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=headers,
                        timeout=timeout)


def _configured_webhook_url() -> str | None:
    """The helpdesk's own webhook URL from its settings (the demo's on whatever port it chose); the
    secret goes in a header, so the URL's token is dropped (it would reach the access log)."""
    configured = _setting("WAZZUP24_WEBHOOK_URL")
    return without_secret(configured)[0] if configured else None


@click.command("simulate-incoming", help="Post a Wazzup-shaped incoming message to a running helpdesk.")
@click.option("--phone", required=True, help="the customer's number (Wazzup's chatId), e.g. 79161234567")
@click.option("--name", default=None, help="the contact's name (default: the phone)")
@click.option("--text", default=None, help="the message text")
@click.option("--content-uri", default=None, help="a media link (http/https); makes a media message")
@click.option("--type", "type_", type=click.Choice(TYPES), default=None,
              help="message type (default: text, or image with --content-uri)")
@click.option("--echo", is_flag=True, help="as if typed on the company phone (isEcho: outgoing)")
@click.option("--message-id", default=None, help="Wazzup messageId (default: random; repeat to test dedupe)")
@click.option("--channel-id", default=None, help="default: WAZZUP24_CHANNEL_ID, else a fixed simulated one")
@click.option("--url", default=None, help="the helpdesk's webhook URL (default: WAZZUP24_WEBHOOK_URL without its "
                                           f"token, else {DEFAULT_URL})")
@click.option("--timeout", default=10.0, show_default=True, type=float, help="seconds to wait for the answer")
def simulate_incoming(phone, name, text, content_uri, type_, echo, message_id, channel_id, url, timeout):
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not digits:
        raise click.BadParameter("must contain digits, e.g. 79161234567", param_hint="--phone")
    if text is None and content_uri is None and type_ not in ("missing_call", "unsupported", "geo", "vcard"):
        raise click.UsageError("give --text or --content-uri (or a --type that needs neither)")
    body = build_body(phone=digits, name=name, text=text, content_uri=content_uri, type_=type_,
                      channel_id=channel_id or _setting("WAZZUP24_CHANNEL_ID") or SIMULATED_CHANNEL_ID,
                      echo=echo, message_id=message_id)
    item = body["messages"][0]
    url = url or _configured_webhook_url() or DEFAULT_URL
    secret = _setting("WAZZUP24_WEBHOOK_SECRET")
    with requests.Session() as session:
        try:
            resp = post_delivery(session, url, body, secret, timeout)
        except requests.RequestException as exc:
            # A --url may carry the webhook's secret (?token=...): terminals and CI logs keep output.
            raise click.ClickException(f"could not reach {mask_url(url, secret)}: {type(exc).__name__}. "
                                       "Is the helpdesk running (helpdesk-stub serve)?") from None
    if resp.status_code != 200:
        try:
            reason = resp.json().get("message")
        except ValueError:
            reason = resp.text[:200]
        hint = " (set WAZZUP24_WEBHOOK_SECRET to the helpdesk's secret)" if resp.status_code == 401 else ""
        raise click.ClickException(f"the helpdesk answered {resp.status_code}: {reason}{hint}")
    click.echo(f"delivered message {item['messageId']} from {digits} ({item['type']}): {resp.json()}")
