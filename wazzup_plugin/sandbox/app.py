"""``create_sandbox_app(config, clock=, http=)``: the sandbox as a Falcon WSGI app.

Every ``/v3`` call passes the gate first, in Wazzup's order as far as we can tell: a downtime window,
the API key (401), the rate limit (429), then any injected fault; only then the route runs.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import time
from datetime import datetime, timezone
from typing import Callable

import falcon
import requests

from wazzup_plugin.sandbox.api import (ChannelsResource, IframeResource, MessageResource, TemplatesResource,
                                       UserResource, UsersResource, WebhooksResource)
from wazzup_plugin.sandbox.config import SandboxConfig
from wazzup_plugin.sandbox.control import control_routes
from wazzup_plugin.sandbox.core import Sandbox
from wazzup_plugin.sandbox.faults import Fault
from wazzup_plugin.sandbox.ratelimit import retry_after_header

log = logging.getLogger(__name__)
DROP = "sandbox.drop"            # environ flag: lose this connection instead of answering
SOCKET_KEYS = ("sandbox.socket", "gunicorn.socket")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class SandboxApp(falcon.App):
    """The Falcon app, plus what Falcon cannot do: drop a connection without an answer."""

    sandbox: Sandbox

    def __call__(self, environ, start_response):
        result = super().__call__(environ, start_response)
        if not environ.get(DROP):
            return result
        if hasattr(result, "close"):
            result.close()
        sock = next((environ[k] for k in SOCKET_KEYS if k in environ), None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # wsgiref (and gunicorn) treat this as "the peer went away" and write nothing.
        raise ConnectionAbortedError("sandbox dropped the connection on purpose")


class Gate:
    """Falcon middleware for ``/v3``: downtime, key, rate limit and faults."""

    def __init__(self, sandbox: Sandbox, sleep: Callable[[float], None]):
        self.sandbox = sandbox
        self.sleep = sleep

    def process_request(self, req, resp):
        if not req.path.startswith("/v3/"):
            return
        sb, cfg, now = self.sandbox, self.sandbox.config, self.sandbox.now()
        mode = sb.faults.down(now)
        if mode is not None:
            sb.count("downtime")
            self._finish(req, resp, drop=mode == "refuse", status=503)
            return
        if not hmac.compare_digest((req.get_header("Authorization") or "").encode(),
                                   f"Bearer {cfg.api_key}".encode()):
            sb.count("401")
            resp.status = 401
            if cfg.unauthorized_body == "json":
                resp.media = {"status": 401, "error": "UNAUTHORIZED",
                              "description": "Failed to pass the API key or passed the wrong key"}
            else:
                resp.data = b""
            resp.complete = True
            return
        wait = sb.limiter.hit(now, cfg.rate_limit, cfg.rate_window)
        if wait is not None:
            sb.count("429")
            resp.status = 429
            resp.media = {"status": 429, "error": "TOO_MANY_REQUESTS", "description": "Too many requests"}
            if cfg.retry_after:
                resp.set_header("Retry-After", retry_after_header(wait))
            resp.complete = True
            return
        fault = sb.faults.take(req.path)
        if fault is None:
            return
        req.context.fault = fault
        if not fault.after_accept:
            self._apply(fault, req, resp)
            if fault.kind != "slow":
                resp.complete = True

    def process_response(self, req, resp, resource, req_succeeded):
        fault = req.context.get("fault")
        if fault is not None and fault.after_accept:
            self._apply(fault, req, resp)

    def _apply(self, fault: Fault, req, resp) -> None:
        self.sandbox.count(f"fault:{fault.kind}")
        if fault.kind == "slow":
            self.sleep(fault.seconds)
        elif fault.kind == "drop":
            req.env[DROP] = True
        else:
            self._finish(req, resp, drop=False, status=fault.status, json_body=fault.json_body)

    @staticmethod
    def _finish(req, resp, *, drop: bool, status: int, json_body: bool = False) -> None:
        if drop:
            req.env[DROP] = True
        resp.status = status
        resp.text = None
        resp.media = None
        resp.data = (json.dumps({"error": "UNKNOWN_ERROR", "description": "Internal error"}).encode()
                     if json_body else b"")
        if json_body:
            resp.content_type = falcon.MEDIA_JSON
        resp.complete = True


class ControlGuard:
    """Falcon middleware for the control API (``/_sandbox``), which has no key: no web page may drive it.

    A page a developer visits could otherwise post customer messages into their helpdesk (with the
    webhook secret attached by the sandbox), reset it or set faults: a form or ``text/plain`` post
    needs no preflight. Browsers name the page's origin on such requests; the CLI and scripts do not.
    """

    SAFE = ("GET", "HEAD", "OPTIONS")

    def process_request(self, req, resp):
        if not req.path.startswith("/_sandbox") or req.method in self.SAFE:
            return
        origin = req.get_header("Origin")
        if origin is not None and origin.lower() != req.prefix.lower():
            raise falcon.HTTPForbidden(title="sandbox", description=(
                f"the control API takes no requests from web pages (Origin: {origin}); use the CLI or a script"))
        has_body = (req.content_length or 0) > 0 or req.get_header("Transfer-Encoding") is not None
        if has_body and (req.content_type or "").split(";", 1)[0].strip().lower() != falcon.MEDIA_JSON:
            raise falcon.HTTPUnsupportedMediaType(title="sandbox", description=(
                f"the body must be JSON sent as {falcon.MEDIA_JSON}, got {req.content_type or 'no Content-Type'}"))


def create_sandbox_app(config: SandboxConfig | None = None, *, clock: Callable[[], datetime] | None = None,
                       http: requests.Session | None = None, start_sender: bool = True,
                       sleep: Callable[[float], None] = time.sleep) -> SandboxApp:
    """The sandbox app; ``app.sandbox`` holds its state. With ``start_sender`` a background thread posts
    webhook deliveries as they fall due; without it, call ``app.sandbox.sender.pump()``."""
    sandbox = Sandbox(config or SandboxConfig(), clock or utc_now, http or requests.Session())
    app = SandboxApp(middleware=[ControlGuard(), Gate(sandbox, sleep)])
    app.req_options.strip_url_path_trailing_slash = True
    app.add_route("/v3/channels", ChannelsResource(sandbox))
    app.add_route("/v3/message", MessageResource(sandbox))
    app.add_route("/v3/webhooks", WebhooksResource(sandbox))
    app.add_route("/v3/templates/whatsapp", TemplatesResource(sandbox))
    app.add_route("/v3/users", UsersResource(sandbox))
    app.add_route("/v3/users/{user_id}", UserResource(sandbox))
    app.add_route("/v3/iframe", IframeResource(sandbox))
    for template, resource in control_routes(sandbox):
        app.add_route(template, resource)
    app.sandbox = sandbox
    if start_sender:
        sandbox.sender.start()
    return app
