"""Where the helpdesk serves its copy of a customer's media: ``/wazzup24/media/{token}/{name}``."""

from __future__ import annotations

from urllib.parse import quote

from wazzup_plugin.outbound.stored_files import url_name
from wazzup_plugin.serving import token_in_url

PATH = "/wazzup24/media"
TOKEN_IN_URL = token_in_url(PATH)  # masked in every log line, as the uploaded files' tokens are


def served_name(name: str | None) -> str:
    return name or "file"


def media_url(token: str, name: str | None) -> str:
    """The copy's URL, on the helpdesk's own origin (where the agent UI is); its last segment is the
    name, %-encoded (``url_name`` shortens a long one)."""
    return f"{PATH}/{token}/{quote(url_name(served_name(name)), safe='')}"
