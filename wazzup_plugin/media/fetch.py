"""One download of an incoming message's media from Wazzup's store: which hosts, what answer, how big.

Without the database: :func:`fetch` takes a link and answers a :class:`Fetched`, the download job
(``download``) records it. A link into a host not in WAZZUP24_MEDIA_HOSTS is never requested (a
forged delivery must not make the helpdesk fetch its own network's addresses); redirects are not
followed blindly: one, to an allowed host, at most, and never from https to plain http. Our API key
is never sent: the store's links carry their own access, so the request has no Authorization at all
(not the session's, not one from ~/.netrc).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from wazzup_plugin.bounded_read import Overdue, chunks_within
from wazzup_plugin.outbound import file_rules as rules

CHUNK = 64 * 1024
REDIRECTS = (301, 302, 303, 307, 308)
GONE = (404, 410)                       # the store no longer has it: retrying cannot help
RETRIED_4XX = (408, 425, 429)           # the store is busy: like a 5xx
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
# None: never an Authorization, whatever the session has; identity: the size cap counts bytes as they
# come (media files are compressed already), and no decoder inflates a small answer into a large one.
_HEADERS = {"Accept": "*/*", "Accept-Encoding": "identity", "Authorization": None}
MAX_TYPE = 100  # characters of a declared Content-Type kept (the column holds 200)
STOPPED = "stopped"
# Bytes per second a download must keep up, on average, to be given time beyond its budget: a 25 MB
# video from a slow store takes minutes, and is not cut off while it keeps coming at this rate.
MIN_RATE = 64 * 1024


def _no_auth(request):
    """An explicit auth that adds nothing: requests then never takes one from ~/.netrc for the store."""
    return request


@dataclass(frozen=True)
class Fetched:
    """``outcome``: ``stored`` (``data`` and its ``sha256``), ``retry`` (a network error, a 5xx),
    ``failed`` (404/410 or another refusal), ``too_big``, ``refused_host``, or ``stopped`` (the worker
    stopped while the file was still coming: not an attempt); ``error`` in our words."""

    outcome: str
    error: str | None = None
    data: bytes | None = None
    sha256: str | None = None
    content_type: str | None = None


# What a store link's authority may hold: a host name or IP literal and a port. Anything else (a
# backslash, userinfo, whitespace, %-escapes) is refused, not interpreted: parsers disagree on where
# such an authority ends (urlsplit reads "127.0.0.1\\.wazzup24.com" as one host name, urllib3, which
# connects, as 127.0.0.1 and a path), and the host checked must be the host connected to.
_AUTHORITY = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
SCHEMES = ("http", "https")


def host_allowed(url: str, hosts: tuple[str, ...]) -> bool:
    """Whether ``url`` is an http(s) link into one of ``hosts`` (``*.domain``: its subdomains), on any
    port (the demo's store is the sandbox's); the link is checked as urlsplit and urllib3 (which
    connects) both read it."""
    if any(c <= " " or c == "\x7f" for c in url):  # urlsplit drops tabs and newlines, others keep them
        return False
    try:
        parts = urlsplit(url)
        connected = parse_url(url)
    except (ValueError, LocationParseError):
        return False
    if parts.scheme not in SCHEMES or not _AUTHORITY.fullmatch(parts.netloc):
        return False
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or (connected.host or "").rstrip(".").lower() != host:
        return False
    return any(host.endswith(h[1:]) if h.startswith("*.") else host == h for h in hosts)


class Deadline:
    """A download's deadline: its ``budget``, plus the time the bytes received so far earn at
    ``min_rate`` (:data:`MIN_RATE`): a large file that keeps coming is not cut off, a trickle is
    (:mod:`wazzup_plugin.bounded_read`). Once ``stop`` is set (the worker is stopping) the budget alone
    counts again, so that a stop waits for no more than that."""

    def __init__(self, at: float, min_rate: float | None = None, stop=None):
        self.at, self.min_rate, self.stop, self.received = at, min_rate, stop, 0

    def __call__(self) -> float:
        if not self.min_rate or (self.stop is not None and self.stop.is_set()):
            return self.at
        return self.at + self.received / self.min_rate


def longest_seconds(budget: float, max_bytes: int, min_rate: float = MIN_RATE) -> float:
    """The longest a download with this ``budget`` may take: the largest file kept at the slowest rate."""
    return budget + max_bytes / min_rate


def fetch(session: requests.Session, url: str, *, hosts: tuple[str, ...], max_bytes: int,
          timeout: tuple[float, float], budget: float, min_rate: float | None = None, stop=None,
          name: str | None = None, clock=time.monotonic) -> Fetched:
    """Download ``url`` once (following one redirect to an allowed host at most, never from https to
    http). ``budget``: the seconds the whole download may take, however slowly the store's answer
    trickles in, so that it ends inside its claim's lease; with ``min_rate``, more while the file keeps
    coming at that rate (:class:`Deadline`; :func:`longest_seconds` bounds it). ``name``: the file's
    name as the message gives it (a web page is taken for it only when the name says it is one)."""
    deadline = Deadline(clock() + budget, min_rate, stop)
    if not host_allowed(url, hosts):
        return Fetched("refused_host", "the link is not into an allowed media host (WAZZUP24_MEDIA_HOSTS)")
    for hop in range(2):
        try:
            response = session.get(url, headers=_HEADERS, auth=_no_auth, timeout=timeout, allow_redirects=False,
                                   stream=True)
        except requests.RequestException as exc:
            return Fetched("retry", f"the store could not be reached ({type(exc).__name__})")
        with response:
            if response.status_code in REDIRECTS and hop == 0:
                target = urljoin(url, response.headers.get("Location") or "")
                if not host_allowed(target, hosts):
                    return Fetched("refused_host", "the store redirected to a host not in WAZZUP24_MEDIA_HOSTS")
                if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                    return Fetched("refused_host", "the store redirected from https to plain http")
                url = target
                continue
            return _read(response, max_bytes, deadline, clock, timeout[1], name)
    return Fetched("failed", "the store redirected more than once")


def _read(response: requests.Response, max_bytes: int, deadline: Deadline, clock, read_timeout: float,
          name: str | None) -> Fetched:
    status = response.status_code
    if status in GONE:
        return Fetched("failed", f"the store no longer has the file (HTTP {status})")
    if status >= 500 or status in RETRIED_4XX:
        return Fetched("retry", f"the store answered HTTP {status}")
    if status != 200:
        return Fetched("failed", f"the store refused the download (HTTP {status})")
    if _a_page_instead_of(name, declared_type(response.headers.get("Content-Type"))):
        # A maintenance or error page answered with 200 (a proxy's, a CDN's). Kept, it would be the
        # customer's photo for good; retried (not read at all), the file usually comes.
        return Fetched("retry", "the store answered with a web page instead of the file")
    too_big = Fetched("too_big", f"the file is larger than {max_bytes // (1024 * 1024)} MB (WAZZUP24_MEDIA_MAX_MB)")
    declared = response.headers.get("Content-Length") or ""
    if declared.isdigit() and int(declared) > max_bytes:
        return too_big  # not read at all
    digest, chunks, size = hashlib.sha256(), [], 0
    try:
        for chunk in chunks_within(response, deadline, clock, read_timeout, CHUNK):
            size += len(chunk)
            if size > max_bytes:
                return too_big
            deadline.received = size
            digest.update(chunk)
            chunks.append(chunk)
    except Overdue:
        if deadline.stop is not None and deadline.stop.is_set():  # cut short by the stop, not by the store
            return Fetched(STOPPED, "the worker stopped during the download")
        return Fetched("retry", "the download was too slow and was given up")
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        return Fetched("retry", f"the download broke off ({type(exc).__name__})")
    if not size:
        # No customer sends an empty file: the store answered before it had the file, or in error. Kept, it
        # would be "stored" for good (agents could not ask for it again); retried, it usually comes.
        return Fetched("retry", "the store sent an empty file")
    return Fetched("stored", data=b"".join(chunks), sha256=digest.hexdigest(),
                   content_type=declared_type(response.headers.get("Content-Type")))


PAGE_TYPES = ("text/html", "application/xhtml+xml")


def _a_page_instead_of(name: str | None, declared: str | None) -> bool:
    """Whether the store declares a web page where the message names a file that is not one."""
    return declared in PAGE_TYPES and mimetypes.guess_type(name or "")[0] not in PAGE_TYPES


def declared_type(header: str | None) -> str | None:
    """The bare MIME type a response declares, or None when it declares none worth keeping."""
    mime = (header or "").split(";", 1)[0].strip().lower()
    return mime if len(mime) <= MAX_TYPE and _MIME.fullmatch(mime) and mime != "application/octet-stream" else None


# What a customer's file may be served as from our origin: pictures, sound, video and the documents
# agents may send. Anything else (HTML, SVG, XML, but also JavaScript, CSS, WebAssembly, which the
# page's own ``script-src 'self'`` would accept from this origin) is served as bytes to download.
SERVED_AS_ITSELF = frozenset(rules.MIME_BY_EXTENSION.values())
BYTES = "application/octet-stream"


# A picture's own first bytes, for a file whose name and answer say nothing of its kind: WhatsApp's
# stickers come as "<name>.was" (reference §5.1), and a store that answers application/octet-stream
# would leave a WebP sticker a download instead of a picture in the chat.
_PICTURE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                       (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def sniffed_type(data: bytes | None) -> str | None:
    """The picture type ``data`` begins with (PNG, JPEG, GIF, WebP), or None."""
    head = (data or b"")[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for signature, mime in _PICTURE_SIGNATURES if head.startswith(signature)), None)


def served_type(name: str | None, declared: str | None) -> str:
    """The type the copy is served as: the name's, else the store's, when it is one of
    :data:`SERVED_AS_ITSELF` or a picture, sound or video a browser does not run; else bytes."""
    guessed = mimetypes.guess_type(name)[0] if name else None
    mime = guessed or declared or BYTES
    media = mime.split("/", 1)[0] in ("image", "audio", "video") and not rules.is_active(mime)
    return mime if media or mime in SERVED_AS_ITSELF else BYTES
