"""The agent UI page and its static assets, served by the host with no inline code."""

import re


def test_the_page_loads_the_host_assets_and_every_plugins_assets(client):
    result = client.simulate_get("/")
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    html = result.text
    scripts = re.findall(r'<script defer src="([^"]+)"></script>', html)
    assert scripts[0].startswith("/static/app.js?v=")
    assert any(s.startswith("/static/plugins/wazzup24/wazzup24.js?v=") for s in scripts)
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)">', html)
    assert styles[0].startswith("/static/app.css?v=")
    assert any(s.startswith("/static/plugins/wazzup24/wazzup24.css?v=") for s in styles)


def test_the_page_has_no_inline_script_or_style_and_a_strict_csp(client):
    result = client.simulate_get("/")
    html = result.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script> would be blocked by the CSP"
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handlers would be blocked by the CSP"
    csp = result.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_the_page_references_no_outside_host(client):
    html = client.simulate_get("/").text
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_host_assets_and_icons_are_served(client):
    for path, kind in [("/static/app.js", "javascript"), ("/static/app.css", "css"),
                       ("/static/icons/internal.svg", "svg"), ("/static/icons/unknown.svg", "svg"),
                       ("/static/icons/helpdesk.svg", "svg")]:
        result = client.simulate_get(path)
        assert result.status_code == 200, path
        assert kind in result.headers["Content-Type"], path


def test_plugin_assets_are_served_under_their_prefix(client):
    for path in ("/static/plugins/wazzup24/wazzup24.js", "/static/plugins/wazzup24/wazzup24.css",
                 "/static/plugins/wazzup24/whatsapp.svg"):
        assert client.simulate_get(path).status_code == 200, path


def test_every_chat_type_icon_is_served(client, auth):
    types = client.simulate_get("/api/chat-types", headers=auth).json["items"]
    assert {t["name"] for t in types} >= {"internal", "wazzup"}
    for chat_type in types:
        assert client.simulate_get(chat_type["icon"]).status_code == 200, chat_type["icon"]


def test_a_missing_static_file_is_404(client):
    assert client.simulate_get("/static/nope.js").status_code == 404
    assert client.simulate_get("/static/../host_stub/app.py").status_code == 404


def test_scripts_never_write_html_from_data():
    """Content reaches the page through textContent only: no innerHTML/outerHTML/insertAdjacentHTML."""
    from pathlib import Path

    import host_stub
    import wazzup_plugin

    sources = list((Path(host_stub.__file__).parent / "static").glob("*.js"))
    sources += list((Path(wazzup_plugin.__file__).parent / "static").glob("*.js"))
    assert len(sources) >= 2
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", text), source
