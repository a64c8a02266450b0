"""Where the helpdesk serves its copy of a customer's media: ``/wazzup24/media/{token}/{name}``."""

from __future__ import annotations

import re
from urllib.parse import quote

from wazzup_plugin.outbound.stored_files import url_name

PATH = "/wazzup24/media"
# A copy's token in its URL, for the host to mask in every log line (hooks.register_log_masks), as the
# uploaded files' tokens are: the token is the only key to a customer's file.
TOKEN_IN_URL = re.compile(rf"({re.escape(PATH)}/)[^/?#\s\"']+")


def served_name(name: str | None) -> str:
    return name or "file"


def media_url(token: str, name: str | None) -> str:
    """The copy's URL, on the helpdesk's own origin (where the agent UI is); its last segment is the
    name, %-encoded (``url_name`` shortens a long one)."""
    return f"{PATH}/{token}/{quote(url_name(served_name(name)), safe='')}"
