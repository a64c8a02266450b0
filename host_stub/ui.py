"""The agent UI: the page, the host's static files, the plugins' assets, and the session routes.

There is no build step: ``/`` is one small HTML page that loads ``/static/app.js`` and
``/static/app.css`` and then every plugin's scripts and styles (``register_ui``), all served by
the host. The page carries no inline script or style, so the Content-Security-Policy can stay
``script-src 'self'; style-src 'self'``. Scripts are ``defer``red: they run in document order,
so ``window.helpdesk`` (defined by app.js) exists when a plugin's script registers its panel.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

import falcon

from host_stub import __version__
from host_stub.registry import RouteInfo
from host_stub.resources.session import SessionResource

STATIC_DIR = Path(__file__).parent / "static"


def _asset(url: str) -> str:
    # The version in the query string makes browsers fetch new assets after an upgrade.
    return escape(f"{url}?v={quote(__version__)}", quote=True)


def render_index(ui_assets) -> str:
    styles = ["/static/app.css"] + [f"/static/plugins/{quote(u.name)}/{quote(s)}" for u in ui_assets for s in u.styles]
    scripts = ["/static/app.js"] + [f"/static/plugins/{quote(u.name)}/{quote(s)}" for u in ui_assets for s in u.scripts]
    head = "\n".join(f'<link rel="stylesheet" href="{_asset(s)}">' for s in styles)
    tail = "\n".join(f'<script defer src="{_asset(s)}"></script>' for s in scripts)
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace(
        "<!--STYLES-->", head).replace("<!--SCRIPTS-->", tail)


class IndexResource:
    """The single page of the agent UI; everything else it needs comes from ``/api``."""

    openapi = {"get": {"summary": "The agent UI (HTML)", "responses": {"200": {"description": "the page"}}}}

    def __init__(self, helpdesk):
        self.helpdesk = helpdesk
        self._html = None

    def on_get(self, req, resp):
        if self._html is None:  # registrations are complete only once the app is built
            self._html = render_index(self.helpdesk.registrations.ui)
        resp.content_type = falcon.MEDIA_HTML
        resp.set_header("Cache-Control", "no-cache")
        resp.text = self._html


def install_static(app, helpdesk) -> None:
    """Serve the host's own assets at ``/static``.

    Falcon matches static routes newest first, so this must be added before the plugins'
    ``/static/plugins/<name>`` routes, which then take precedence for their prefix.
    """
    app.add_static_route("/static", str(STATIC_DIR))


def ui_routes(helpdesk) -> list[RouteInfo]:
    return [
        RouteInfo("/", IndexResource(helpdesk), public=True, plugin="host"),
        # Public because signing in is how an agent gets credentials; GET and DELETE
        # authenticate inside the resource (see host_stub.resources.session).
        RouteInfo("/api/session", SessionResource(helpdesk), public=True, plugin="host"),
    ]
