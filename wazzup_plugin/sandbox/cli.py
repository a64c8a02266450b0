"""``helpdesk-stub wazzup24 sandbox`` (run the emulator) and ``sandbox-ctl`` (drive a running one)."""

from __future__ import annotations

import json
import logging
import re
import signal
import threading

import click
import requests

from wazzup_plugin.sandbox.config import (BAD_CONTACT_MODES, DEFAULT_API_KEY, ECHO_MODES, UNAUTHORIZED_BODIES,
                                          SandboxConfig, SandboxConfigError, parse_channels)
from wazzup_plugin.sandbox.faults import DOWNTIME_MODES, KINDS

DEFAULT_URL = "http://127.0.0.1:8100"


def _delays(raw: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in raw.split(","))
    except ValueError:
        raise click.BadParameter("three numbers of seconds, e.g. 0.2,0.5,1") from None
    if len(values) != 3:
        raise click.BadParameter("three numbers of seconds, e.g. 0.2,0.5,1")
    return values


@click.command("sandbox", help="Run a local emulator of the Wazzup24 API v3 (state in memory, one process).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=click.IntRange(0, 65535), help="0: any free port")
@click.option("--api-key", envvar="WAZZUP24_SANDBOX_API_KEY", default=DEFAULT_API_KEY, show_default=True,
              help="the key clients must send as Bearer (env WAZZUP24_SANDBOX_API_KEY)")
@click.option("--channels", default=None,
              help="JSON list of channels, or transport[:state[:channelId[:plainId]]],... (default: one active "
                   "whatsapp channel)")
@click.option("--unauthorized-body", type=click.Choice(UNAUTHORIZED_BODIES), default="json", show_default=True)
@click.option("--retry-after/--no-retry-after", default=True, show_default=True, help="Retry-After on a 429")
@click.option("--rate-limit", type=click.IntRange(1), default=500, show_default=True, help="requests per 5 s")
@click.option("--echo", type=click.Choice(ECHO_MODES), default="off", show_default=True,
              help="echo API sends as isEcho messages, before or after the 201")
@click.option("--statuses-before-201", is_flag=True, help="post a send's statuses before answering it")
@click.option("--status-delays", default="0.2,0.5,1", show_default=True, help="seconds to sent,delivered,read")
@click.option("--reorder", is_flag=True, help="deliver statuses newest first")
@click.option("--duplicate", is_flag=True, help="deliver every status twice")
@click.option("--combine", is_flag=True, help="one delivery carries everything due at once")
@click.option("--bad-contact", multiple=True, help="a chatId whose sends end in BAD_CONTACT (repeatable)")
@click.option("--bad-contact-mode", type=click.Choice(BAD_CONTACT_MODES), default="webhook", show_default=True)
@click.option("--crm-key", envvar="WAZZUP24_SANDBOX_CRM_KEY", default=None,
              help="sent as Authorization: Bearer on webhook deliveries")
@click.option("--fetch-content", is_flag=True,
              help="download a send's contentUri at once as Wazzup does (127.0.0.1/localhost URLs only)")
@click.option("--waba-window-hours", type=click.FloatRange(0), default=24.0, show_default=True,
              help="WhatsApp Business: a free text to a wapi chat whose customer last wrote longer ago ends in "
                   "an error status 24_HOURS_EXCEEDED (0: always)")
def sandbox_command(host, port, api_key, channels, unauthorized_body, retry_after, rate_limit, echo,
                    statuses_before_201, status_delays, reorder, duplicate, combine, bad_contact, bad_contact_mode,
                    crm_key, fetch_content, waba_window_hours):
    from wazzup_plugin.sandbox.app import create_sandbox_app
    from wazzup_plugin.sandbox.server import SandboxServer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = SandboxConfig(
            api_key=api_key, unauthorized_body=unauthorized_body, retry_after=retry_after, rate_limit=rate_limit,
            echo=echo, statuses_before_201=statuses_before_201, status_delays=_delays(status_delays),
            reorder_statuses=reorder, duplicate_statuses=duplicate, combine_deliveries=combine,
            bad_contacts=tuple(bad_contact), bad_contact_mode=bad_contact_mode, crm_key=crm_key,
            fetch_content=fetch_content, waba_window_hours=waba_window_hours,
            **({"channels": parse_channels(channels)} if channels else {}))
    except (SandboxConfigError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    app = create_sandbox_app(config, http=requests.Session())
    try:
        server = SandboxServer(app, host, port)
    except OSError as exc:
        app.sandbox.sender.stop()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    app.sandbox.update_config({"public_url": server.url})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    click.echo(f"Wazzup24 sandbox listening on {server.url} (API {server.url}/v3, control {server.url}/_sandbox)",
               err=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    click.echo("sandbox stopped", err=True)


# ---------------------------------------------------------------- sandbox-ctl


TIMEOUT = 60


def _request(url: str, method: str, path: str, body, params) -> tuple[int, bytes]:
    try:
        resp = requests.request(method, url.rstrip("/") + path, json=body, params=params, timeout=TIMEOUT)
        return resp.status_code, resp.content
    except requests.RequestException as exc:
        raise click.ClickException(
            f"no sandbox at {url} ({type(exc).__name__}); start one with `helpdesk-stub wazzup24 sandbox`, "
            "or name the one running with `sandbox-ctl --url URL` or WAZZUP24_SANDBOX_URL") from None


def _call(url: str, method: str, path: str, body=None, params=None):
    """Print the sandbox's answer; a refusal is an error (its description on stderr, exit 1)."""
    status, content = _request(url, method, path, body, params)
    text = content.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = {"status": status, "text": text}
    if status >= 400:
        said = (data.get("description") or data.get("title")) if isinstance(data, dict) else None
        raise click.ClickException(said or f"the sandbox answered HTTP {status} {text.strip()[:200]}".strip())
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    return data


@click.group("sandbox-ctl", help="Drive a running sandbox: customers write, faults, what it received, reset.")
@click.option("--url", envvar="WAZZUP24_SANDBOX_URL", default=DEFAULT_URL, show_default=True,
              help="the sandbox (env WAZZUP24_SANDBOX_URL)")
@click.pass_context
def sandbox_ctl(ctx, url):
    ctx.meta["sandbox_url"] = url


def _url() -> str:
    return click.get_current_context().meta["sandbox_url"]


def _digits(ctx, param, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9]+", value):
        raise click.BadParameter(f"digits only, e.g. 79161234567 (got {value!r})")
    return value


@sandbox_ctl.command("write", help="A customer writes TEXT (or sends --media URL) to the webhook.")
@click.argument("text", required=False)
@click.option("--media", "content_uri", help="a media URL instead of text")
@click.option("--type", "type_", help="message type (image, video, audio, document...)")
@click.option("--chat-id", callback=_digits, help="the customer's number, digits only (default: a new number)")
@click.option("--known", is_flag=True, help="the most recent known number writes again")
@click.option("--name", help="the contact's name")
@click.option("--echo", is_flag=True, help="an outgoing message typed on the company's phone")
def ctl_write(text, content_uri, type_, chat_id, known, name, echo):
    if (text is None) == (content_uri is None):
        raise click.UsageError("give TEXT or --media URL")
    body = {"text": text, "contentUri": content_uri, "type": type_, "chatId": chat_id, "name": name,
            "from": "known" if known else None, "isEcho": echo or None}
    _call(_url(), "POST", "/_sandbox/customer-messages", {k: v for k, v in body.items() if v is not None})


@sandbox_ctl.command("status", help="Post STATUS (sent, delivered, read, error, edited) of MESSAGE_ID.")
@click.argument("message_id")
@click.argument("status")
@click.option("--error", "code", help="the error code of an `error` status, e.g. BAD_CONTACT")
def ctl_status(message_id, status, code):
    body = {"messageId": message_id, "status": status}
    if code:
        body["error"] = {"error": code, "description": code.replace("_", " ").capitalize()}
    _call(_url(), "POST", "/_sandbox/statuses", body)


@sandbox_ctl.command("fault", help="Inject a fault into the API: fail, slow, drop or downtime.")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--count", type=click.IntRange(1), default=1, show_default=True, help="for how many calls")
@click.option("--status", type=click.IntRange(400, 599), default=500, show_default=True, help="fail: HTTP status")
@click.option("--seconds", type=click.FloatRange(0, 3600), default=None, help="slow: delay; downtime: length")
@click.option("--after-accept/--before-accept", default=None, help="take effect before failing (default: "
                                                                     "after for slow and drop)")
@click.option("--path", help="only calls to this path, e.g. /v3/message")
@click.option("--mode", type=click.Choice(DOWNTIME_MODES), default="503", show_default=True,
              help="downtime: answer 503, or refuse connections (the port closes for --seconds, default 10, "
                   "and this control API with it: the downtime ends on its own)")
def ctl_fault(kind, count, status, seconds, after_accept, path, mode):
    body = {"kind": kind, "count": count, "status": status, "path": path, "mode": mode}
    if seconds is not None:
        body["seconds"] = seconds
    if after_accept is not None:
        body["afterAccept"] = after_accept
    if kind == "downtime":
        body = {"kind": kind, "seconds": seconds or 10, "mode": mode}
    _call(_url(), "POST", "/_sandbox/faults", {k: v for k, v in body.items() if v is not None})


@sandbox_ctl.command("clear-faults", help="Remove every injected fault.")
def ctl_clear_faults():
    _call(_url(), "DELETE", "/_sandbox/faults")


@sandbox_ctl.command("received", help="What the API accepted (how often per crmMessageId).")
@click.option("--crm-message-id", help="only this crmMessageId")
def ctl_received(crm_message_id):
    _call(_url(), "GET", "/_sandbox/received", params={"crmMessageId": crm_message_id} if crm_message_id else None)


@sandbox_ctl.command("config", help="Show the behaviour, or change it: KEY=JSON... (e.g. echo='\"after\"').")
@click.argument("changes", nargs=-1)
def ctl_config(changes):
    if not changes:
        _call(_url(), "GET", "/_sandbox/config")
        return
    body = {}
    for change in changes:
        key, sep, raw = change.partition("=")
        if not sep:
            raise click.UsageError(f"{change!r}: write KEY=VALUE")
        try:
            body[key] = json.loads(raw)
        except ValueError:
            body[key] = raw
    _call(_url(), "PATCH", "/_sandbox/config", body)


@sandbox_ctl.command("reset", help="Forget what the sandbox received and every fault (the webhook stays).")
@click.option("--forget-webhook", is_flag=True, help="forget the registered webhook too")
def ctl_reset(forget_webhook):
    _call(_url(), "POST", "/_sandbox/reset", {"keepWebhook": not forget_webhook})
