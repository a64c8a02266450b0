"""The webhook's shared secret (Wazzup signs nothing, so the URL or a Bearer header carries it)."""

from __future__ import annotations

import hmac


def presented_secret(req) -> str | None:
    """The secret a request carries: ``?token=`` (what ``set-webhook`` registers) or ``Bearer``."""
    header = req.get_header("Authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    token = req.get_param("token")
    return token or None


def is_authorized(secret: str | None, req) -> bool:
    """No secret configured: every delivery is accepted (the seed's behaviour; startup warns)."""
    if not secret:
        return True
    presented = presented_secret(req)
    # compare_digest on bytes: constant time whatever the input, and no TypeError on non-ASCII.
    return presented is not None and hmac.compare_digest(presented.encode("utf-8"), secret.encode("utf-8"))
