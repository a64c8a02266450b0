"""URLs as the plugin shows them (connection report, CLI, settings errors): credentials masked.

A URL that is not ours (a CRM's webhook another integration registered at Wazzup, a mistyped
setting) may carry credentials wherever its owner put them: ``user:password@``, a query parameter
of any name, a path segment (``/hook/3f9a…``). Every agent sees the connection report, and startup
errors reach the service manager's journal, so whatever looks like a credential is masked; what is
left still tells the operator which URL it is.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters whose values are credentials however they are spelled (access_token, apiKey,
# X-Signature, sid…): masked by name. Over-masking only hides a harmless value.
_SECRET_PARAM = re.compile(r"(?i)token|secret|key|pass|pwd|sig|auth|hash|session|^k$|^sid$|^code$")
# A path segment that looks generated rather than named: a run of 12 or more letters and digits
# mixed (a hex or base64 token), or a UUID. ``wazzup24-hook`` is a name.
_GENERATED = re.compile(r"(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{12,}"
                        r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def mask_url(url: str | None, *known_secrets: str | None) -> str | None:
    """``url`` with its userinfo, credential-looking query values and generated-looking path
    segments (and any of ``known_secrets``, wherever they are) replaced by ``***``; the fragment is
    dropped. A value that is not a URL at all is masked whole."""
    if not url:
        return url
    for secret in known_secrets:
        if secret:
            url = url.replace(secret, MASK)
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    path = "/".join(MASK if _GENERATED.search(segment) else segment for segment in parts.path.split("/"))
    query = parts.query
    if query:
        pairs = [(k, MASK if _SECRET_PARAM.search(k) else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, path, query, ""))
