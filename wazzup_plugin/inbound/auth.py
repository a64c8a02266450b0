"""The webhook's shared secret (Wazzup signs nothing, so the URL or a Bearer header carries it)."""

from __future__ import annotations

import hmac


def presented_secrets(req) -> list[str]:
    """The secrets a request may carry: ``?token=`` (what ``set-webhook`` registers) and ``Bearer``.

    Both are looked at: an account with a crmKey (Wazzup's WAuth and partner integrations) adds
    ``Authorization: Bearer <crmKey>`` to every delivery, to the URL that carries our token."""
    found = []
    token = req.get_param("token")
    if isinstance(token, str) and token:
        found.append(token)
    header = req.get_header("Authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        found.append(value.strip())
    return found


CURRENT, PREVIOUS, OPEN = "current", "previous", "open"


def which_secret(secret: str | None, req, previous: str | None = None) -> str | None:
    """Which configured secret lets the request in: ``current`` (WAZZUP24_WEBHOOK_SECRET),
    ``previous`` (only WAZZUP24_WEBHOOK_SECRET_PREVIOUS, kept during a rotation), ``open`` (no
    secret configured), or None: refused.

    No secret configured: every delivery is accepted (the seed's behaviour; startup warns, and
    refuses to start live, with an API key and a webhook URL, unless WAZZUP24_WEBHOOK_INSECURE=1)."""
    if not secret:
        return OPEN
    presented = [p.encode("utf-8", "surrogatepass") for p in presented_secrets(req)]
    # compare_digest on bytes: constant time whatever the input, and no TypeError on non-ASCII.
    # Every candidate is compared with every secret (no early exit), so the time says nothing
    # about which one matched.
    current = [hmac.compare_digest(p, secret.encode("utf-8")) for p in presented]
    older = [hmac.compare_digest(p, previous.encode("utf-8")) for p in presented] if previous else []
    if any(current):
        return CURRENT
    return PREVIOUS if any(older) else None
