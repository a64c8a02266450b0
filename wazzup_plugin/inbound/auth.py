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


def is_authorized(secret: str | None, req) -> bool:
    """No secret configured: every delivery is accepted (the seed's behaviour; startup warns, and
    refuses to start live, with an API key and a webhook URL, unless WAZZUP24_WEBHOOK_INSECURE=1)."""
    if not secret:
        return True
    expected = secret.encode("utf-8")
    # compare_digest on bytes: constant time whatever the input, and no TypeError on non-ASCII.
    # Every candidate is compared (no early exit), so the time says nothing about which one matched.
    matches = [hmac.compare_digest(p.encode("utf-8", "surrogatepass"), expected) for p in presented_secrets(req)]
    return any(matches)
