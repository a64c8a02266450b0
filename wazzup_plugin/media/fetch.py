"""One download of an incoming message's media from Wazzup's store: which hosts, what answer, how big.

Without the database: :func:`fetch` takes a link and answers a :class:`Fetched`, the download job
(``download``) records it. A link into a host not in WAZZUP24_MEDIA_HOSTS is never requested (a
forged delivery must not make the helpdesk fetch its own network's addresses); redirects are not
followed blindly: one, to an allowed host, at most. Our API key is never sent: the store's links
carry their own access, and our session's headers are not used (only the request's own).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from wazzup_plugin.outbound import file_rules as rules

CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
GONE = (404, 410)                       # the store no longer has it: retrying cannot help
RETRIED_4XX = (408, 425, 429)           # the store is busy: like a 5xx
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_HEADERS = {"Accept": "*/*", "Authorization": None}  # None: never an Authorization, whatever the session has


@dataclass(frozen=True)
class Fetched:
    """``outcome``: ``stored`` (``data`` and its ``sha256``), ``retry`` (a network error, a 5xx),
    ``failed`` (404/410 or another refusal), ``too_big`` or ``refused_host``; ``error`` in our words."""

    outcome: str
    error: str | None = None
    data: bytes | None = None
    sha256: str | None = None
    content_type: str | None = None


def host_allowed(url: str, hosts: tuple[str, ...]) -> bool:
    """Whether ``url`` is an http(s) link into one of ``hosts`` (``*.domain``: its subdomains)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return False
    return any(host.endswith(h[1:]) if h.startswith("*.") else host == h for h in hosts)


def fetch(session: requests.Session, url: str, *, hosts: tuple[str, ...], max_bytes: int,
          timeout: tuple[float, float], budget: float) -> Fetched:
    """Download ``url`` once (following one redirect to an allowed host at most). ``budget``: the
    most seconds the whole download may take (a read timeout bounds each read, not a slow trickle),
    so that it ends well inside its claim's lease."""
    deadline = time.monotonic() + budget
    if not host_allowed(url, hosts):
        return Fetched("refused_host", "the link is not into an allowed media host (WAZZUP24_MEDIA_HOSTS)")
    for hop in range(2):
        try:
            response = session.get(url, headers=_HEADERS, timeout=timeout, allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            return Fetched("retry", f"the store could not be reached ({type(exc).__name__})")
        with response:
            if response.status_code in REDIRECTS and hop == 0:
                url = urljoin(url, response.headers.get("Location") or "")
                if not host_allowed(url, hosts):
                    return Fetched("refused_host", "the store redirected to a host not in WAZZUP24_MEDIA_HOSTS")
                continue
            return _read(response, max_bytes, deadline)
    return Fetched("failed", "the store redirected more than once")


def _read(response: requests.Response, max_bytes: int, deadline: float) -> Fetched:
    status = response.status_code
    if status in GONE:
        return Fetched("failed", f"the store no longer has the file (HTTP {status})")
    if status >= 500 or status in RETRIED_4XX:
        return Fetched("retry", f"the store answered HTTP {status}")
    if status != 200:
        return Fetched("failed", f"the store refused the download (HTTP {status})")
    too_big = Fetched("too_big", f"the file is larger than {max_bytes // (1024 * 1024)} MB (WAZZUP24_MEDIA_MAX_MB)")
    declared = response.headers.get("Content-Length") or ""
    if declared.isdigit() and int(declared) > max_bytes:
        return too_big  # not read at all
    digest, chunks, size = hashlib.sha256(), [], 0
    try:
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                return too_big
            digest.update(chunk)
            chunks.append(chunk)
            if time.monotonic() > deadline:
                return Fetched("retry", "the download was too slow and was given up")
    except requests.RequestException as exc:
        return Fetched("retry", f"the download broke off ({type(exc).__name__})")
    return Fetched("stored", data=b"".join(chunks), sha256=digest.hexdigest(),
                   content_type=declared_type(response.headers.get("Content-Type")))


def declared_type(header: str | None) -> str | None:
    """The bare MIME type a response declares, or None when it declares none worth keeping."""
    mime = (header or "").split(";", 1)[0].strip().lower()
    return mime if _MIME.fullmatch(mime) and mime != "application/octet-stream" else None


def served_type(name: str | None, declared: str | None) -> str:
    """The type the copy is served as: the name's, else the store's; never one a browser would run
    on our origin (HTML, SVG, XML are served as bytes to download)."""
    guessed = mimetypes.guess_type(name)[0] if name else None
    mime = guessed or declared or "application/octet-stream"
    return "application/octet-stream" if rules.is_active(mime) else mime
