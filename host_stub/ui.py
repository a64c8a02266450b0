"""The agent UI: the page, the host's static files, and the plugins' assets."""

from __future__ import annotations

from pathlib import Path

import falcon

from host_stub.registry import RouteInfo

STATIC_DIR = Path(__file__).parent / "static"


class IndexResource:
    """The single page of the agent UI (placeholder until the UI lands)."""

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = "<!doctype html><title>Helpdesk</title><p>Helpdesk is running.</p>"


def ui_routes(helpdesk) -> list[RouteInfo]:
    return [RouteInfo("/", IndexResource(helpdesk), public=True, plugin="host")]
